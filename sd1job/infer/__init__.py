"""Fast inference for each model kind, straight from a trained model's weights (an LSTM's or, with
``model.cell: gru``, a GRU's: each path below runs both).

- ``weights``: load a ``.keras`` file, check it is the model a unit needs, take its LSTM (or GRU)/Dense weights;
- ``predictor``: a unit's fast predictor from its model file (what eval and render use);
- ``windowed``: the seed's model, one window of n dry samples per output sample (XLA, batched);
- ``stateful``: the context-free model, one LSTM step per sample with the state carried (numba, batch 1);
- ``delayline``: the stateful model at a higher rate than trained (the recurrence reads a delayed state);
- ``rates``: which of delay line, resampling or naive a unit uses at a run rate, and the processing.
"""

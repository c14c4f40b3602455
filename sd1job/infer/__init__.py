"""Fast inference for each model kind, straight from a trained model's weights.

- ``weights``: load a ``.keras`` file, check it is the model a unit needs, take its LSTM/Dense weights;
- ``windowed``: the seed's model, one window of n dry samples per output sample (XLA, batched);
- ``stateful``: the context-free model, one LSTM step per sample with the state carried (numba, batch 1).
"""

"""A unit's fast predictor from its model file: the one way eval and render load a model.

TensorFlow (to read the ``.keras`` file) and numba are imported only when a predictor is made.
"""

from __future__ import annotations

from typing import Any

from sd1job.units import Unit


def make_predictor(model_data: bytes, source: str, unit: Unit, batch_size: int) -> Any:
    """The fast predictor of the unit's kind from its ``.keras`` bytes (``source`` names the file in errors).

    Stateful: ``StreamingPredictor``; windowed: ``SlidingWindowPredictor`` in blocks of ``batch_size`` (both
    run the LSTM or GRU the file holds); WaveNet: ``WavenetPredictor`` of the unit's preset. All have
    ``weights``, ``warm_up()`` and ``predict(dry)``; ModelFileError if the file is not the unit's model.
    """
    if unit.kind == "wavenet":
        from sd1job.infer.wavenet import WavenetPredictor, load_wavenet_weights

        assert unit.preset is not None
        return WavenetPredictor(load_wavenet_weights(model_data, source, unit.preset))
    from sd1job.infer.weights import load_weights

    weights = load_weights(model_data, source, unit.context)
    if unit.kind == "stateful":
        from sd1job.infer.stateful import StreamingPredictor

        return StreamingPredictor(weights)
    from sd1job.infer.windowed import SlidingWindowPredictor

    assert unit.context is not None
    return SlidingWindowPredictor(weights, unit.context, batch_size)

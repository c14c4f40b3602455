"""The ``export`` command: a trained stateful or WaveNet unit as a file a player's plugin loads.

``python -m sd1job export --config FILE --unit stateful-s25 --format nam [--output PATH]`` reads the
unit's ``model.keras`` and writes ``runs/<run_id>/exports/<unit>.nam`` (Neural Amp Modeler's "LSTM"
architecture, or "WaveNet" for ``wavenet-<preset>-s<S>``; see ``sd1job.export``), plus a copy at
``--output`` on the local disk if given. The report lists every exported file. Without ``--unit``
it exports every trained stateful and WaveNet unit. A windowed unit is refused: no plugin runs a
model that reads a window of n samples per output; so is a GRU (``model.cell: gru``): NAM loads none.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sd1job.config import Config
from sd1job.export import ExportError, NamMetadata, build_nam, encode_nam, require_exportable
from sd1job.layout import RunLayout
from sd1job.stages.options import add_unit_options, chosen_units
from sd1job.store import MissingObjectError, Store, open_store
from sd1job.units import Unit

log = logging.getLogger(__name__)
FORMATS = ("nam",)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job export``."""
    add_unit_options(parser, required=False)
    parser.add_argument("--format", choices=FORMATS, default="nam", help="the file format (default nam)")
    parser.add_argument("--output", metavar="PATH", help="also write the file here (one unit only)")


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: export the chosen units (every trained stateful unit by default)."""
    store = open_store(config.store)
    layout = RunLayout(config.run_id)
    explicit = args.unit is not None or args.context is not None or args.kind is not None
    units = chosen_units(args, config)
    if explicit:
        for unit in units:
            require_exportable(unit.kind, config.for_unit(unit).model.cell, unit.name)
    else:
        units = [u for u in units if exportable(config, u) and store.exists(layout.history(u))]
        if not units:
            raise ExportError("no trained stateful (LSTM) or wavenet unit to export (set model.kind to include one)")
    if args.output and len(units) != 1:
        raise ExportError(f"--output {args.output}: names one file but {len(units)} units were chosen")
    for unit in units:
        data = export_unit(store, layout, unit, config.recordings.sample_rate, config.run_id)
        if args.output:
            _write_local(Path(args.output), data)
    return 0


def exportable(config: Config, unit: Unit) -> bool:
    """Whether NAM's players can load the unit's model: a WaveNet, or a stateful LSTM (not a GRU)."""
    return unit.kind == "wavenet" or (unit.kind == "stateful" and config.for_unit(unit).model.cell == "lstm")


def export_unit(store: Store, layout: RunLayout, unit: Unit, sample_rate: int, run_id: str) -> bytes:
    """Write the unit's ``.nam`` file into the store and return its bytes."""
    from sd1job.infer.weights import LstmWeights, load_weights  # TensorFlow: only once there is a model to read

    require_exportable(unit.kind)
    try:
        model_data = store.read_bytes(layout.model(unit))
        history = store.read_json(layout.history(unit))
    except MissingObjectError:
        raise ExportError(
            f"{unit.name}: not trained (no {store.url(layout.history(unit))}); run the train stage first"
        ) from None
    metadata = NamMetadata(name=f"{run_id} {unit.name}", date=datetime.now(UTC), training=_training_info(history))
    if unit.kind == "wavenet":
        from sd1job.export_wavenet import build_wavenet_nam
        from sd1job.infer.wavenet import load_wavenet_weights

        assert unit.preset is not None
        wavenet = load_wavenet_weights(model_data, store.url(layout.model(unit)), unit.preset)
        data = encode_nam(build_wavenet_nam(wavenet, sample_rate, metadata))
    else:
        weights = load_weights(model_data, store.url(layout.model(unit)), None)
        if not isinstance(weights, LstmWeights):  # the model file decides, whatever the config says now
            require_exportable(unit.kind, "gru", unit.name)
        data = encode_nam(build_nam(weights, sample_rate, metadata))
    store.write_bytes(layout.export(unit), data)
    log.info("export %s: %s (%d bytes)", unit.name, store.url(layout.export(unit)), len(data))
    return data


def _training_info(history: dict[str, Any]) -> dict[str, Any]:
    return {
        name: history.get(name)
        for name in (
            "unit",
            "seed",
            "preset",
            "epochs_run",
            "best_epoch",
            "best_val_loss",
            "lstm_units",
            "train_settings",
        )
    }


def _write_local(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)
    except OSError as error:
        raise ExportError(f"--output {path}: cannot write ({error.strerror})") from None

"""Where every object of a run lives in the store: the one place that spells out keys.

Everything a run writes is under ``runs/<run_id>/``::

    data/manifest.json            what the data stage read, checked and wrote
    data/audio.npz                the (aligned) training audio, float32 dry and wet
    data/c<N>/positions.npz       window end positions: train, val (int64)
    models/c<N>/checkpoint/...     the per-epoch resume point (train stage)
    models/c<N>/model.keras       the best weights
    models/c<N>/history.json      per-epoch history and the run's totals
    models/c<N>/summary.json      parameter count, config used
    models/c<N>/loss.png          training/validation loss curve
    eval/results.csv|json         one row per (context, riff), plus per-context summary
    eval/audio/c<N>/o_<riff>.wav  model outputs
    eval/*.png, eval/report.html  plots and the report
"""

from __future__ import annotations

from dataclasses import dataclass

from sd1job.config import Config
from sd1job.store import join_key


@dataclass(frozen=True)
class RunLayout:
    """Keys of one run's objects."""

    run_id: str

    @property
    def root(self) -> str:
        return join_key("runs", self.run_id)

    # data stage
    @property
    def data_dir(self) -> str:
        return join_key(self.root, "data")

    @property
    def manifest(self) -> str:
        return join_key(self.data_dir, "manifest.json")

    @property
    def audio(self) -> str:
        return join_key(self.data_dir, "audio.npz")

    def positions(self, context: int) -> str:
        return join_key(self.data_dir, f"c{context}", "positions.npz")

    def export(self, context: int) -> str:
        return join_key(self.data_dir, f"c{context}", "arrays.npz")

    # train stage
    def model_dir(self, context: int) -> str:
        return join_key(self.root, "models", f"c{context}")

    def model(self, context: int) -> str:
        return join_key(self.model_dir(context), "model.keras")

    def history(self, context: int) -> str:
        return join_key(self.model_dir(context), "history.json")

    def summary(self, context: int) -> str:
        return join_key(self.model_dir(context), "summary.json")

    def loss_plot(self, context: int) -> str:
        return join_key(self.model_dir(context), "loss.png")

    def checkpoint_dir(self, context: int) -> str:
        return join_key(self.model_dir(context), "checkpoint")

    # eval stage
    @property
    def eval_dir(self) -> str:
        return join_key(self.root, "eval")

    def eval_file(self, name: str) -> str:
        return join_key(self.eval_dir, name)

    def output_audio(self, context: int, riff: str) -> str:
        return join_key(self.eval_dir, "audio", f"c{context}", f"o_{riff}.wav")


def layout_for(config: Config) -> RunLayout:
    """The layout of the run the config names."""
    return RunLayout(config.run_id)


def riff_dry_key(config: Config, riff: str) -> str:
    """Store key of a test riff's dry recording."""
    return join_key(config.recordings.test_dir, "Dry", f"d_{riff}.wav")


def riff_wet_key(config: Config, riff: str) -> str:
    """Store key of a test riff's wet recording."""
    return join_key(config.recordings.test_dir, "Wet", f"w_{riff}.wav")

"""Where every object lives in the store: the one place that spells out keys.

Recordings are keyed by the config's ``recordings`` section (relative to the store root);
everything a run writes is under ``runs/<run_id>/``::

    data/manifest.json              what the data stage read, checked and wrote (written last)
    data/audio.npz                  the (aligned) training audio, float32 dry and wet
    data/c<N>/positions.npz         window end positions of one context: train, val (int64)
    data/c<N>/arrays.npz            materialised windows (``data --export`` only)
    models/<unit>/checkpoint.npz    the per-epoch resume point of one unit (train stage)
    models/<unit>/model.keras       the best weights
    models/<unit>/summary.json      parameter count, runtime, config used
    models/<unit>/loss.png          training/validation loss curve
    models/<unit>/history.json      per-epoch history and totals (written last: the unit is trained)
    models/<unit>/eval/o_<riff>.wav the unit's output on each test riff (eval stage)
    models/<unit>/eval/scores.json  the unit's scores on every riff (written last: the unit is scored)
    models/<unit>/eval-<R>hz/...    the same, scored on riffs recorded at another rate R (eval --rate)
    exports/<unit>.nam              a stateful unit as a Neural Amp Modeler file (export)
    listening/...                   the listening test: design.json, sessions/<id>.json (the blinding
                                    key, server-side only), answers/<id>.jsonl (one line per answer)

A player's capture keeps its aligned recordings under ``captures/<name>/`` (``CaptureLayout``).
    eval/...                        the report: results.csv|json, summary.csv, plots, report.html,
                                    and copies of what it links (audio/, exports/), so the folder
                                    stands alone

``<unit>`` is the unit's path (``c440/s25``, ``stateful/s25``; see ``sd1job.units``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sd1job.store import join_key
from sd1job.units import Unit

SYNTH_INFO = "recordings/synth.json"


def _set_folder(recording_set: str | None) -> str:
    return "" if recording_set is None else f"sets/{recording_set}/"


def synth_info_key(recording_set: str | None) -> str:
    """Where synth records what it wrote: ``SYNTH_INFO`` for the default recordings, one file per named set."""
    return SYNTH_INFO if recording_set is None else f"recordings/synth-{recording_set}.json"


# The report's files under eval/.
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
SUMMARY_CSV = "summary.csv"
REPORT_HTML = "report.html"


def riff_dry_key(test_dir: str, riff: str) -> str:
    """Store key of a test riff's dry recording (``<test_dir>/Dry/d_<riff>.wav``)."""
    return join_key(test_dir, "Dry", f"d_{riff}.wav")


def riff_wet_key(test_dir: str, riff: str) -> str:
    """Store key of a test riff's wet recording (``<test_dir>/Wet/w_<riff>.wav``)."""
    return join_key(test_dir, "Wet", f"w_{riff}.wav")


@dataclass(frozen=True)
class CaptureLayout:
    """Keys of a player's capture (``python -m sd1job capture``), under ``captures/<name>/``."""

    name: str

    @property
    def folder(self) -> str:
        """``captures/<name>``."""
        return join_key("captures", self.name)

    @property
    def train_dry(self) -> str:
        """The aligned DI used for training."""
        return join_key(self.folder, "train", "Dry", "d_train.wav")

    @property
    def train_wet(self) -> str:
        """The aligned pedal output used for training."""
        return join_key(self.folder, "train", "Wet", "w_train.wav")

    @property
    def test_dir(self) -> str:
        """Holds the held-out riff (``Dry/d_holdout.wav``, ``Wet/w_holdout.wav``)."""
        return join_key(self.folder, "test")

    @property
    def info(self) -> str:
        """What the capture found: source files, rate, latency, the split."""
        return join_key(self.folder, "capture.json")


@dataclass(frozen=True)
class RunLayout:
    """Keys of one run's objects; ``data_variant`` picks one dataset of a grid with data axes (``data/<tag>/``)."""

    run_id: str
    data_variant: str = ""

    @property
    def root(self) -> str:
        """``runs/<run_id>``."""
        return join_key("runs", self.run_id)

    # data stage
    @property
    def data_dir(self) -> str:
        """The data stage's folder (one per dataset of a grid whose axes change the data)."""
        return join_key(self.root, "data", self.data_variant) if self.data_variant else join_key(self.root, "data")

    def with_data(self, variant: str) -> RunLayout:
        """This run's keys with the data stage's objects of dataset ``variant``."""
        return RunLayout(self.run_id, variant)

    @property
    def manifest(self) -> str:
        """The data stage's manifest (written last)."""
        return join_key(self.data_dir, "manifest.json")

    @property
    def audio(self) -> str:
        """The aligned training audio."""
        return join_key(self.data_dir, "audio.npz")

    def positions(self, context: int) -> str:
        """Window end positions of one context."""
        return join_key(self.data_dir, f"c{context}", "positions.npz")

    def export_arrays(self, context: int) -> str:
        """Materialised windows of one context (``data --export``)."""
        return join_key(self.data_dir, f"c{context}", "arrays.npz")

    # train stage
    def unit_dir(self, unit: Unit) -> str:
        """Everything of one unit."""
        return join_key(self.root, "models", unit.path)

    def model(self, unit: Unit) -> str:
        """The unit's best weights (``.keras``)."""
        return join_key(self.unit_dir(unit), "model.keras")

    def history(self, unit: Unit) -> str:
        """The unit's training history (its presence, with the model, means trained)."""
        return join_key(self.unit_dir(unit), "history.json")

    def summary(self, unit: Unit) -> str:
        """The unit's training summary."""
        return join_key(self.unit_dir(unit), "summary.json")

    def loss_plot(self, unit: Unit) -> str:
        """The unit's loss curve."""
        return join_key(self.unit_dir(unit), "loss.png")

    def checkpoint(self, unit: Unit) -> str:
        """The unit's one resume point, replaced after every epoch."""
        return join_key(self.unit_dir(unit), "checkpoint.npz")

    # eval stage (per unit)
    def scores(self, unit: Unit, rate: int | None = None) -> str:
        """The unit's scores on every riff (its presence means scored); ``rate``: scored at another rate."""
        return join_key(self.unit_dir(unit), _eval_folder(rate), "scores.json")

    def unit_output(self, unit: Unit, riff: str, rate: int | None = None) -> str:
        """The unit's output on one riff; ``rate``: at another rate."""
        return join_key(self.unit_dir(unit), _eval_folder(rate), f"o_{riff}.wav")

    # export
    def export(self, unit: Unit, extension: str = "nam") -> str:
        """A unit exported for players."""
        return join_key(self.root, "exports", f"{unit.name}.{extension}")

    # listening test
    @property
    def listening_dir(self) -> str:
        """The listening test's folder."""
        return join_key(self.root, "listening")

    def listening_file(self, name: str) -> str:
        """A file of the listening test, by its path relative to listening/."""
        return join_key(self.listening_dir, name)

    # report (eval/): self-contained
    @property
    def eval_dir(self) -> str:
        """The report's folder."""
        return join_key(self.root, "eval")

    def eval_file(self, name: str) -> str:
        """A file of the report, by its path relative to eval/."""
        return join_key(self.eval_dir, name)

    @staticmethod
    def report_output(unit: Unit, riff: str) -> str:
        """Where the report keeps a copy of a unit's output (relative to eval/)."""
        return f"audio/{unit.name}/o_{riff}.wav"

    @staticmethod
    def report_dry(riff: str, recording_set: str | None = None) -> str:
        """Where the report keeps the dry riff it played (relative to eval/; per recording set when there are sets)."""
        return f"audio/{_set_folder(recording_set)}dry/d_{riff}.wav"

    @staticmethod
    def report_wet(riff: str, recording_set: str | None = None) -> str:
        """Where the report keeps the wet riff it played (relative to eval/; per recording set when there are sets)."""
        return f"audio/{_set_folder(recording_set)}wet/w_{riff}.wav"

    @staticmethod
    def report_export(unit: Unit, extension: str = "nam") -> str:
        """Where the report keeps a copy of an exported model (relative to eval/)."""
        return f"exports/{unit.name}.{extension}"


def _eval_folder(rate: int | None) -> str:
    """``eval`` for the training rate's scores; ``eval-<rate>hz`` for scores at another rate."""
    return "eval" if rate is None else f"eval-{rate}hz"

"""Early stopping and the checkpoint codec: the state that lets training resume exactly (no TensorFlow).

A checkpoint is ONE object (a ``.npz``): the model's weights, the optimiser's state, the best
weights so far, and a JSON state (epoch, early-stopping state, history so far, fingerprint),
so it can never be torn across objects.

Why not Keras' own EarlyStopping and BackupAndRestore callbacks: their state lives in the
process (EarlyStopping) or in a local directory (BackupAndRestore), while a retried pod starts
on another node with nothing but the store. Here the state is plain data written to the store
after every epoch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sd1job.dataset import DatasetError, decode_arrays, encode_arrays

CHECKPOINT_VERSION = 2


@dataclass
class EarlyStopping:
    """Keras' EarlyStopping(monitor="val_loss", patience, min_delta=0) as explicit, checkpointable state."""

    patience: int
    best_val_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Account one epoch's validation loss; True if it is a new best (NaN never is)."""
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.wait = float(val_loss), epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` epochs in a row brought no improvement."""
        return self.wait >= self.patience

    def to_json(self) -> dict[str, Any]:
        """State for the checkpoint (JSON has no inf: no best yet is None)."""
        best = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        return {"best_val_loss": best, "best_epoch": self.best_epoch, "wait": self.wait}

    @classmethod
    def from_json(cls, patience: int, state: dict[str, Any]) -> EarlyStopping:
        """Restore from ``to_json`` output (the current patience applies)."""
        best = state.get("best_val_loss")
        return cls(patience, math.inf if best is None else float(best), int(state["best_epoch"]), int(state["wait"]))


PLATEAU_EPOCHS = 3
PLATEAU_GAIN = 0.03


def still_improving(val_losses: list[float], stopped_early: bool) -> bool:
    """Whether a run that ended was still improving: cut by the epoch cap while its validation loss fell.

    A run stopped early has plateaued by definition. Otherwise it is still improving when its best
    epoch lies in its last ``PLATEAU_EPOCHS`` epochs and beat everything before them by more than
    ``PLATEAU_GAIN`` (3 %): a best last epoch that gains a hair over a flat stretch is a plateau,
    not an undertrained model. 3 % over three epochs is about the epoch-to-epoch wobble of a
    validation ESR and a fifth of the spread between two training seeds (about 15 % on the demo
    data), too little to change which context wins. Runs too short to tell count as still improving.
    """
    if stopped_early or not val_losses:
        return False
    if len(val_losses) <= PLATEAU_EPOCHS:
        return True
    before = min(val_losses[:-PLATEAU_EPOCHS])
    recent = min(val_losses[-PLATEAU_EPOCHS:])
    return recent < before * (1.0 - PLATEAU_GAIN)


@dataclass
class Checkpoint:
    """Everything needed to continue training exactly where an epoch ended."""

    state: dict[str, Any]
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] = field(default_factory=list)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """One ``.npz`` object: the arrays plus the JSON state as bytes."""
    arrays: dict[str, np.ndarray] = {
        "state": np.frombuffer(json.dumps(checkpoint.state, allow_nan=False).encode(), dtype=np.uint8)
    }
    for prefix, group in (("weights", checkpoint.weights), ("optimizer", checkpoint.optimizer)):
        arrays.update({f"{prefix}_{i:04d}": np.asarray(a) for i, a in enumerate(group)})
    arrays.update({f"best_{i:04d}": np.asarray(a) for i, a in enumerate(checkpoint.best_weights)})
    return encode_arrays(**arrays)


def decode_checkpoint(data: bytes, source: str) -> Checkpoint:
    """Inverse of ``encode_checkpoint``; DatasetError (a UserError) if the bytes are not a checkpoint."""
    arrays = decode_arrays(data, source)
    if "state" not in arrays:
        raise DatasetError(f"{source}: not a checkpoint (no state)")

    def group(prefix: str) -> list[np.ndarray]:
        return [arrays[name] for name in sorted(n for n in arrays if n.startswith(prefix + "_"))]

    state = json.loads(arrays["state"].tobytes().decode())
    return Checkpoint(state, group("weights"), group("optimizer"), group("best"))

"""Trials and blinding, pure: what each listener hears in which order, and the key that decodes it.

A session belongs to one listener and is drawn whole from one seed (recorded with every answer),
so the order and every opaque id of a session can be rebuilt from (seed, arms, riffs, settings).
What the page is given (``public_trial``) holds only opaque tokens and the letters A, B, X (ABX)
or numbers (MUSHRA); which stimulus is the pedal, the anchor or which arm stays in ``Trial`` on the
server. Each token names one stimulus in one slot of one trial: the same recording gets a new token
in every trial, so tokens cannot be learned across trials.

ABX: per arm ``trials_per_arm`` trials cycling over the riffs; A and B are the pedal and the arm in
random order, X is one of them at random; the listener says whether X is A or B (chance 1/2).

MUSHRA (ITU-R BS.1534-3): one page per riff (and per group of arms when there are more than
``MAX_MUSHRA_CONDITIONS`` - 2): the pedal as the open reference, and unlabelled in random order the
hidden reference, the 3.5 kHz anchor and the arms; every condition rated 0 to 100.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ABX = "abx"
MUSHRA = "mushra"
TESTS = (ABX, MUSHRA)
PEDAL = "pedal"
ANCHOR = "anchor"
HIDDEN_REFERENCE = "hidden_reference"
MAX_MUSHRA_CONDITIONS = 12
MUSHRA_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")


@dataclass(frozen=True)
class Slot:
    """One playable stimulus of a trial: its opaque token, its label on the page, what it is (the key)."""

    token: str
    label: str
    condition: str  # PEDAL, ANCHOR, an arm, or HIDDEN_REFERENCE (the pedal, unlabelled)
    riff: str

    @property
    def source(self) -> str:
        """The stimulus actually played: the hidden reference is the pedal."""
        return PEDAL if self.condition == HIDDEN_REFERENCE else self.condition


@dataclass(frozen=True)
class Trial:
    """One trial: its opaque id, the riff, the slots; for ABX the arm and the right answer."""

    trial_id: str
    kind: str
    riff: str
    slots: tuple[Slot, ...]
    arm: str | None = None  # ABX: the arm tested against the pedal
    correct: str | None = None  # ABX: "A" or "B", the slot X repeats

    def rated(self) -> list[Slot]:
        """MUSHRA: the slots the listener rates (all but the open reference)."""
        return [slot for slot in self.slots if slot.label != "Reference"]


@dataclass
class Session:
    """One listener's session: everything needed to serve it and decode its answers."""

    session_id: str
    listener: str
    test: str
    seed: int
    design: str  # fingerprint of the stimulus set the session was drawn for
    trials: list[Trial] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The session with its key, for the server's store only."""
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Session:
        """The inverse of ``to_json``."""
        trials = [Trial(**{**t, "slots": tuple(Slot(**s) for s in t["slots"])}) for t in data.get("trials", [])]
        return Session(
            session_id=data["session_id"],
            listener=data["listener"],
            test=data["test"],
            seed=int(data["seed"]),
            design=data["design"],
            trials=trials,
        )


def _token(rng: np.random.Generator) -> str:
    return rng.bytes(8).hex()


def abx_trials(arms: list[str], riffs: list[str], per_arm: int, rng: np.random.Generator) -> list[Trial]:
    """``per_arm`` ABX trials per arm, riffs cycled, everything shuffled."""
    trials = []
    for arm in arms:
        for index in range(per_arm):
            riff = riffs[index % len(riffs)]
            first, second = (PEDAL, arm) if rng.random() < 0.5 else (arm, PEDAL)
            correct = "A" if rng.random() < 0.5 else "B"
            repeated = first if correct == "A" else second
            slots = (
                Slot(_token(rng), "A", first, riff),
                Slot(_token(rng), "B", second, riff),
                Slot(_token(rng), "X", repeated, riff),
            )
            trials.append(Trial(_token(rng), ABX, riff, slots, arm=arm, correct=correct))
    order = rng.permutation(len(trials))
    return [trials[i] for i in order]


def mushra_pages(arms: list[str], max_conditions: int = MAX_MUSHRA_CONDITIONS) -> list[list[str]]:
    """The arms split into groups that fit a page beside the hidden reference and the anchor."""
    room = max_conditions - 2
    if room < 1:
        raise ValueError("a MUSHRA page needs room for at least one arm beside the hidden reference and anchor")
    count = max(1, -(-len(arms) // room))
    return [list(group) for group in np.array_split(np.array(arms, dtype=object), count) if len(group)]


def mushra_trials(arms: list[str], riffs: list[str], rng: np.random.Generator) -> list[Trial]:
    """One page per riff and group of arms, conditions in random order, pages shuffled."""
    trials = []
    for riff in riffs:
        for group in mushra_pages(arms):
            conditions = [HIDDEN_REFERENCE, ANCHOR, *group]
            shuffled = [conditions[i] for i in rng.permutation(len(conditions))]
            slots = [Slot(_token(rng), "Reference", PEDAL, riff)]
            slots += [Slot(_token(rng), str(number), c, riff) for number, c in enumerate(shuffled, start=1)]
            trials.append(Trial(_token(rng), MUSHRA, riff, tuple(slots)))
    order = rng.permutation(len(trials))
    return [trials[i] for i in order]


def new_session(
    session_id: str,
    listener: str,
    test: str,
    seed: int,
    arms: list[str],
    riffs: list[str],
    per_arm: int,
    design: str,
) -> Session:
    """A listener's session drawn from ``seed``: the same inputs always give the same session."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    rng = np.random.default_rng(seed)
    trials = abx_trials(arms, riffs, per_arm, rng) if test == ABX else mushra_trials(arms, riffs, rng)
    return Session(session_id, listener, test, seed, design, trials)


def public_trial(session: Session, index: int) -> dict[str, Any]:
    """What the page may know of trial ``index``: opaque ids and labels, never a condition."""
    trial = session.trials[index]
    return {
        "trial": trial.trial_id,
        "index": index,
        "total": len(session.trials),
        "kind": trial.kind,
        "stimuli": [{"id": slot.token, "label": slot.label} for slot in trial.slots],
    }


class AnswerError(ValueError):
    """An answer the server refuses: ``status`` is the HTTP status to send, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decode_answer(session: Session, payload: Any, answered: set[str]) -> dict[str, Any]:
    """Check an answer against the session and decode it with the key; AnswerError if refused.

    ABX: ``{"trial": id, "choice": "A" | "B"}``. MUSHRA: ``{"trial": id, "ratings": {token: 0..100}}``
    covering every rated slot of the trial. The returned record (what the answer log stores)
    names conditions; it is never sent to the page.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("trial"), str):
        raise AnswerError(400, "an answer is a JSON object with a 'trial' id")
    by_id = {trial.trial_id: (index, trial) for index, trial in enumerate(session.trials)}
    if payload["trial"] not in by_id:
        raise AnswerError(404, "unknown trial")
    index, trial = by_id[payload["trial"]]
    if trial.trial_id in answered:
        raise AnswerError(409, "this trial is already answered")
    record: dict[str, Any] = {
        "session": session.session_id,
        "listener": session.listener,
        "test": session.test,
        "seed": session.seed,
        "trial": trial.trial_id,
        "index": index,
        "riff": trial.riff,
    }
    if trial.kind == ABX:
        choice = payload.get("choice")
        if choice not in ("A", "B") or set(payload) - {"trial", "choice"}:
            raise AnswerError(400, "an ABX answer is {'trial': id, 'choice': 'A' or 'B'}")
        return {**record, "arm": trial.arm, "choice": choice, "correct": choice == trial.correct}
    ratings = payload.get("ratings")
    rated = {slot.token: slot for slot in trial.rated()}
    if not isinstance(ratings, dict) or set(ratings) != set(rated) or set(payload) - {"trial", "ratings"}:
        raise AnswerError(400, "a MUSHRA answer rates every condition of the page: {'trial': id, 'ratings': {...}}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 100 for v in ratings.values()):
        raise AnswerError(400, "ratings are numbers from 0 to 100")
    return {**record, "ratings": {rated[token].condition: float(value) for token, value in ratings.items()}}

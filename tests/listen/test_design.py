"""Trial design and blinding (pure): seeded, balanced, MUSHRA pages within the limit, answers decoded by the key."""

from __future__ import annotations

from collections import Counter

import pytest

from sd1job.listen.design import (
    ANCHOR,
    HIDDEN_REFERENCE,
    MAX_MUSHRA_CONDITIONS,
    PEDAL,
    AnswerError,
    Session,
    decode_answer,
    new_session,
    public_trial,
)

ARMS = ["c44", "c88", "c440"]
RIFFS = ["battery", "ohwell"]


def test_a_session_is_drawn_whole_from_its_seed() -> None:
    first = new_session("s" * 32, "ann", "abx", 11, ARMS, RIFFS, 4, "d")
    again = new_session("s" * 32, "ann", "abx", 11, ARMS, RIFFS, 4, "d")
    other = new_session("s" * 32, "ann", "abx", 12, ARMS, RIFFS, 4, "d")
    assert first == again and first.trials != other.trials
    assert Session.from_json(first.to_json()) == first
    assert Counter(t.arm for t in first.trials) == {arm: 4 for arm in ARMS}
    for trial in first.trials:
        a, b, x = trial.slots
        assert {a.condition, b.condition} == {PEDAL, trial.arm}
        assert x.condition == (a if trial.correct == "A" else b).condition
    correct = Counter(t.correct for t in new_session("t" * 32, "b", "abx", 5, ARMS, RIFFS, 100, "d").trials)
    assert 120 < correct["A"] < 180  # X repeats A about half the time


def test_mushra_pages_hold_at_most_twelve_conditions() -> None:
    arms = [f"c{n}" for n in range(1, 16)]
    session = new_session("m" * 32, "ann", "mushra", 3, arms, RIFFS, 1, "d")
    assert len(session.trials) == 2 * len(RIFFS)
    for trial in session.trials:
        rated = [slot.condition for slot in trial.rated()]
        assert len(rated) <= MAX_MUSHRA_CONDITIONS and HIDDEN_REFERENCE in rated and ANCHOR in rated
        assert trial.slots[0].label == "Reference" and trial.slots[0].condition == PEDAL
    rated_arms = Counter(c for t in session.trials for c in (s.condition for s in t.rated()) if c.startswith("c"))
    assert rated_arms == {arm: len(RIFFS) for arm in arms}


def test_answers_are_checked_and_decoded_with_the_key() -> None:
    session = new_session("a" * 32, "ann", "abx", 1, ARMS, RIFFS, 1, "d")
    trial = session.trials[0]
    assert set(public_trial(session, 0)) == {"trial", "index", "total", "kind", "stimuli"}
    record = decode_answer(session, {"trial": trial.trial_id, "choice": trial.correct}, set())
    assert record["correct"] is True and record["arm"] == trial.arm and record["seed"] == 1
    for payload, status in [
        ({"trial": trial.trial_id, "choice": "X"}, 400),
        ({"trial": trial.trial_id, "choice": "A", "extra": 1}, 400),
        ({"trial": "nope", "choice": "A"}, 404),
        ([], 400),
    ]:
        with pytest.raises(AnswerError) as refused:
            decode_answer(session, payload, set())
        assert refused.value.status == status
    with pytest.raises(AnswerError) as duplicate:
        decode_answer(session, {"trial": trial.trial_id, "choice": "A"}, {trial.trial_id})
    assert duplicate.value.status == 409
    mushra = new_session("b" * 32, "ann", "mushra", 1, ARMS, RIFFS, 1, "d")
    page = mushra.trials[0]
    ratings = {slot.token: 50 for slot in page.rated()}
    decoded = decode_answer(mushra, {"trial": page.trial_id, "ratings": ratings}, set())
    assert set(decoded["ratings"]) == {HIDDEN_REFERENCE, ANCHOR, *ARMS}
    for bad in (
        {**ratings, next(iter(ratings)): 101},
        {**ratings, next(iter(ratings)): True},
        dict(list(ratings.items())[1:]),
    ):
        with pytest.raises(AnswerError):
            decode_answer(mushra, {"trial": page.trial_id, "ratings": bad}, set())

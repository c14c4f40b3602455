"""The listening statistics (pure): calibrated against guessing, sensitive to hearing, MUSHRA screening and tests."""

from __future__ import annotations

import numpy as np
import pytest

from sd1job.listen import analysis
from sd1job.listen.design import ANCHOR, HIDDEN_REFERENCE

ALPHA = 0.05


def abx_records(listener: str, arm: str, outcomes: list[bool]) -> list[dict]:
    return [{"test": "abx", "listener": listener, "arm": arm, "correct": c} for c in outcomes]


def test_the_issue_example_reads_as_stated() -> None:
    guessing = analysis.abx_arm([(12, 24)], ALPHA, 0.3)
    hearing = analysis.abx_arm([(20, 24)], ALPHA, 0.3)
    assert round(guessing["p"], 2) == 0.58 and guessing["verdict"] == "not shown" and guessing["d_prime"] == 0
    assert round(hearing["p"], 4) == 0.0008 and hearing["verdict"] == "audible"
    assert hearing["d_prime_low"] < hearing["d_prime"] < hearing["d_prime_high"]
    sentences = analysis.listening_sentences(
        analysis.analyse_abx(abx_records("a", "c44", [True] * 12 + [False] * 12), ALPHA, 0.3, 0.8), None
    )
    assert sentences[0].startswith("Listeners could not tell c44 (12 of 24 correct, p 0.58) from the pedal")


def test_random_answering_is_called_audible_at_no_more_than_alpha() -> None:
    """Panels of 1 to 5 guessing listeners, 6 to 30 trials each: the false 'audible' rate over 1500 panels."""
    rng = np.random.default_rng(7)
    panels = 1500
    audible = 0
    for _ in range(panels):
        trials = rng.integers(6, 31, size=rng.integers(1, 6))
        audible += analysis.abx_arm(list(zip(rng.binomial(trials, 0.5), trials, strict=True)), ALPHA, 0.3)[
            "verdict"
        ] == ("audible")
    rate = audible / panels
    assert rate <= ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / panels)  # within two Monte Carlo errors of alpha
    assert rate > 0.005  # and not a test that never fires


def test_pooling_discounts_one_listener_who_hears_it_among_guessers() -> None:
    pooled = analysis.beta_binomial_pool([(20, 20), (10, 20), (9, 20), (11, 20)])
    assert pooled["rho"] > 0.2 and pooled["effective_trials"] < 80
    naive = analysis.binomial_tail(50, 80, 0.5)
    assert analysis.abx_arm([(20, 20), (10, 20), (9, 20), (11, 20)], ALPHA, 0.3)["p"] > naive
    assert analysis.beta_binomial_pool([(12, 24)])["rho"] == 0.0


def test_similarity_needs_the_stated_trials() -> None:
    needed = analysis.trials_needed(0.3, ALPHA, 0.8)
    assert needed is not None and 40 < needed < 120
    half = needed // 2
    assert analysis.abx_arm([(needed // 2, needed)], ALPHA, 0.3)["verdict"] == "indistinguishable"
    assert analysis.abx_arm([(half // 2, half // 2 * 2)], ALPHA, 0.3)["verdict"] != "audible"
    assert analysis.trials_needed(0.2, ALPHA, 0.8) > needed  # a tighter margin takes more trials


def test_d_prime_inverts_the_abx_model() -> None:
    for d in (0.5, 1.0, 2.0, 3.0):
        assert analysis.abx_d_prime(analysis.abx_proportion(d)) == pytest.approx(d, abs=1e-6)
    assert analysis.abx_proportion(0.0) == pytest.approx(0.5)


def mushra_record(listener: str, riff: str, ratings: dict[str, float]) -> dict:
    return {"test": "mushra", "listener": listener, "riff": riff, "ratings": ratings}


def test_mushra_screens_listeners_and_ranks_arms() -> None:
    rng = np.random.default_rng(3)
    records = []
    for listener in ("ann", "bob", "cy", "dee", "eli", "fox"):
        for riff in ("r1", "r2", "r3"):
            records.append(
                mushra_record(
                    listener,
                    riff,
                    {
                        HIDDEN_REFERENCE: 100 if listener != "bob" else 60,
                        ANCHOR: 15 + rng.normal(0, 3),
                        "c44": 40 + rng.normal(0, 5),
                        "c88": 60 + rng.normal(0, 5),
                        "c440": 85 + rng.normal(0, 5),
                    },
                )
            )
    result = analysis.analyse_mushra(records, ALPHA)
    assert result["excluded"] == ["bob"]
    assert result["conditions"][HIDDEN_REFERENCE]["median"] == 100
    c440 = result["conditions"]["c440"]
    assert c440["low"] <= c440["median"] <= c440["high"] and c440["n"] == 15
    assert result["friedman"]["p"] < 0.001 and result["friedman"]["blocks"] == 15
    assert all(pair["significant"] for pair in result["pairs"].values())
    assert "excluded by post-screening: bob" in analysis.listening_sentences(None, result)[0]


def test_spearman_interval_of_metrics_against_listeners() -> None:
    heard = {"c44": 0.9, "c88": 0.8, "c132": 0.6, "c176": 0.55, "c220": 0.5}
    metrics = {"esr": {"c44": 0.1, "c88": 0.05, "c132": 0.03, "c176": 0.02, "c220": 0.01}, "mel": {"c44": None}}
    result = analysis.metric_correlations(metrics, heard)
    assert result["esr"]["rho"] == pytest.approx(1.0) and result["esr"]["n"] == 5
    assert result["mel"]["rho"] is None
    mixed = analysis.spearman_interval([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert -1 < mixed["low"] < mixed["rho"] < mixed["high"] < 1

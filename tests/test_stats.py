"""The statistics on constructed cases with a known answer, and why the test works on seeds, not (seed, riff) pairs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from sd1job import stats

RIFFS = ("battery", "electricEye", "holywar", "ohwell", "sanitarium", "shadowlove")
RIFF_EFFECT = np.log([1.0, 1.4, 0.8, 1.2, 0.6, 1.1])  # some riffs are harder than others, in every arm
SEED_SD = 0.14  # about 15 % between two seeds of one context, as measured on the demo data
RIFF_SD = 0.05


def simulate(true_esr: dict[int | None, float], seeds: int, rng: np.random.Generator) -> list[dict]:
    """Rows of a sweep: log ESR = log true + riff effect + one seed-level draw per model + small per-riff noise."""
    rows = []
    for context, esr in true_esr.items():
        kind = "stateful" if context is None else "windowed"
        for seed in range(25, 25 + seeds):
            model_luck = rng.normal(0.0, SEED_SD)
            for riff, effect in zip(RIFFS, RIFF_EFFECT, strict=True):
                value = math.exp(math.log(esr) + effect + model_luck + rng.normal(0.0, RIFF_SD))
                rows.append({"kind": kind, "context": context, "seed": seed, "riff": riff, "esr": value})
    return rows


def unit_info(rows: list[dict], improving: set[str] = frozenset()) -> dict[str, dict]:
    names = {(f"c{r['context']}" if r["kind"] == "windowed" else "stateful") + f"-s{r['seed']}" for r in rows}
    return {name: {"val_esr": 0.01, "still_improving": name in improving} for name in names}


def arm(result: dict, name: str) -> dict:
    return next(a for a in result["arms"] if a["arm"] == name)


def test_holm_against_hand_computed_values() -> None:
    # sorted 0.01, 0.02, 0.03, 0.5 -> 4*0.01, max(3*0.02, .04), max(2*0.03, .06), max(0.5, .06)
    adjusted = stats.holm({"a": 0.03, "b": 0.01, "c": 0.5, "d": 0.02})
    assert adjusted == pytest.approx({"b": 0.04, "d": 0.06, "a": 0.06, "c": 0.5})
    assert stats.holm({"x": 0.6, "y": 0.7}) == pytest.approx({"x": 1.0, "y": 1.0})
    assert stats.holm({}) == {}


def test_identical_contexts_are_not_significant_and_the_verdict_says_so() -> None:
    rows = simulate({44: 0.02, 220: 0.02, 440: 0.02}, seeds=3, rng=np.random.default_rng(1))
    result = stats.analyse(rows, unit_info(rows))
    assert result["testable"]
    assert not any(a["comparison"]["significant"] for a in result["arms"] if a["comparison"])
    assert result["verdict"][0].startswith("No context is significantly worse than the best")
    assert "within seed noise" in result["verdict"][0]


def test_a_clearly_worse_context_is_significant_and_named() -> None:
    rows = simulate({44: 0.06, 220: 0.02, 440: 0.019}, seeds=4, rng=np.random.default_rng(2))
    result = stats.analyse(rows, unit_info(rows))
    assert result["best"] in {"c220", "c440"}
    assert arm(result, "c44")["comparison"]["significant"]
    assert result["smallest_not_worse"] == "c220"
    assert result["verdict"][0].startswith("Significantly worse than the best") and "c44;" in result["verdict"][0]
    assert "The smallest context not significantly worse than the best is c220." in result["verdict"]
    change = result["change"]
    expected = 100 * (
        math.exp(np.mean(np.log(arm(result, "c440")["seed_means"])) - np.mean(np.log(arm(result, "c44")["seed_means"])))
        - 1
    )
    assert change["mean"] == pytest.approx(expected) and change["high"] < 0  # the whole interval is a gain
    sentence = next(s for s in result["verdict"] if s.startswith("Going from 44 to 440"))
    assert f"lowers test ESR by {abs(change['mean']):.0f} %" in sentence
    assert f"(95 % CI {abs(change['high']):.0f} to {abs(change['low']):.0f} %)" in sentence


def test_the_interval_covers_the_true_geometric_mean_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(3)
    # A model's riff-mean is its luck (log-normal, one draw per seed) times the riff-mean of the true ESRs.
    true = float(np.mean(np.exp(np.log(0.02) + RIFF_EFFECT)))
    covered = 0
    trials = 2000
    for _ in range(trials):
        luck = rng.normal(0.0, SEED_SD, size=3)
        riff_means = [float(np.mean(np.exp(np.log(0.02) + RIFF_EFFECT + lk))) for lk in luck]
        interval = stats.mean_interval(riff_means)
        covered += interval.low <= true <= interval.high
    assert covered / trials == pytest.approx(0.95, abs=0.02)


def test_the_seed_level_test_holds_alpha_where_a_test_over_pairs_does_not() -> None:
    """Identical arms, seed noise as large as on the demo data: how often each test cries wolf."""
    rng = np.random.default_rng(4)
    trials = 1500
    welch = pairs = 0
    for _ in range(trials):
        rows = simulate({44: 0.02, 440: 0.02}, seeds=3, rng=rng)
        a = [r["esr"] for r in rows if r["context"] == 44]
        b = [r["esr"] for r in rows if r["context"] == 440]
        pairs += scipy_stats.wilcoxon(np.log(a), np.log(b)).pvalue < 0.05  # over the 18 (seed, riff) pairs
        means = stats._seed_means(rows)
        p = stats.p_worse(list(means["c44"].values()), list(means["c440"].values()))
        q = stats.p_worse(list(means["c440"].values()), list(means["c44"].values()))
        welch += min(p, q) < 0.025  # two one-sided tests at alpha/2: a two-sided 5 % test
    assert welch / trials <= 0.07
    assert pairs / trials >= 0.4  # Wilcoxon over pairs: identical contexts "differ" in about half the sweeps


def test_one_seed_gives_no_interval_no_test_and_says_why() -> None:
    rows = simulate({44: 0.03, 440: 0.02}, seeds=1, rng=np.random.default_rng(5))
    result = stats.analyse(rows, unit_info(rows))
    assert not result["testable"] and result["smallest_not_worse"] is None
    assert all(a["interval"]["low"] is None and a["comparison"] is None for a in result["arms"])
    assert "no interval or test is possible" in result["verdict"][0] and "train.repeats" in result["verdict"][0]
    assert "unconfirmed" in result["verdict"][1]
    json.dumps(result, allow_nan=False)


def test_missing_units_and_the_stateful_arm() -> None:
    rows = simulate({44: 0.03, 440: 0.02, None: 0.02}, seeds=3, rng=np.random.default_rng(6))
    rows = [r for r in rows if not (r["context"] == 440 and r["seed"] == 27)]  # a failed unit
    result = stats.analyse(rows, unit_info(rows, improving={"c44-s25"}))
    assert arm(result, "c440")["seeds"] == [25, 26] and arm(result, "stateful")["seeds"] == [25, 26, 27]
    stateful = result["stateful"]
    assert stateful["against"] == result["best"] and stateful["p_value"] is not None
    sentence = next(s for s in result["verdict"] if s.startswith("The stateful model"))
    assert f"{abs(stateful['change']['mean']):.0f} %" in sentence and result["best"] in sentence
    assert result["verdict"][-1].startswith("1 of 8 models was still improving")
    json.dumps(result, allow_nan=False)


def test_the_saturating_fit_recovers_a_known_curve_and_refuses_too_few_contexts() -> None:
    rng = np.random.default_rng(7)
    contexts = np.repeat([44, 88, 132, 176, 220, 264, 308, 352, 396, 440], 3)
    esr = stats.saturating(contexts, 0.015, 0.03, 90.0) * np.exp(rng.normal(0.0, 0.03, size=len(contexts)))
    fit = stats.fit_saturating(contexts, esr)
    assert fit["a"] == pytest.approx(0.015, rel=0.15)
    assert fit["tau"] == pytest.approx(90.0, rel=0.3)
    assert fit["n90"] == pytest.approx(fit["tau"] * math.log(10))
    assert fit["r2"] > 0.8 and len(fit["curve_x"]) == len(fit["curve_y"])
    assert "reason" in stats.fit_saturating([44, 88, 132], [0.03, 0.02, 0.018])
    rows = simulate(
        dict(zip(range(44, 441, 44), stats.saturating(np.arange(44, 441, 44), 0.015, 0.03, 90.0), strict=True)),
        seeds=3,
        rng=rng,
    )
    result = stats.analyse(rows, unit_info(rows), sample_rate=44100)
    sentence = next(s for s in result["verdict"] if s.startswith("The fitted curve"))
    assert f"{result['fit']['n90']:.0f} samples ({1000 * result['fit']['n90'] / 44100:.1f} ms)" in sentence


def seed_means(rng: np.random.Generator, sweeps: int, arms: int, seeds: int, esr: float = 0.02) -> np.ndarray:
    """Per-seed riff-mean ESRs of identical arms, shape (sweeps, arms, seeds), as ``simulate`` draws them."""
    luck = rng.normal(0.0, SEED_SD, size=(sweeps, arms, seeds, 1))
    noise = rng.normal(0.0, RIFF_SD, size=(sweeps, arms, seeds, len(RIFFS)))
    return np.mean(np.exp(np.log(esr) + RIFF_EFFECT + luck + noise), axis=3)


def false_alarms(means: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Share of sweeps of identical arms where some arm is called worse than the best: ours, and the plain procedure.

    The plain procedure is the obvious one: a one-sided test against the arm that came out best, at alpha,
    Holm-corrected over the other arms.
    """
    ours = plain = 0
    for sweep in means:
        by_arm = {f"c{44 * (i + 1)}": list(values) for i, values in enumerate(sweep)}
        best = min(by_arm, key=lambda arm: np.mean(np.log(by_arm[arm])))
        result = stats.worse_than_best(by_arm, best, alpha)
        ours += any(c["significant"] for c in result.values())
        plain += any(p < alpha for p in stats.holm({arm: c["p_value"] for arm, c in result.items()}).values())
    return ours / len(means), plain / len(means)


def test_choosing_the_best_from_the_data_is_paid_for_and_identical_arms_stay_within_alpha() -> None:
    rng = np.random.default_rng(8)
    ours, plain = false_alarms(seed_means(rng, 1500, arms=10, seeds=5))
    assert ours <= 0.06  # any false "worse than the best" among ten identical contexts
    assert plain >= 0.10  # testing against the luckiest arm as if it had been chosen in advance
    ours, _ = false_alarms(seed_means(rng, 1000, arms=4, seeds=3))
    assert ours <= 0.06


def test_worse_than_best_against_hand_computed_welch_p_values() -> None:
    arms = {"c44": [0.030, 0.034, 0.029], "c220": [0.021, 0.024, 0.020], "c440": [0.020, 0.019, 0.023]}

    def p(a: str, b: str) -> float:
        return scipy_stats.ttest_ind(np.log(arms[a]), np.log(arms[b]), equal_var=False, alternative="greater").pvalue

    result = stats.worse_than_best(arms, "c440")
    assert set(result) == {"c44", "c220"}
    assert result["c44"]["p_value"] == pytest.approx(p("c44", "c440"))
    expected = {arm: min(1.0, 2 * min(p(arm, b) for b in arms if b != arm)) for arm in arms}
    assert result["c220"]["p_adjusted"] == pytest.approx(expected["c220"])
    holm = stats.holm(expected)
    assert {arm: c["p_holm"] for arm, c in result.items()} == pytest.approx({a: holm[a] for a in ("c44", "c220")})
    assert result["c44"]["significant"] == (holm["c44"] < 0.05)
    assert stats.worse_than_best({"c44": [0.03], "c440": [0.02, 0.021]}, "c440") == {}


def test_the_stateful_claims_hold_alpha_against_identical_windowed_arms_and_find_a_real_gain() -> None:
    rng = np.random.default_rng(9)
    means = seed_means(rng, 1000, arms=5, seeds=3)
    alarms = 0
    for sweep in means:
        windowed = {f"c{44 * (i + 1)}": list(values) for i, values in enumerate(sweep[1:])}
        best = min(windowed, key=lambda arm: np.mean(np.log(windowed[arm])))
        alarms += stats.stateful_against(list(sweep[0]), windowed, best)["significant"]
    assert alarms / len(means) <= 0.06
    rows = simulate({44: 0.03, 440: 0.02, None: 0.008}, seeds=3, rng=np.random.default_rng(10))
    result = stats.analyse(rows, unit_info(rows))
    assert result["stateful"]["significant"] and result["stateful"]["direction"] == "better"
    sentence = next(s for s in result["verdict"] if s.startswith("The stateful model"))
    assert "significantly better than every windowed context" in sentence
    assert f"{abs(result['stateful']['change']['mean']):.0f} % lower than the best windowed context c440" in sentence


def test_a_context_with_one_scored_unit_is_left_untested_and_the_rest_tested() -> None:
    rows = simulate({44: 0.06, 220: 0.02, 440: 0.019}, seeds=4, rng=np.random.default_rng(11))
    rows = [r for r in rows if not (r["context"] == 220 and r["seed"] != 25)]  # three of c220's four units failed
    result = stats.analyse(rows, unit_info(rows))
    assert result["testable"] and result["best"] == "c440"
    assert arm(result, "c220")["comparison"] is None and arm(result, "c220")["interval"]["low"] is None
    assert arm(result, "c44")["comparison"]["significant"]
    assert result["smallest_not_worse"] == "c440"
    assert result["verdict"][0].startswith("Significantly worse than the best (c440")
    assert "over 4 seeds" in result["verdict"][0]
    assert any(s.startswith("Not tested, one model only: c220;") for s in result["verdict"])
    json.dumps(result, allow_nan=False)
    only_one = [r for r in rows if r["context"] != 220 and not (r["context"] == 44 and r["seed"] != 25)]
    result = stats.analyse(only_one, unit_info(only_one))
    assert not result["testable"] and result["smallest_not_worse"] is None
    assert (
        result["verdict"][0].startswith("Only c440 has more than one training seed")
        and "train.repeats" in (result["verdict"][0])
    )


def test_a_fixed_pair_can_be_clear_while_the_tests_against_the_best_are_not_and_the_verdict_says_why() -> None:
    curve = {n: 0.015 + 0.0145 * math.exp(-n / 60) for n in range(44, 441, 44)}  # 44 -> 220 about 30 %, like the demo
    rows = simulate(curve, seeds=3, rng=np.random.default_rng(5))
    result = stats.analyse(rows, unit_info(rows))
    assert not any(a["comparison"]["significant"] for a in result["arms"] if a["comparison"])
    assert result["change"]["high"] < 0  # yet 44 -> 440, fixed in advance, is a clear gain
    at = result["verdict"].index(next(s for s in result["verdict"] if s.startswith("Going from 44 to 440")))
    assert result["verdict"][at + 1].startswith("That pair, smallest against largest context, is fixed in advance")


def test_a_flat_or_rising_fit_is_not_read_as_diminishing_returns() -> None:
    rng = np.random.default_rng(8)
    flat = simulate({n: 0.02 for n in (44, 176, 308, 440)}, seeds=3, rng=rng)
    sentence = next(s for s in stats.analyse(flat, unit_info(flat))["verdict"] if s.startswith("The fitted curve"))
    assert "reaches 90 %" not in sentence
    assert "does not fall with n" in sentence or "falls by less than twice its uncertainty" in sentence


def test_the_fitted_curve_is_written_with_its_own_sign() -> None:
    rising = {"a": 0.032, "b": -1.07, "tau": 7.0, "b_se": 0.5, "n90": 16.0}
    (sentence,) = stats._fit_sentences(rising, 44100)
    assert "ESR(n) = 0.032 - 1.07 exp(-n / 7)" in sentence and "+ -" not in sentence


def test_the_undertrained_flag_names_what_cut_the_models_and_what_to_raise() -> None:
    def sentence(budget: list[str]) -> str:
        result = {"still_improving": ["c44-s25", "c440-s25"], "cut_by_time_budget": budget, "units": 6}
        (text,) = stats._undertrained_sentences(result)
        return text

    assert "the epoch cap cut them" in sentence([]) and "raise train.epochs before" in sentence([])
    both = sentence(["c44-s25", "c440-s25"])
    assert "the time budget cut them" in both and "raise train.max_train_seconds before" in both
    assert "train.epochs and train.max_train_seconds" in sentence(["c440-s25"])
    assert stats._undertrained_sentences({"still_improving": [], "units": 6}) == []


def failed_info(rows: list[dict], failed: dict[str, str]) -> dict[str, dict]:
    info = unit_info(rows)
    for name, outcome in failed.items():
        info[name].update(outcome=outcome, failure=f"{name} {outcome.replace('_', ' ')} (details)")
    return info


def test_a_failed_unit_is_named_first_left_out_of_its_arm_and_never_called_noise() -> None:
    rows = simulate({44: 0.03, 264: 0.02, 440: 0.02}, seeds=3, rng=np.random.default_rng(21))
    for row in rows:  # c264-s27 stuck at the trivial level, as the unit was
        if row["context"] == 264 and row["seed"] == 27:
            row["esr"] = 1.6
    folded = stats.analyse(rows, unit_info(rows))  # what the report did before: the failure read as noise
    assert arm(folded, "c264")["interval"]["high"] > 1.0
    result = stats.analyse(rows, failed_info(rows, {"c264-s27": "failed_to_learn"}))
    assert result["verdict"][0].startswith("1 of 9 models failed to train and was left out of every interval")
    assert "c264-s27 failed to learn (details)" in result["verdict"][0]
    assert result["verdict"][1] == "So c264 on 2 of 3 seeds."
    c264 = arm(result, "c264")
    assert c264["seeds"] == [25, 26] and c264["failed"] == ["c264-s27"]
    assert c264["interval"]["high"] < 0.1 and c264["interval"]["n"] == 2
    assert result["failed"] == [
        {"unit": "c264-s27", "outcome": "failed_to_learn", "text": "c264-s27 failed to learn (details)"}
    ]
    assert all("c264-s27" not in (o["unit"] for o in result["outliers"]) for _ in [0])
    json.dumps(result, allow_nan=False)


def test_an_arm_whose_every_seed_diverged_has_no_result_and_is_listed() -> None:
    rows = simulate({44: 0.03, 88: 0.02, 176: 0.02, 440: 0.02}, seeds=3, rng=np.random.default_rng(22))
    failed = {f"c88-s{seed}": "diverged" for seed in (25, 26, 27)}
    result = stats.analyse(rows, failed_info(rows, failed))
    assert result["verdict"][0].startswith("3 of 12 models failed to train and were left out")
    assert result["verdict"][1] == "So c88 on none."
    c88 = arm(result, "c88")
    assert c88["seeds"] == [] and c88["interval"] is None and len(c88["failed"]) == 3
    assert [a["arm"] for a in result["arms"]] == ["c44", "c88", "c176", "c440"]
    assert "c88" not in json.dumps(result["fit"]) and result["best"] != "c88"


def test_an_outlier_is_named_and_a_verdict_that_hangs_on_it_says_so() -> None:
    rng = np.random.default_rng(23)
    rows = simulate({44: 0.02, 132: 0.02, 264: 0.02, 440: 0.02}, seeds=4, rng=rng)
    calm = stats.analyse(rows, unit_info(rows))
    assert calm["outliers"] == [] and calm["without_outliers"] is None
    assert calm["verdict"][0].startswith("No context is significantly worse than the best")
    for row in rows:  # one seed of c440 learned, but far better than its siblings: it alone makes c440 "the best"
        if row["context"] == 440 and row["seed"] == 25:
            row["esr"] /= 8.0
    result = stats.analyse(rows, unit_info(rows))
    (odd,) = result["outliers"]
    assert odd["unit"] == "c440-s25" and odd["z"] < -4
    assert result["verdict"][0].startswith("c440-s25 is an outlier among the models that learned")
    assert result["without_outliers"]["changed"]
    assert result["verdict"][1].startswith("Without c440-s25 the verdict changes (")
    assert "this verdict depends on one model" in result["verdict"][1]


def test_the_outlier_rule_rarely_fires_on_healthy_sweeps() -> None:
    rng = np.random.default_rng(24)
    flagged = sum(
        bool(stats.outliers({f"c{44 * a}": dict(enumerate(m)) for a, m in enumerate(sweep, 1)}))
        for sweep in seed_means(rng, sweeps=400, arms=10, seeds=3)
    )
    assert flagged / 400 < 0.05


def test_one_wild_model_does_not_bend_the_fit_and_a_fit_it_decides_is_not_read() -> None:
    rng = np.random.default_rng(25)
    contexts = np.repeat([44, 88, 132, 176, 220, 264, 308, 352, 396, 440], 3)
    esr = stats.saturating(contexts, 0.015, 0.03, 60.0) * np.exp(rng.normal(0.0, 0.1, size=len(contexts)))
    wild = esr.copy()
    wild[-1] = 0.5  # one model at n = 440 far above the curve
    robust = stats.fit_saturating(contexts, wild)
    assert robust["b"] > 0 and robust["a"] == pytest.approx(0.015, rel=0.3)
    assert robust["tau"] == pytest.approx(60.0, rel=0.5)
    # A curve that exists only because of one model: one seed per context, flat but for c44 and a little c88.
    single = [44, 88, 132, 176, 220, 264, 308, 352, 396, 440]
    flat = 0.02 * np.array([1.05, 0.95, 1.04, 0.96, 1.03, 0.97, 1.05, 0.95, 1.02, 0.98])
    flat[:2] = (0.035, 0.024)
    names = [f"c{c}-s25" for c in single]
    decided = stats.fit_saturating(single, flat, names)
    assert decided["decided_by"]["unit"] == "c44-s25"
    (sentence,) = stats._fit_sentences(decided, 44100)
    assert "is decided by one model: without c44-s25" in sentence and "reaches 90 %" not in sentence
    # The same shape carried by three seeds at c44 and c88 is no longer one model's doing.
    replicated = stats.fit_saturating(
        [44, 44, 88, 88, *single],
        [0.034, 0.036, 0.025, 0.023, *flat],
        ["c44-s26", "c44-s27", "c88-s26", "c88-s27", *names],
    )
    assert replicated["decided_by"] is None and stats._fit_reading(replicated) == "falls"

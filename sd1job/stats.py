"""Statistics that turn a sweep's scores into an answer: intervals, tests, a fitted curve, a verdict.

Pure functions on numbers (scipy.stats and scipy.optimize do every test, interval and fit); no I/O.

The unit of replication is the trained model. An arm (a context size, or the stateful model) is
trained once per seed and each model is scored on the same R riffs. The riffs scored by one model
share that model's luck of initialisation and batch order, so its R scores are not R independent
observations: with seed noise as large as the effect of context (on the demo data, about 15 %
between two seeds against about 30 % from n=44 to n=220), a test over (seed, riff) pairs, such as
a Wilcoxon signed-rank test, calls identical arms different far more often than alpha
(tests/test_stats.py measures it). So every interval and test here works on the per-seed riff
means, one number per model:

- an arm's test ESR gets a t-interval over the log of its seeds' riff means, exponentiated: an
  interval for the geometric mean over seeds, always positive and as asymmetric as ESR spreads
  are (none with one seed);
- an arm is compared with the best arm by a one-sided Welch t-test on the log of those means
  (ESR ratios are multiplicative; riff effects cancel, every arm being scored on the same riffs).
  The best arm is the one that came out lowest, partly by luck, so a plain test against it at
  alpha (even Holm-corrected over the other arms) calls identical arms worse than the best more
  often than alpha: for two identical arms, twice as often, since choosing the best has already
  chosen the direction. "Arm i is significantly worse than the best" rejects "arm i is among the
  best" (its mean log ESR is at most every other arm's), whose valid p-value is the Bonferroni
  bound (m - 1) min_j p(i worse than j) over the m arms with two or more seeds; Holm over those m
  arms then keeps the chance of any false "worse" at most alpha whichever arms are truly tied
  (tests/test_stats.py measures both procedures). The stateful arm gets the same care: "better"
  must beat every windowed arm, "worse" is Bonferroni over them;
- a relative change between two arms is the ratio of their geometric means over seeds, with the
  95 % interval of the same Welch comparison, exponentiated;
- the diminishing returns are a fitted ESR(n) = a + b exp(-n / tau) over every windowed model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
INTERVAL_METHOD = "geometric mean over seeds of the riff-mean ESR, t-interval on its log"
TEST_METHOD = (
    "one-sided Welch t-tests on the log of the seeds' riff-mean ESR, adjusted for choosing the best from the data "
    "(Bonferroni over each arm's comparisons), Holm-corrected over the arms"
)
STATEFUL_METHOD = "Welch tests on log ESR against every windowed context"
CHANGE_METHOD = "ratio of geometric means over seeds; 95 % interval from the Welch comparison of log ESR"
OUTLIER_METHOD = (
    "a model whose log ESR is more than 4 robust seed standard deviations from its arm's other seeds "
    "(arms of 3 or more seeds; the spread from the median gap between seeds of one arm)"
)
FIT_METHOD = "a + b exp(-n / tau) fitted to log ESR with a soft-L1 loss, then checked leaving out each model in turn"
MIN_FIT_CONTEXTS = 4
# The robust fit's loss turns from quadratic to linear beyond this log-ESR residual (about 2.5
# seed standard deviations of the demo data's 0.1 to 0.15): a model that far off pulls linearly.
FIT_LOSS_SCALE = 0.3
# A leave-one-out fit whose 90 % point moves by more than this factor says the curve hangs on one unit.
FRAGILE_N90_FACTOR = 2.0
# Leave-one-out score beyond which a model that learned is named as an outlier of its arm.
OUTLIER_Z = 4.0


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval (``low``/``high`` None when no interval is possible)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str


def mean_interval(seed_means: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The geometric mean of per-seed ESRs with a t-interval on their log (no interval with fewer than two)."""
    logs = np.log(np.asarray(seed_means, dtype=float))
    centre = float(np.mean(logs))
    if len(logs) < 2:
        return Interval(math.exp(centre), None, None, len(logs), INTERVAL_METHOD)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, len(logs) - 1) * scipy_stats.sem(logs))
    return Interval(math.exp(centre), math.exp(centre - half), math.exp(centre + half), len(logs), INTERVAL_METHOD)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _p_worse_matrix(arms: Sequence[Sequence[float]], others: Sequence[Sequence[float]]) -> np.ndarray:
    """One-sided Welch p-values that arm i has higher log ESR than other j (per-seed means; 2+ seeds each).

    NaN (both arms' seeds agree exactly: no evidence either way) becomes 1.
    """

    def moments(group: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logs = [np.log(np.asarray(values, dtype=float)) for values in group]
        return (
            np.array([x.mean() for x in logs]),
            np.array([x.std(ddof=1) for x in logs]),
            np.array([x.size for x in logs]),
        )

    (m1, s1, n1), (m2, s2, n2) = moments(arms), moments(others)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = scipy_stats.ttest_ind_from_stats(
            m1[:, None],
            s1[:, None],
            n1[:, None],
            m2[None, :],
            s2[None, :],
            n2[None, :],
            equal_var=False,
            alternative="greater",
        ).pvalue
    return np.where(np.isnan(p), 1.0, p)


def p_worse(arm: Sequence[float], best: Sequence[float]) -> float | None:
    """One-sided Welch p-value that ``arm`` has higher ESR than ``best`` (per-seed means); None if untestable."""
    if len(arm) < 2 or len(best) < 2:
        return None
    return float(_p_worse_matrix([arm], [best])[0, 0])


def worse_than_best(seed_means: Mapping[str, Sequence[float]], best: str, alpha: float = 0.05) -> dict[str, Any]:
    """Each arm with two or more seeds against arm ``best`` (per-seed means by arm), for arms other than best.

    Per arm: ``p_value``, the raw one-sided Welch p-value that it is worse than the best;
    ``p_adjusted`` = min(1, (m - 1) min_j p(arm worse than arm j)) over the m arms with two or
    more seeds, valid although the best was chosen from the data; ``p_holm``, Holm over the m
    arms (the best one included); ``significant`` = p_holm < alpha. Empty when ``best`` or every
    other arm has fewer than two seeds.
    """
    names = [arm for arm, values in seed_means.items() if len(values) >= 2]
    if best not in names or len(names) < 2:
        return {}
    p = _p_worse_matrix([seed_means[a] for a in names], [seed_means[a] for a in names])
    np.fill_diagonal(p, 1.0)
    adjusted = {arm: float(min(1.0, (len(names) - 1) * p[i].min())) for i, arm in enumerate(names)}
    corrected = holm(adjusted)
    reference = names.index(best)
    return {
        arm: {
            "p_value": float(p[i, reference]),
            "p_adjusted": adjusted[arm],
            "p_holm": corrected[arm],
            "significant": corrected[arm] < alpha,
        }
        for i, arm in enumerate(names)
        if arm != best
    }


def stateful_against(
    stateful: Sequence[float], windowed: Mapping[str, Sequence[float]], best: str, alpha: float = 0.05
) -> dict[str, Any]:
    """The stateful arm against the windowed arms (per-seed means), and its change from arm ``best``.

    "Better" means lower ESR than every windowed arm with two or more seeds: an intersection-union
    test, ``p_better`` the largest of the one-sided Welch p-values. "Worse" means worse than the
    best windowed arm, which was picked for its low ESR: ``p_worse`` is Bonferroni over those k
    arms. Each claim is made at alpha / 2, so ``p_value`` = min(1, 2 min(p_better, p_worse));
    ``direction`` says which claim it is. ``p_value`` is None without two seeds on both sides.
    """
    others = [values for values in windowed.values() if len(values) >= 2]
    result: dict[str, Any] = {
        "against": best,
        "p_value": None,
        "p_better": None,
        "p_worse": None,
        "direction": None,
        "significant": False,
        "method": STATEFUL_METHOD,
        "change": asdict(relative_change(windowed[best], stateful)),
    }
    if len(stateful) < 2 or not others:
        return result
    higher = _p_worse_matrix([stateful], others)[0]
    p_better = float(np.max(_p_worse_matrix(others, [stateful])[:, 0]))
    p_higher = float(min(1.0, len(others) * np.min(higher)))
    p_value = min(1.0, 2.0 * min(p_better, p_higher))
    result.update(
        p_value=p_value,
        p_better=p_better,
        p_worse=p_higher,
        direction="better" if p_better < p_higher else "worse",
        significant=p_value < alpha,
    )
    return result


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (monotone, capped at 1)."""
    order = sorted(pvalues, key=lambda key: pvalues[key])
    count = len(order)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, key in enumerate(order):
        running = max(running, min(1.0, (count - rank) * pvalues[key]))
        adjusted[key] = running
    return adjusted


def relative_change(before: Sequence[float], after: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Percent change of ESR from arm ``before`` to arm ``after`` (per-seed means), with its interval.

    The point is ``100 (G_after / G_before - 1)`` for geometric means G over seeds; the interval
    is the Welch interval of the difference of mean log ESR, exponentiated (None with one seed).
    """
    log_before, log_after = np.log(before), np.log(after)
    point = 100.0 * (math.exp(float(np.mean(log_after) - np.mean(log_before))) - 1.0)
    if len(before) < 2 or len(after) < 2:
        return Interval(point, None, None, min(len(before), len(after)), CHANGE_METHOD)
    result = scipy_stats.ttest_ind(log_after, log_before, equal_var=False)
    low, high = result.confidence_interval(confidence)
    as_percent = [_finite(100.0 * (math.exp(v) - 1.0)) if math.isfinite(v) else None for v in (low, high)]
    return Interval(point, as_percent[0], as_percent[1], min(len(before), len(after)), CHANGE_METHOD)


def saturating(n: np.ndarray, a: float, b: float, tau: float) -> np.ndarray:
    """The diminishing-returns curve ESR(n) = a + b exp(-n / tau)."""
    return a + b * np.exp(-np.asarray(n, dtype=float) / tau)


def fit_saturating(
    contexts: Sequence[float], esr: Sequence[float], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Fit ``a + b exp(-n / tau)`` to (context, ESR) points (one per model that learned), robustly.

    The fit minimises a soft-L1 loss (``scipy.optimize.least_squares``, scale ``FIT_LOSS_SCALE``)
    of the residuals in log ESR: seed spread is multiplicative, so every point weighs alike whatever
    its ESR, and a point far off the curve pulls it linearly, not quadratically. Then every point is
    left out in turn (a jackknife): when leaving out one model changes what the curve says (it no
    longer falls clearly, or ``n90`` moves by more than a factor ``FRAGILE_N90_FACTOR``), the fit
    is decided by that one unit: ``decided_by`` names it (from ``names``) and the verdict does not
    read the curve.

    Returns ``a, b, tau`` with standard errors, R^2 of log ESR, ``n90`` (the context where 90 % of
    the gain from n = 0 to infinity is reached: tau ln 10), the curve on a grid for plotting and
    ``decided_by``; or ``{"reason": ...}`` when fewer than four distinct contexts are given or the
    fit fails.
    """
    x = np.asarray(contexts, dtype=float)
    y = np.asarray(esr, dtype=float)
    labels = list(names) if names is not None else [f"point {i + 1}" for i in range(len(x))]
    fitted = _fit_log_saturating(x, y)
    if isinstance(fitted, str):
        return {"reason": fitted}
    a, b, tau, errors, r2 = fitted
    grid = np.linspace(x.min(), x.max(), 60)
    result: dict[str, Any] = {
        "a": a,
        "b": b,
        "tau": tau,
        "a_se": _finite(errors[0]),
        "b_se": _finite(errors[1]),
        "tau_se": _finite(errors[2]),
        "r2": r2,
        "n90": float(tau * math.log(10.0)),
        "curve_x": grid.tolist(),
        "curve_y": saturating(grid, a, b, tau).tolist(),
        "loss": f"soft-L1 on log ESR, scale {FIT_LOSS_SCALE}",
        "decided_by": None,
    }
    if _fit_reading(result) != "falls":
        return result
    for left_out in range(len(x)):
        keep = np.arange(len(x)) != left_out
        refit = _fit_log_saturating(x[keep], y[keep])
        if isinstance(refit, str):
            continue
        other = {"b": refit[1], "b_se": _finite(refit[3][1]), "n90": refit[2] * math.log(10.0)}
        ratio = max(other["n90"], 1e-9) / max(result["n90"], 1e-9)
        if _fit_reading(other) != "falls" or not 1 / FRAGILE_N90_FACTOR <= ratio <= FRAGILE_N90_FACTOR:
            result["decided_by"] = {"unit": labels[left_out], "without": {k: _finite(v) for k, v in other.items()}}
            break
    return result


def _fit_log_saturating(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, np.ndarray, float | None] | str:
    """(a, b, tau, standard errors, R^2 of log ESR) of the robust log fit, or why there is none."""
    if len(set(x.tolist())) < MIN_FIT_CONTEXTS:
        return f"a curve needs at least {MIN_FIT_CONTEXTS} context sizes"
    log_y = np.log(y)

    def residuals(parameters: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(saturating(x, *parameters), 1e-12)) - log_y

    start = (float(y.min()), float(max(y.max() - y.min(), 1e-6)), float(np.median(x) / 2))
    try:
        solution = optimize.least_squares(
            residuals,
            start,
            bounds=([0.0, -np.inf, 1e-3], [np.inf, np.inf, 10.0 * x.max()]),
            loss="soft_l1",
            f_scale=FIT_LOSS_SCALE,
            max_nfev=20_000,
        )
    except (ValueError, np.linalg.LinAlgError) as error:
        return f"the fit did not converge ({error})"
    if not solution.success:
        return f"the fit did not converge ({solution.message})"
    a, b, tau = (float(v) for v in solution.x)
    dof = max(len(x) - 3, 1)
    spread = float(np.sum(solution.fun**2)) / dof
    try:
        covariance = np.linalg.inv(solution.jac.T @ solution.jac) * spread
    except np.linalg.LinAlgError:
        covariance = np.full((3, 3), np.nan)
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    total = float(np.sum((log_y - log_y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(solution.fun**2)) / total if total > 0 else None
    return a, b, tau, errors, r2


def _fit_reading(fit: Mapping[str, Any]) -> str:
    """What a fitted curve says: ``falls`` (clearly, b > 2 standard errors), ``flat`` (not clearly, or b's error
    cannot be estimated) or ``rises``."""
    if fit["b"] <= 0:
        return "rises"
    b_se = fit.get("b_se")
    return "flat" if b_se is None or fit["b"] < 2 * b_se else "falls"


# --- failed units and outliers ----------------------------------------------------------------


def outliers(seed_means: Mapping[str, Mapping[int, float]], threshold: float = OUTLIER_Z) -> list[dict[str, Any]]:
    """Models far from the other seeds of their arm, by a robust rule on log ESR (``seed_means``: arm -> seed -> ESR).

    The seed spread is estimated once for the whole sweep, robustly: the median absolute difference
    of log ESR between two seeds of one arm, over every such pair of every arm, divided by 0.9539
    (the median of |X - Y| for X, Y normal with standard deviation sigma is 0.9539 sigma), so one
    wild model moves it little. A model is an outlier when its leave-one-out score, its distance
    from the mean of its arm's other seeds in units of that spread (times sqrt(1 + 1/k) for the
    k others' own error), exceeds ``threshold`` (4) in size. Measured on simulated healthy sweeps of
    10 arms x 3 to 5 seeds (tests/test_stats.py): at 3.5 one sweep in 20 named a healthy model, at 4
    one in 40 to 100. Only arms with three or more seeds are checked (with two, either could be the
    odd one); with a single arm of three, the odd model inflates the spread itself and goes unseen.
    Returns one entry per outlier.
    """
    logs = {arm: {seed: math.log(v) for seed, v in seeds.items()} for arm, seeds in seed_means.items()}
    gaps = [
        abs(values[i] - values[j])
        for values in (list(s.values()) for s in logs.values())
        for i in range(len(values))
        for j in range(i + 1, len(values))
    ]
    spread = float(np.median(gaps)) / 0.9539 if gaps else 0.0
    if spread <= 0:
        return []
    found = []
    for arm, seeds in logs.items():
        if len(seeds) < 3:
            continue
        for seed, value in seeds.items():
            others = [v for s, v in seeds.items() if s != seed]
            z = (value - float(np.mean(others))) / (spread * math.sqrt(1.0 + 1.0 / len(others)))
            if abs(z) > threshold:
                found.append(
                    {
                        "unit": f"{arm}-s{seed}",
                        "arm": arm,
                        "seed": seed,
                        "esr": seed_means[arm][seed],
                        "others_gmean": math.exp(float(np.mean(others))),
                        "z": z,
                        "seed_spread": spread,
                    }
                )
    return found


def failed_units(units: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The units whose ``outcome`` is not ``learned`` (diverged, failed_to_learn), by name."""
    return {name: info for name, info in sorted(units.items()) if info.get("outcome", "learned") != "learned"}


# --- the whole analysis ------------------------------------------------------------------------


def _arm_name(kind: str, context: int | None, preset: str | None = None) -> str:
    if kind == "wavenet":
        return f"wavenet-{preset}"
    return f"c{context}" if kind == "windowed" else "stateful"


def _arm_kind(arm: str) -> str:
    """The model kind of an arm name (``c<N>``, ``stateful``, ``wavenet-<preset>``)."""
    return "stateful" if arm == "stateful" else "wavenet" if arm.startswith("wavenet-") else "windowed"


def _seed_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """arm -> seed -> that model's mean test ESR over its riffs, arms in order (windowed by n, then stateful)."""
    grouped: dict[tuple[bool, int, str], dict[int, list[float]]] = {}
    for row in rows:
        arm = _arm_name(row["kind"], row["context"], row.get("preset"))
        key = (row["kind"] != "windowed", int(row["context"] or 0), arm)
        grouped.setdefault(key, {}).setdefault(int(row["seed"]), []).append(float(row["esr"]))
    return {key[2]: {seed: float(np.mean(v)) for seed, v in sorted(s.items())} for key, s in sorted(grouped.items())}


def _esr(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _interval_text(interval: Interval) -> str:
    if interval.low is None or interval.high is None:
        return f"test ESR {_esr(interval.mean)}"
    return f"test ESR {_esr(interval.mean)}, 95 % CI {_esr(interval.low)} to {_esr(interval.high)}"


def _change_text(before: str, after: str, change: Interval) -> str:
    verb = "lowers" if change.mean < 0 else "raises"
    text = f"Going from {before} to {after} {verb} test ESR by {abs(change.mean):.0f} %"
    if change.low is None or change.high is None:
        return text + " (one model each: no interval)."
    low, high = sorted(abs(v) for v in (change.low, change.high)) if change.low * change.high > 0 else (None, None)
    if low is None:
        return text + f" (95 % CI {change.low:+.0f} to {change.high:+.0f} %: the interval includes no change)."
    return text + f" (95 % CI {low:.0f} to {high:.0f} %)."


def _unit_name(row: Mapping[str, Any]) -> str:
    return f"{_arm_name(row['kind'], row['context'])}-s{int(row['seed'])}"


def analyse(
    rows: Sequence[Mapping[str, Any]],
    units: Mapping[str, Mapping[str, Any]],
    alpha: float = 0.05,
    sample_rate: int | None = None,
) -> dict[str, Any]:
    """The statistics of a sweep, as plain JSON-ready data, with the verdict in words.

    ``rows``: one per (unit, riff) with ``kind``, ``context`` (None for stateful), ``seed``, ``esr``.
    ``units``: unit name -> ``{"val_esr": best validation ESR, "still_improving": bool, "stop_reason":
    optional, "outcome": learned | failed_to_learn | diverged (absent: learned), "failure": the
    failure in words}``.

    Units that did not learn are left out of every interval, test and fit, and named first in the
    verdict; each arm lists them (``failed``) beside the seeds it rests on. Outliers among the units
    that learned (``outliers``) stay in, are named, and the conclusions are recomputed without them
    (``without_outliers``): the verdict says whether they change.
    """
    failed = failed_units(units)
    learned_rows = [row for row in rows if _unit_name(row) not in failed]
    result, intervals, seeds_by_arm = _analyse_learned(learned_rows, units, alpha)
    _add_failures(result, rows, failed)
    result["outliers"] = outliers(seeds_by_arm)
    result["without_outliers"] = None
    if result["outliers"]:
        odd = {entry["unit"] for entry in result["outliers"]}
        without, _, _ = _analyse_learned([r for r in learned_rows if _unit_name(r) not in odd], units, alpha)
        before, after = conclusions(result), conclusions(without)
        result["without_outliers"] = {**after, "changed": sorted(k for k in before if before[k] != after[k])}
    result["units"] = len(units)
    result["alerts"] = alert_sentences(result)
    result["verdict"] = verdict(result, intervals, sample_rate)
    return result


def conclusions(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a verdict concludes, to compare two analyses: best arm, arms worse than it, smallest not worse, fit read."""
    stateful = result.get("stateful") or {}
    fit = result["fit"]
    return {
        "best": result["best"],
        "significantly_worse": sorted(
            a["arm"] for a in result["arms"] if (a.get("comparison") or {}).get("significant")
        ),
        "smallest_not_worse": result["smallest_not_worse"],
        "stateful": stateful.get("direction") if stateful.get("significant") else None,
        "fit": _fit_reading(fit) if "b" in fit and not fit.get("decided_by") else None,
    }


def _add_failures(result: dict[str, Any], rows: Sequence[Mapping[str, Any]], failed: Mapping[str, Any]) -> None:
    """List the failed units in ``result`` and in their arms (an arm with no unit left gets an entry of its own)."""
    result["failed"] = [
        {"unit": name, "outcome": info["outcome"], "text": info.get("failure") or f"{name}: {info['outcome']}"}
        for name, info in failed.items()
    ]
    by_arm: dict[str, list[str]] = {}
    kinds: dict[str, tuple[str, int | None]] = {}
    for row in rows:
        arm = _arm_name(row["kind"], row["context"])
        kinds[arm] = (row["kind"], row["context"])
        name = _unit_name(row)
        if name in failed and name not in by_arm.setdefault(arm, []):
            by_arm[arm].append(name)
    entries = {entry["arm"]: entry for entry in result["arms"]}
    for arm, names in by_arm.items():
        if arm in entries:
            entries[arm]["failed"] = names
        elif names:
            kind, context = kinds[arm]
            entries[arm] = {
                "arm": arm,
                "kind": "stateful" if kind != "windowed" else "windowed",
                "context": context if kind == "windowed" else None,
                "seeds": [],
                "seed_means": [],
                "failed": names,
                "interval": None,
                "comparison": None,
                "gap": None,
            }
    for entry in entries.values():
        entry.setdefault("failed", [])
    result["arms"] = sorted(entries.values(), key=lambda e: (e["kind"] != "windowed", e["context"] or 0))


def _analyse_learned(
    rows: Sequence[Mapping[str, Any]], units: Mapping[str, Mapping[str, Any]], alpha: float
) -> tuple[dict[str, Any], dict[str, Interval], dict[str, dict[int, float]]]:
    """Intervals, tests, the change and the fit over the given rows (the units that learned); no verdict."""
    seeds_by_arm = _seed_means(rows)
    windowed = [arm for arm in seeds_by_arm if _arm_kind(arm) == "windowed"]
    contexts = {arm: int(arm[1:]) for arm in windowed}
    intervals = {arm: mean_interval(list(s.values())) for arm, s in seeds_by_arm.items()}
    values = {arm: list(seeds.values()) for arm, seeds in seeds_by_arm.items()}
    # The reference is the lowest arm that can be tested: a single lucky model cannot be one.
    replicated = [arm for arm in windowed if len(values[arm]) >= 2]
    best = min(replicated or windowed, key=lambda arm: intervals[arm].mean) if windowed else None
    comparisons = worse_than_best({arm: values[arm] for arm in windowed}, best, alpha) if best is not None else {}
    testable = bool(comparisons)
    not_worse = [arm for arm in windowed if arm == best or (arm in comparisons and not comparisons[arm]["significant"])]
    smallest_not_worse = min(not_worse, key=contexts.__getitem__) if testable else None

    arms_out = []
    for arm, seeds in seeds_by_arm.items():
        kind = _arm_kind(arm)
        names = [f"{arm}-s{seed}" for seed in seeds]
        val = [float(units[n]["val_esr"]) for n in names if n in units and units[n].get("val_esr") is not None]
        val_mean = float(np.mean(val)) if val else None
        comparison = comparisons.get(arm)
        arms_out.append(
            {
                "arm": arm,
                "kind": kind,
                "context": contexts.get(arm),
                "seeds": list(seeds),
                "seed_means": list(seeds.values()),
                "interval": asdict(intervals[arm]),
                "comparison": comparison,
                "gap": {
                    "val_esr": val_mean,
                    "test_esr": intervals[arm].mean,
                    "ratio": intervals[arm].mean / val_mean if val_mean else None,
                },
            }
        )

    change = None
    if len(windowed) >= 2:
        first, last = windowed[0], windowed[-1]
        interval = relative_change(list(seeds_by_arm[first].values()), list(seeds_by_arm[last].values()))
        change = {"from": first, "to": last, **asdict(interval)}
    points = [(contexts[arm], value, f"{arm}-s{seed}") for arm in windowed for seed, value in seeds_by_arm[arm].items()]
    fit = (
        fit_saturating([p[0] for p in points], [p[1] for p in points], [p[2] for p in points])
        if points
        else {"reason": "no windowed unit"}
    )

    stateful = None
    if "stateful" in seeds_by_arm and best is not None:
        stateful = stateful_against(values["stateful"], {arm: values[arm] for arm in windowed}, best, alpha)
    learned = {_unit_name(row) for row in rows}
    improving = sorted(name for name, info in units.items() if info.get("still_improving") and name in learned)

    result = {
        "alpha": alpha,
        "confidence": CONFIDENCE,
        "method": f"Intervals: {INTERVAL_METHOD}. Tests against the best context: {TEST_METHOD} (alpha {alpha}). "
        f"Changes: {CHANGE_METHOD}. Each seed's model counts once: riffs scored by one model are not independent. "
        f"Units that failed to learn or diverged are left out of all of these; outliers: {OUTLIER_METHOD}. "
        f"The fitted curve: {FIT_METHOD}.",
        "testable": testable,
        "arms": arms_out,
        "best": best,
        "smallest_not_worse": smallest_not_worse,
        "change": change,
        "fit": fit,
        "stateful": stateful,
        "still_improving": improving,
        "cut_by_time_budget": sorted(n for n in improving if units[n].get("stop_reason") == "time_budget"),
        "units": len(learned),
    }
    return result, intervals, seeds_by_arm


def verdict(result: Mapping[str, Any], intervals: Mapping[str, Interval], sample_rate: int | None) -> list[str]:
    """The analysis in plain sentences, each following the numbers it quotes."""
    return [
        *alert_sentences(result),
        *_context_sentences(result, intervals),
        *_change_sentences(result),
        *_fit_sentences(result["fit"], sample_rate),
        *_stateful_sentences(result["stateful"], intervals),
        *_undertrained_sentences(result),
    ]


def alert_sentences(result: Mapping[str, Any]) -> list[str]:
    """What the page says first: the models that failed (by name, left out) and the outliers among the rest."""
    sentences = []
    failed = result.get("failed") or []
    if failed:
        total = result["units"]
        were = "was" if len(failed) == 1 else "were"
        texts = "; ".join(entry["text"] for entry in failed)
        sentences.append(
            f"{len(failed)} of {total} models failed to train and {were} left out of every interval, test and fit "
            f"(a failed training is not seed noise): {texts}."
        )
        rests = []
        for arm in result["arms"]:
            if not arm.get("failed"):
                continue
            kept, all_seeds = len(arm["seeds"]), len(arm["seeds"]) + len(arm["failed"])
            rests.append(f"{arm['arm']} on {kept} of {all_seeds} seeds" if kept else f"{arm['arm']} on none")
        sentences.append(f"So {'; '.join(rests)}.")
    without = result.get("without_outliers")
    for entry in result.get("outliers") or []:
        sentence = (
            f"{entry['unit']} is an outlier among the models that learned: test ESR {_esr(entry['esr'])} against "
            f"{_esr(entry['others_gmean'])} for the other seeds of {entry['arm']} ({entry['z']:+.1f} robust seed "
            "standard deviations); it is kept in the numbers below."
        )
        sentences.append(sentence)
    if without is not None:
        names = ", ".join(entry["unit"] for entry in result["outliers"])
        if without["changed"]:
            sentences.append(
                f"Without {names} the verdict changes ({_changes_text(conclusions(result), without)}): this "
                "verdict depends on one model; train more seeds before relying on it."
            )
        else:
            sentences.append(f"Without {names} the conclusions are the same.")
    return sentences


def _changes_text(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """How the conclusions differ, in words (``after`` carries ``changed``, the keys that differ)."""

    def shown(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(value) if value else "none"
        return "none" if value is None else str(value)

    labels = {
        "best": "the best context",
        "significantly_worse": "significantly worse than the best",
        "smallest_not_worse": "the smallest context not worse",
        "stateful": "the stateful model's significant difference",
        "fit": "the fitted curve",
    }
    return "; ".join(f"{labels[key]}: {shown(after[key])} instead of {shown(before[key])}" for key in after["changed"])


def _context_sentences(result: Mapping[str, Any], intervals: Mapping[str, Interval]) -> list[str]:
    """Which contexts are significantly worse than the best, or why none can be tested."""
    arms, best = result["arms"], result["best"]
    if best is None:
        return []
    tested = [a for a in arms if a["comparison"] is not None or a["arm"] == best]
    counts = sorted({len(a["seeds"]) for a in tested})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    single = [a["arm"] for a in arms if a["kind"] == "windowed" and len(a["seeds"]) < 2]
    if not result["testable"] and len(single) < len([a for a in arms if a["kind"] == "windowed"]):
        return [
            f"Only {best} has more than one training seed, so no context can be tested against another: one model "
            "per context cannot separate the effect of context from the spread between training seeds. Set "
            "train.repeats to 3 or more to get an answer."
        ]
    if not result["testable"]:
        return [
            "With one training seed per context, no interval or test is possible: one model per context cannot "
            "separate the effect of context from the spread between training seeds, which can be as large as that "
            "effect. Set train.repeats to 3 or more to get an answer.",
            f"Lowest test ESR of these single models: {best} ({_esr(intervals[best].mean)}); "
            "treat differences between contexts as unconfirmed.",
        ]
    sentences = []
    worse = [a["arm"] for a in arms if a["comparison"] is not None and a["comparison"]["significant"]]
    how = (
        f"one-sided Welch tests on log ESR over {seeds} seeds, adjusted for choosing the best and "
        f"Holm-corrected, alpha {result['alpha']}"
    )
    if not worse:
        sentences.append(
            f"No context is significantly worse than the best ({best}, {_interval_text(intervals[best])}) at "
            f"{seeds} seeds: the differences between context sizes are within seed noise ({how})."
        )
    else:
        fine = [a["arm"] for a in tested if a["arm"] not in worse]
        sentences.append(
            f"Significantly worse than the best ({best}, {_interval_text(intervals[best])}): "
            f"{', '.join(worse)}; not significantly worse: {', '.join(fine)} ({how})."
        )
        if result["smallest_not_worse"] is not None:
            sentences.append(
                f"The smallest context not significantly worse than the best is {result['smallest_not_worse']}."
            )
    if single:
        sentences.append(
            f"Not tested, one model only: {', '.join(single)}; one model cannot separate the "
            "effect of context from the spread between training seeds."
        )
    return sentences


def _change_sentences(result: Mapping[str, Any]) -> list[str]:
    """The change from the smallest to the largest context, and why it may disagree with the tests."""
    change = result["change"]
    if change is None:
        return []
    sentences = [
        _change_text(change["from"][1:], change["to"][1:], Interval(**{k: change[k] for k in Interval.__annotations__}))
    ]
    first = next(a for a in result["arms"] if a["arm"] == change["from"])
    excludes_zero = change["low"] is not None and change["high"] is not None and change["low"] * change["high"] > 0
    if excludes_zero and result["testable"] and not (first["comparison"] or {}).get("significant", False):
        sentences.append(
            "That pair, smallest against largest context, is fixed in advance, so its interval needs no "
            "correction; the tests against the best correct for choosing among all the contexts and so need a "
            "larger difference."
        )
    return sentences


def _fit_sentences(fit: Mapping[str, Any], sample_rate: int | None) -> list[str]:
    """What the fitted saturating curve says, only as far as its uncertainty allows."""
    if "tau" not in fit:
        return []
    sign = "-" if fit["b"] < 0 else "+"
    curve = f"ESR(n) = {fit['a']:.3g} {sign} {abs(fit['b']):.3g} exp(-n / {fit['tau']:.0f})"
    b_se = fit.get("b_se")
    decided = fit.get("decided_by")
    if decided:
        alone = decided["without"]
        what = {"rises": "does not fall", "flat": "falls by less than twice its uncertainty"}.get(
            _fit_reading(alone), f"reaches 90 % of its gain by n ≈ {alone['n90']:.0f} samples instead"
        )
        return [
            f"The fitted curve {curve} is decided by one model: without {decided['unit']} it {what}. A curve "
            "that one model decides is not read."
        ]
    reading = _fit_reading(fit)
    if reading == "rises":
        return [f"The fitted curve {curve} does not fall with n: more context bought nothing here."]
    if reading == "flat" and b_se is None:
        return [f"The fitted curve {curve} has no estimable uncertainty: no diminishing-returns shape can be read."]
    if reading == "flat":
        return [
            f"The fitted curve {curve} falls by less than twice its uncertainty (b = {fit['b']:.2g} ± "
            f"{b_se:.2g}): no diminishing-returns shape can be read from these points."
        ]
    where = f"n ≈ {fit['n90']:.0f} samples"
    if sample_rate:
        where += f" ({1000 * fit['n90'] / sample_rate:.1f} ms)"
    return [f"The fitted curve {curve} reaches 90 % of its gain by {where}; beyond that, more context buys little."]


def _stateful_sentences(stateful: Mapping[str, Any] | None, intervals: Mapping[str, Interval]) -> list[str]:
    """The stateful model against the windowed ones."""
    if stateful is None:
        return []
    change = stateful["change"]
    relation = "lower" if change["mean"] < 0 else "higher"
    test = f"{STATEFUL_METHOD}, p = {stateful['p_value']:.2g}" if stateful["p_value"] is not None else ""
    if stateful["p_value"] is None:
        judged = "not tested (one model on a side)"
    elif stateful["significant"] and stateful["direction"] == "better":
        judged = f"significantly better than every windowed context ({test})"
    elif stateful["significant"]:
        judged = f"significantly worse than the best windowed context ({test})"
    else:
        judged = f"not significantly different ({test})"
    return [
        f"The stateful model (one LSTM step per sample) has {_interval_text(intervals['stateful'])}: "
        f"{abs(change['mean']):.0f} % {relation} than the best windowed context {stateful['against']}, {judged}."
    ]


def _undertrained_sentences(result: Mapping[str, Any]) -> list[str]:
    """A flag on models the epoch cap or the time budget cut while they still improved."""
    improving = result["still_improving"]
    if not improving:
        return []
    by_budget = len(result.get("cut_by_time_budget", []))
    were = "was" if len(improving) == 1 else "were"
    if by_budget == len(improving):
        cut, remedy = "the time budget", "train.max_train_seconds"
    elif by_budget == 0:
        cut, remedy = "the epoch cap", "train.epochs"
    else:
        cut, remedy = "the epoch cap or the time budget", "train.epochs and train.max_train_seconds"
    return [
        f"{len(improving)} of {result['units']} models {were} still improving when {cut} cut them "
        f"(validation ESR still falling by more than 3 % over the last 3 epochs): they are undertrained; raise "
        f"{remedy} before reading these numbers as the models' best."
    ]

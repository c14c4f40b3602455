"""What listeners heard, as statistics: pure functions on the stored answers (scipy does the tests).

ABX (per arm, against the pedal; chance 1/2):

- ``trials``, ``correct``; listeners pooled with a beta-binomial model: each listener has their own
  probability of a correct answer, drawn from a beta distribution with mean ``mu`` and intra-listener
  correlation ``rho`` (estimated by the method of moments, Kleinman 1973; 0 with one listener, when
  the model is the plain binomial). Listener l's answers then count as ``n_l / (1 + (n_l - 1) rho)``
  independent trials (Ennis and Bi 1998), and the tests below run on those effective counts with
  the exact binomial tail (its continuous extension, the regularised incomplete beta function).
- ``p``: one-sided test of guessing (p_c = 1/2) against hearing a difference.
- ``d_prime`` with its 95 % interval: the proportion correct (and its Clopper-Pearson interval)
  mapped through the ABX independent-observation model of Macmillan and Creelman (2005),
  ``p_c = Phi(d/sqrt 2) Phi(d/2) + Phi(-d/sqrt 2) Phi(-d/2)``; at or below chance d' is 0.
- the verdict: ``audible`` when p < alpha; ``indistinguishable`` when a similarity test (Meilgaard's
  proportion of discriminators: p_c = 1/2 + p_d / 2) rejects "at least ``p_d_max`` of listeners
  hear it" at alpha; else ``not shown``. ``trials_needed``: the fewest trials for which that
  similarity test, with listeners who truly cannot tell, succeeds with probability ``power``.

MUSHRA (ITU-R BS.1534-3): post-screening first (a listener who rates the hidden reference below 90
on more than 15 % of their pages is excluded, by name); per condition the median rating with a
percentile bootstrap 95 % interval; Friedman's test over the arms (blocks: listener x page), then
Wilcoxon signed-rank tests between every two arms, Holm-corrected.

``metric_correlations``: Spearman's rank correlation of each objective metric with the listeners'
result per arm (ABX proportion correct, MUSHRA median), with a 95 % interval by Fisher's z with
the Fieller, Hartley and Pearson (1957) standard error 1.03 / sqrt(n - 3) (none below 4 arms).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize, special
from scipy import stats as scipy_stats

from sd1job.listen.design import ANCHOR, HIDDEN_REFERENCE
from sd1job.stats import holm

CHANCE = 0.5
CONFIDENCE = 0.95
SCREEN_REFERENCE_BELOW = 90.0
SCREEN_MAX_FRACTION = 0.15
BOOTSTRAP_RESAMPLES = 2000


def binomial_tail(k: float, n: float, p: float) -> float:
    """P(K >= k) for K ~ Binomial(n, p), extended to non-integer k and n by the incomplete beta."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(special.betainc(k, n - k + 1, p))


def binomial_head(k: float, n: float, p: float) -> float:
    """P(K <= k) for K ~ Binomial(n, p), extended like ``binomial_tail``."""
    return 1.0 - binomial_tail(k + 1, n, p) if k + 1 <= n else 1.0


def abx_proportion(d_prime: float) -> float:
    """Proportion correct of an unbiased ABX observer with sensitivity d' (independent observations)."""
    phi = scipy_stats.norm.cdf
    return float(phi(d_prime / math.sqrt(2)) * phi(d_prime / 2) + phi(-d_prime / math.sqrt(2)) * phi(-d_prime / 2))


def abx_d_prime(proportion: float) -> float:
    """The d' whose ABX proportion correct is ``proportion`` (0 at or below chance, capped at 8)."""
    if proportion <= CHANCE:
        return 0.0
    if proportion >= abx_proportion(8.0):
        return 8.0
    return float(optimize.brentq(lambda d: abx_proportion(d) - proportion, 0.0, 8.0))


def beta_binomial_pool(counts: Sequence[tuple[int, int]]) -> dict[str, float]:
    """Pool listeners' (correct, trials): rho by moments, effective correct and trials."""
    counts = [(k, n) for k, n in counts if n > 0]
    total_k = sum(k for k, _ in counts)
    total_n = sum(n for _, n in counts)
    rho = 0.0
    if len(counts) >= 2 and total_n > len(counts):
        p = total_k / total_n
        if 0 < p < 1:
            # Kleinman's moment estimator: between-listener spread beyond the binomial's.
            spread = sum(n * (k / n - p) ** 2 for k, n in counts) / (len(counts) - 1)
            mean_n = total_n / len(counts)
            rho = (spread / (p * (1 - p)) - 1) / (mean_n - 1) if mean_n > 1 else 0.0
    rho = float(min(max(rho, 0.0), 0.99))
    effective_n = sum(n / (1 + (n - 1) * rho) for _, n in counts)
    effective_k = total_k / total_n * effective_n if total_n else 0.0
    return {"rho": rho, "effective_trials": effective_n, "effective_correct": effective_k}


def similarity_max_proportion(p_d_max: float) -> float:
    """The proportion correct of a panel with ``p_d_max`` discriminators (the rest guessing)."""
    return CHANCE + p_d_max * (1 - CHANCE)


def trials_needed(p_d_max: float, alpha: float, power: float, limit: int = 5000) -> int | None:
    """Fewest trials for which guessing listeners pass the similarity test with probability ``power``."""
    ceiling = similarity_max_proportion(p_d_max)
    for n in range(1, limit + 1):
        # the largest number correct the similarity test still accepts as "indistinguishable"
        critical = int(scipy_stats.binom.ppf(alpha, n, ceiling))
        while critical >= 0 and scipy_stats.binom.cdf(critical, n, ceiling) > alpha:
            critical -= 1
        if critical >= 0 and scipy_stats.binom.cdf(critical, n, CHANCE) >= power:
            return n
    return None


def abx_arm(counts: Sequence[tuple[int, int]], alpha: float, p_d_max: float) -> dict[str, Any]:
    """One arm's ABX statistics from each listener's (correct, trials)."""
    trials = sum(n for _, n in counts)
    correct = sum(k for k, _ in counts)
    pool = beta_binomial_pool(counts)
    k_eff, n_eff = pool["effective_correct"], pool["effective_trials"]
    p = binomial_tail(k_eff, n_eff, CHANCE)
    p_similar = binomial_head(k_eff, n_eff, similarity_max_proportion(p_d_max))
    proportion = correct / trials if trials else float("nan")
    tail = (1 - CONFIDENCE) / 2
    low = float(special.betaincinv(k_eff, n_eff - k_eff + 1, tail)) if k_eff > 0 else 0.0
    high = float(special.betaincinv(k_eff + 1, n_eff - k_eff, 1 - tail)) if k_eff < n_eff else 1.0
    verdict = "audible" if p < alpha else "indistinguishable" if p_similar < alpha else "not shown"
    return {
        "listeners": len(counts),
        "trials": trials,
        "correct": correct,
        "proportion": proportion,
        "p": p,
        "p_similar": p_similar,
        "d_prime": abx_d_prime(proportion) if trials else None,
        "d_prime_low": abx_d_prime(low),
        "d_prime_high": abx_d_prime(high),
        **pool,
        "verdict": verdict,
    }


def analyse_abx(records: Sequence[Mapping[str, Any]], alpha: float, p_d_max: float, power: float) -> dict[str, Any]:
    """Every arm's ABX statistics from the stored answers (test ``abx``)."""
    per_arm: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for record in records:
        if record.get("test") != "abx":
            continue
        tally = per_arm[record["arm"]][record["listener"]]
        tally[0] += bool(record["correct"])
        tally[1] += 1
    arms = {arm: abx_arm([tuple(v) for v in listeners.values()], alpha, p_d_max) for arm, listeners in per_arm.items()}
    return {
        "arms": arms,
        "listeners": sorted({r["listener"] for r in records if r.get("test") == "abx"}),
        "alpha": alpha,
        "similarity_proportion": p_d_max,
        "similarity_power": power,
        "trials_needed": trials_needed(p_d_max, alpha, power),
        "method": "exact binomial (one-sided) on beta-binomial effective counts; d' by the ABX independent-"
        "observation model with a Clopper-Pearson interval; similarity against a proportion of discriminators",
    }


def screen_listeners(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """MUSHRA post-screening: listeners whose hidden reference got < 90 on more than 15 % of their pages."""
    pages: dict[str, list[float]] = defaultdict(list)
    for record in records:
        pages[record["listener"]].append(float(record["ratings"][HIDDEN_REFERENCE]))
    return sorted(
        name
        for name, ratings in pages.items()
        if sum(r < SCREEN_REFERENCE_BELOW for r in ratings) > SCREEN_MAX_FRACTION * len(ratings)
    )


def bootstrap_median(values: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the median."""
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(data[rng.integers(0, data.size, (BOOTSTRAP_RESAMPLES, data.size))], axis=1)
    tail = 100 * (1 - CONFIDENCE) / 2
    return float(np.percentile(medians, tail)), float(np.percentile(medians, 100 - tail))


def analyse_mushra(records: Sequence[Mapping[str, Any]], alpha: float) -> dict[str, Any]:
    """MUSHRA statistics from the stored answers (test ``mushra``), after post-screening."""
    records = [r for r in records if r.get("test") == "mushra"]
    excluded = screen_listeners(records)
    kept = [r for r in records if r["listener"] not in excluded]
    ratings: dict[str, list[float]] = defaultdict(list)
    blocks: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for record in kept:
        for condition, value in record["ratings"].items():
            ratings[condition].append(float(value))
            blocks[(record["listener"], record["riff"])][condition] = float(value)
    conditions = {}
    for condition, values in ratings.items():
        low, high = bootstrap_median(values)
        conditions[condition] = {"median": float(np.median(values)), "low": low, "high": high, "n": len(values)}
    arms = [c for c in ratings if c not in (HIDDEN_REFERENCE, ANCHOR)]
    complete = [b for b in blocks.values() if all(arm in b for arm in arms)]
    friedman = None
    if len(arms) >= 3 and len(complete) >= 2:
        result = scipy_stats.friedmanchisquare(*[[b[arm] for b in complete] for arm in arms])
        friedman = {"statistic": float(result.statistic), "p": float(result.pvalue), "blocks": len(complete)}
    pairs: dict[str, dict[str, Any]] = {}
    if len(arms) >= 2 and complete and (friedman is None or friedman["p"] < alpha):
        raw = {}
        for i, first in enumerate(arms):
            for second in arms[i + 1 :]:
                differences = [b[first] - b[second] for b in complete]
                p = 1.0 if not any(differences) else float(scipy_stats.wilcoxon(differences).pvalue)
                raw[f"{first} vs {second}"] = p
        adjusted = holm(raw)
        pairs = {
            name: {"p": raw[name], "p_holm": adjusted[name], "significant": adjusted[name] < alpha} for name in raw
        }
    return {
        "conditions": conditions,
        "arms": arms,
        "listeners": sorted({r["listener"] for r in records}),
        "excluded": excluded,
        "friedman": friedman,
        "pairs": pairs,
        "alpha": alpha,
        "method": "medians with percentile bootstrap 95 % intervals; post-screening (hidden reference < 90 on "
        "> 15 % of pages); Friedman over the arms, then Wilcoxon signed-rank with Holm",
    }


def spearman_interval(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Spearman's rho with a Fisher-z 95 % interval (Fieller's standard error; none below 4 points)."""
    n = len(x)
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"rho": None, "low": None, "high": None, "n": n}
    rho = float(scipy_stats.spearmanr(x, y).statistic)
    if n < 4 or abs(rho) >= 1:
        return {"rho": rho, "low": None, "high": None, "n": n}
    z, half = math.atanh(rho), scipy_stats.norm.ppf(0.5 + CONFIDENCE / 2) * 1.03 / math.sqrt(n - 3)
    return {"rho": rho, "low": math.tanh(z - half), "high": math.tanh(z + half), "n": n}


def metric_correlations(
    metrics: Mapping[str, Mapping[str, float | None]], heard: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Per metric (name -> arm -> value), its rank correlation with what listeners heard per arm.

    Errors grow with the metrics and listeners' ``heard`` (ABX proportion correct: higher is more
    audible) grows with audibility, so agreement is a positive rho for ABX; for MUSHRA (higher is
    better) it is negative.
    """
    out = {}
    for name, by_arm in metrics.items():
        arms = [arm for arm in heard if by_arm.get(arm) is not None]
        out[name] = spearman_interval([float(by_arm[a]) for a in arms], [float(heard[a]) for a in arms])
    return out


def listening_sentences(abx: Mapping[str, Any] | None, mushra: Mapping[str, Any] | None) -> list[str]:
    """The verdict's listening sentences."""
    sentences = []
    if abx and abx["arms"]:
        parts = {"audible": [], "not shown": [], "indistinguishable": []}
        for arm, stat in abx["arms"].items():
            parts[stat["verdict"]].append(f"{arm} ({stat['correct']} of {stat['trials']} correct, p {_p(stat['p'])})")
        if parts["audible"]:
            sentences.append("Listeners could tell " + "; ".join(parts["audible"]) + " from the pedal.")
        if parts["not shown"]:
            sentences.append(
                "Listeners could not tell " + "; ".join(parts["not shown"]) + " from the pedal, though too few trials "
                f"to call them indistinguishable (that takes {abx['trials_needed']} trials an arm)."
            )
        if parts["indistinguishable"]:
            sentences.append(
                "Listeners could not tell "
                + "; ".join(parts["indistinguishable"])
                + " from the pedal: indistinguishable"
                f" (fewer than {abx['similarity_proportion']:.0%} of listeners hear it, at alpha {abx['alpha']})."
            )
    if mushra and mushra["conditions"]:
        ranked = sorted(mushra["arms"], key=lambda a: -mushra["conditions"][a]["median"])
        text = "MUSHRA medians: " + ", ".join(
            f"{arm} {mushra['conditions'][arm]['median']:.0f} (95 % CI {mushra['conditions'][arm]['low']:.0f}-"
            f"{mushra['conditions'][arm]['high']:.0f})"
            for arm in ranked
        )
        if mushra["excluded"]:
            text += f"; excluded by post-screening: {', '.join(mushra['excluded'])}"
        sentences.append(text + ".")
    return sentences


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def analyse_listening(
    records: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Mapping[str, float | None]],
    alpha: float,
    p_d_max: float,
    power: float,
) -> dict[str, Any] | None:
    """The report's listening section: ABX and MUSHRA statistics, metric correlations, sentences.

    ``metrics``: metric name -> arm -> the arm's value (its representative unit's riff mean). None
    when there are no answers.
    """
    if not records:
        return None
    abx = analyse_abx(records, alpha, p_d_max, power) if any(r.get("test") == "abx" for r in records) else None
    mushra = analyse_mushra(records, alpha) if any(r.get("test") == "mushra" for r in records) else None
    correlations = {}
    if abx and abx["arms"]:
        heard = {arm: stat["proportion"] for arm, stat in abx["arms"].items()}
        correlations["abx_proportion_correct"] = metric_correlations(metrics, heard)
    if mushra and mushra["arms"]:
        heard = {arm: mushra["conditions"][arm]["median"] for arm in mushra["arms"]}
        correlations["mushra_median"] = metric_correlations(metrics, heard)
    return {
        "answers": len(records),
        "abx": abx,
        "mushra": mushra,
        "correlations": correlations,
        "verdict": listening_sentences(abx, mushra),
    }

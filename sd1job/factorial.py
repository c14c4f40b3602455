"""The factorial answer to a grid: which factors move test ESR, by how much, and what to run next.

Pure: a table in (one row per unit), a :class:`FactorialResult` out; no I/O. statsmodels fits the
model and makes the ANOVA table; scipy does the intervals, power and simple effects.

The analysis, and why:

- **The response is log test ESR**, one value per unit (the seed is the replicate). ESR spans
  orders of magnitude and its changes are ratios, so effects are additive on the log scale and
  every result is back-transformed to ESR (means by ``exp``, differences into ratios).
- **Units that did not learn are left out and named**, never averaged in: a failed training is an
  outcome of its own, not a very large ESR. Units without a finite positive ESR are left out too.
- **The model** is OLS on all main effects and all two-way interactions, each factor in sum
  (deviation) coding, ``C(x, Sum)``: a coefficient is a level's deviation from the grand mean and
  every contrast is balanced over the other factors' levels.
- **The ANOVA table is Type II** (statsmodels ``anova_lm(typ=2)``): each term is tested after every
  term that does not contain it, so a main effect is tested after the other main effects and the
  interactions it is not part of. Type II respects marginality, stays the same whichever coding is
  used, and is the most powerful of the usual types when interactions are small; with unbalanced
  cells (a unit that failed) it still tests each main effect for what it adds. Type III would test
  a main effect with its own interactions in the model, a hypothesis that only makes sense under sum
  coding (which is used, so the coefficients read the same way) and that loses power when cells are
  unbalanced. Each term is tested at ``alpha`` on its own; ``p_holm`` in the table adjusts over the
  table's terms for a reader who wants the family-wise rate.
- **The error term** is what the model leaves: the spread between seeds of one cell (pure error)
  pooled with the interactions of three and more factors. With one seed per cell only the latter
  is there (an unreplicated factorial, which assumes them small); the result says which. When the
  model would leave no error degree of freedom, two-way interactions are dropped (most degrees of
  freedom first) until one is left, and said so.
- **Terms that cannot be estimated** (no unit in some cells, or two factors changed together) are
  dropped and named with the reason; a factor with fewer than two levels among the kept units is
  dropped and named too.
- **Effect sizes**: partial eta squared (SS_effect / (SS_effect + SS_error), biased upward) and
  partial omega squared (df (F - 1) / (df (F - 1) + N), nearly unbiased, floored at 0), each with a
  95 % interval by inverting the noncentral F distribution for its noncentrality lambda (Steiger
  2004): lambda / (lambda + df + df_error + 1) for eta (as R's effectsize does), lambda /
  (lambda + N) for omega (the population partial effect sigma^2_effect / (sigma^2_effect +
  sigma^2_error) for which lambda = N f^2). The interval is two-sided, so a term with 0.025 < p <
  0.05 can have a lower end of 0.
- **Marginal means** per level (estimated marginal means): the model's prediction averaged over
  every combination of the other factors' levels with equal weight, so an unbalanced table does
  not tilt them; t-interval on the log scale from the model's covariance, exponentiated.
- **Contrasts** between every pair of one factor's levels: the ratio of their marginal means, a
  t-test on the log scale, Holm-adjusted over the factor's pairs. The interval of the pair at
  Holm's step r (pairs ordered by raw p) has confidence 1 - (1 - confidence) / (m - r + 1), the
  level Holm tests that pair at; once Holm stops rejecting at step s, every later pair uses step
  s's level. So an interval excludes a ratio of 1 exactly when Holm calls the pair significant.
  These intervals are not simultaneous (no step-down interval is); they are the usual pragmatic
  companion of Holm's p values.
- **Simple effects** of the strongest two-way interaction: the F-test of one factor within each
  level of the other (Holm over those levels), which the verdict turns into "A matters at B = x but
  not at B = y".
- **Power**: from the residual SD on the log scale, the seeds per arm a two-sample t-test on log
  ESR needs to detect a 20 % (and a 10 %) change in ESR (a ratio of 1.2, or 1.1, between two arms)
  with 80 % power at ``alpha`` (noncentral t); and, per factor, the seeds per cell that would
  detect that change between two of its levels in this grid (balanced, full two-way model).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as scipy_stats

from sd1job.errors import UserError
from sd1job.stats import holm

CONFIDENCE = 0.95
ALPHA = 0.05
POWER_TARGET = 0.80
POWER_CHANGES = (0.20, 0.10)
MAX_SEEDS = 10_000
ANOVA_METHOD = (
    "OLS on log test ESR, main effects and two-way interactions, sum (deviation) coding; "
    "Type II sums of squares (statsmodels anova_lm, typ=2)"
)
EFFECT_METHOD = "partial eta squared and partial omega squared; intervals by inverting the noncentral F"
MEANS_METHOD = "estimated marginal means (equal weight over the other factors' levels), t-interval on log ESR"
CONTRAST_METHOD = (
    "ratio of marginal means, t-test on log ESR, Holm-adjusted over the factor's pairs; interval at the "
    "confidence of the pair's Holm step"
)
POWER_METHOD = (
    "two-sided t-test on log ESR at alpha, noncentral t, from the residual SD; a change of c is an ESR ratio of "
    "1 + c between the two compared means"
)


@dataclass(frozen=True)
class Omitted:
    """Something left out of the analysis (a unit, a factor or a model term) and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class TermTest:
    """One row of the ANOVA table, with effect sizes and their intervals (None where undefined)."""

    term: str
    factors: tuple[str, ...]
    df: int
    sum_sq: float
    f: float | None
    p: float | None
    p_holm: float | None
    partial_eta_sq: float | None
    partial_eta_sq_low: float | None
    partial_eta_sq_high: float | None
    partial_omega_sq: float | None
    partial_omega_sq_low: float | None
    partial_omega_sq_high: float | None


@dataclass(frozen=True)
class LevelMean:
    """The estimated marginal mean ESR at one level of a factor, with its interval and how many units were there."""

    factor: str
    level: str
    esr: float
    low: float | None
    high: float | None
    units: int


@dataclass(frozen=True)
class CellMean:
    """The estimated mean ESR of one cell of a two-way table (averaged over the other factors)."""

    factors: tuple[str, str]
    levels: tuple[str, str]
    esr: float
    low: float | None
    high: float | None
    units: int


@dataclass(frozen=True)
class Contrast:
    """ESR at ``level`` divided by ESR at ``reference`` (marginal means), its interval and Holm-adjusted p."""

    factor: str
    level: str
    reference: str
    ratio: float
    low: float | None
    high: float | None
    p: float | None
    p_holm: float | None
    confidence: float
    significant: bool


@dataclass(frozen=True)
class SimpleEffect:
    """The effect of ``factor`` within one level of ``within``: an F-test and the spread of its cell means."""

    factor: str
    within: str
    within_level: str
    df: int
    f: float | None
    p: float | None
    p_holm: float | None
    best_level: str
    worst_level: str
    ratio: float
    significant: bool


@dataclass(frozen=True)
class PowerRow:
    """Seeds needed to detect an ESR change of ``change`` (0.2 = ratio 1.2) with ``power`` at ``alpha``."""

    comparison: str
    factor: str | None
    change: float
    seeds: int | None
    per: str
    power: float
    alpha: float


@dataclass
class FactorialResult:
    """The whole factorial answer; ``to_dict`` gives the JSON-ready form for results.json."""

    response: str
    factors: list[str]
    levels: dict[str, list[str]]
    units: int
    formula: str | None
    terms: list[TermTest]
    residual_df: int
    residual_sd: float | None
    pure_error_df: int
    higher_order_df: int
    error_term: str
    marginal_means: dict[str, list[LevelMean]]
    cell_means: dict[str, list[CellMean]]
    contrasts: dict[str, list[Contrast]]
    strongest_interaction: str | None
    simple_effects: list[SimpleEffect]
    power: list[PowerRow]
    excluded_units: list[Omitted]
    dropped_factors: list[Omitted]
    dropped_terms: list[Omitted]
    notes: list[str]
    verdict: list[str]
    alpha: float
    confidence: float
    methods: dict[str, str] = field(default_factory=dict)

    def term(self, name: str) -> TermTest | None:
        """The ANOVA row of ``name`` (a factor, or ``a:b`` for an interaction), None when not in the model."""
        return next((t for t in self.terms if t.term == name), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (no NaN or infinity: those become None)."""
        return _json_ready(asdict(self))


# --- small pure pieces ---------------------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def term_name(factors: Sequence[str]) -> str:
    """A model term's name: the factor, or the factors joined by ``:`` for an interaction."""
    return ":".join(factors)


def level_label(value: Any) -> str:
    """A factor level as text: ``64``, ``0.0001``, ``High`` (floats without trailing zeros, ints without ``.0``)."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{float(value):.6g}"
    return str(value)


def ordered_levels(series: pd.Series) -> list[Any]:
    """The distinct values of a factor column in their natural order.

    A categorical column keeps its categories' order; all-numeric values are sorted; anything else
    keeps the order of first appearance (so Low, Mid, High stay in the order the grid lists them).
    """
    present = series.dropna()
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = set(present.tolist())
        return [c for c in series.cat.categories if c in used]
    values = list(dict.fromkeys(present.tolist()))
    numeric = all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in values)
    return sorted(values) if numeric else values


def partial_eta_squared(f: float, df: int, df_error: int) -> float:
    """SS_effect / (SS_effect + SS_error) from the F statistic."""
    return f * df / (f * df + df_error)


def partial_omega_squared(f: float, df: int, n: int) -> float:
    """df (F - 1) / (df (F - 1) + N), floored at zero (N: the number of units)."""
    numerator = df * (f - 1.0)
    return max(0.0, numerator / (numerator + n)) if numerator + n > 0 else 0.0


def noncentrality_interval(f: float, df: int, df_error: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The confidence interval of the noncentrality lambda of an observed F(df, df_error) (Steiger 2004).

    ``low`` solves P(F' <= f | lambda) = 1 - (1 - confidence) / 2 and ``high`` solves it at
    (1 - confidence) / 2, each floored at zero when even lambda = 0 leaves less probability below f.
    """
    tail = (1.0 - confidence) / 2.0

    def below(lam: float) -> float:
        if lam <= 0.0:
            return float(scipy_stats.f.cdf(f, df, df_error))
        return float(scipy_stats.ncf.cdf(f, df, df_error, lam))

    def solve(target: float) -> float:
        if below(0.0) <= target:
            return 0.0
        upper = max(10.0, 4.0 * f * df)
        while below(upper) > target:
            upper *= 2.0
            if upper > 1e7:
                return math.inf
        return float(optimize.brentq(lambda lam: below(lam) - target, 0.0, upper, xtol=1e-8, rtol=1e-8))

    return solve(1.0 - tail), solve(tail)


def _power_two_sided(delta: float, se: float, df: int, alpha: float) -> float:
    critical = float(scipy_stats.t.ppf(1.0 - alpha / 2.0, df))
    noncentrality = delta / se
    return float(scipy_stats.nct.sf(critical, df, noncentrality) + scipy_stats.nct.cdf(-critical, df, noncentrality))


def seeds_needed(
    sigma: float,
    change: float,
    *,
    variance_factor: float = 2.0,
    params: int = 2,
    cells: int = 2,
    alpha: float = ALPHA,
    power: float = POWER_TARGET,
) -> int | None:
    """The fewest replicates r per cell for a two-sided t-test of a log-ESR difference of log(1 + change).

    The difference's variance is ``sigma**2 * variance_factor / r`` and its error has
    ``cells * r - params`` degrees of freedom: two arms compared by a two-sample t-test are
    ``variance_factor=2, cells=2, params=2``. None when more than ``MAX_SEEDS`` would be needed.
    """
    delta = math.log1p(change)

    def enough(r: int) -> bool:
        df = cells * r - params
        return df >= 1 and _power_two_sided(delta, sigma * math.sqrt(variance_factor / r), df, alpha) >= power

    if sigma <= 0.0:
        return next((r for r in range(1, 10) if cells * r - params >= 1), None)
    low, high = 1, 2
    while not enough(high):
        low, high = high, high * 2
        if high > MAX_SEEDS:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return low if enough(low) else high


def holm_levels(pvalues: Sequence[float], confidence: float = CONFIDENCE) -> list[float]:
    """Per comparison, the confidence of its Holm step: 1 - alpha / (m - r + 1), frozen where Holm stops.

    ``alpha`` is ``1 - confidence``; r is the comparison's rank by raw p (1 = smallest). Once a step
    does not reject, every later comparison keeps that step's level, so each interval excludes
    the null exactly when Holm rejects.
    """
    alpha = 1.0 - confidence
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (math.inf if pvalues[i] is None else pvalues[i], i))
    levels = [confidence] * m
    stopped: float | None = None
    for rank, index in enumerate(order):
        level = 1.0 - alpha / (m - rank)
        if stopped is not None:
            levels[index] = stopped
            continue
        levels[index] = level
        p = pvalues[index]
        if p is None or p >= alpha / (m - rank):
            stopped = level
    return levels


# --- the design --------------------------------------------------------------------------------


def _sum_coded(codes: np.ndarray, count: int) -> np.ndarray:
    """Sum (deviation) coding of level codes 0..count-1: count-1 columns, the last level all -1."""
    columns = np.zeros((len(codes), count - 1))
    for j in range(count - 1):
        columns[:, j] = codes == j
    columns[codes == count - 1, :] = -1.0
    return columns


def _term_columns(term: tuple[str, ...], codes: Mapping[str, np.ndarray], counts: Mapping[str, int]) -> np.ndarray:
    blocks = [_sum_coded(codes[f], counts[f]) for f in term]
    out = blocks[0]
    for block in blocks[1:]:
        out = (out[:, :, None] * block[:, None, :]).reshape(len(out), -1)
    return out


def _rank(blocks: Sequence[np.ndarray], rows: int) -> int:
    return int(np.linalg.matrix_rank(np.hstack([np.ones((rows, 1)), *blocks])))


def _missing_cells(frame: pd.DataFrame, pair: tuple[str, str], levels: Mapping[str, list[str]]) -> list[str]:
    present = set(zip(frame[pair[0]], frame[pair[1]], strict=True))
    return [
        f"{pair[0]}={a} & {pair[1]}={b}"
        for a, b in itertools.product(levels[pair[0]], levels[pair[1]])
        if (a, b) not in present
    ]


def _confounded_with(frame: pd.DataFrame, factor: str, others: Sequence[str]) -> str | None:
    for other in others:
        if frame.groupby(factor, observed=True)[other].nunique().max() == 1:
            return other
    return None


def _deficient(
    terms: Sequence[tuple[str, ...]], blocks: Mapping[tuple[str, ...], np.ndarray], rows: int
) -> list[tuple[tuple[str, ...], int]]:
    """(term, estimable columns) for each term whose columns the others leave not fully estimable."""
    full = _rank([blocks[t] for t in terms], rows)
    if full == 1 + sum(blocks[t].shape[1] for t in terms):
        return []
    out = []
    for t in terms:
        gain = full - _rank([blocks[u] for u in terms if u != t], rows)
        if gain < blocks[t].shape[1]:
            out.append((t, gain))
    return out


def _estimable(
    frame: pd.DataFrame, factors: list[str], levels: dict[str, list[str]]
) -> tuple[list[str], list[tuple[str, ...]], list[Omitted], list[Omitted]]:
    """Factors and terms the kept units can estimate; the dropped ones with reasons.

    First the main effects: a factor whose levels change together with other factors' is dropped
    (the last such factor in ``factors`` first, until the rest are estimable). Then the two-way
    interactions: one with empty cells, or aliased with the others, is dropped (the one with the
    most inestimable columns first), so the model fitted is always of full rank.
    """
    codes = {f: frame[f].map({lv: i for i, lv in enumerate(levels[f])}).to_numpy() for f in factors}
    counts = {f: len(levels[f]) for f in factors}
    rows = len(frame)
    blocks = {(f,): _term_columns((f,), codes, counts) for f in factors}
    blocks.update({p: _term_columns(p, codes, counts) for p in itertools.combinations(factors, 2)})
    factors = list(factors)
    dropped_factors: list[Omitted] = []
    while deficient := _deficient([(f,) for f in factors], blocks, rows):
        factor = deficient[-1][0][0]
        partner = _confounded_with(frame, factor, [f for f in factors if f != factor])
        why = (
            f"confounded with {partner}: each of its levels occurs with one level of {partner} only"
            if partner
            else "aliased with the other factors (their levels change together)"
        )
        dropped_factors.append(Omitted(factor, why))
        factors.remove(factor)
    terms: list[tuple[str, ...]] = [(f,) for f in factors] + list(itertools.combinations(factors, 2))
    dropped_terms: list[Omitted] = []
    while deficient := [(t, g) for t, g in _deficient(terms, blocks, rows) if len(t) == 2]:
        term, gain = max(reversed(deficient), key=lambda item: blocks[item[0]].shape[1] - item[1])
        missing = _missing_cells(frame, (term[0], term[1]), levels)
        extent = "cannot be estimated" if gain == 0 else "can be estimated only in part"
        why = (
            f"no unit that learned in {', '.join(missing)}, so the interaction {extent}"
            if missing
            else f"aliased with other terms (too few distinct cells), so it {extent}"
        )
        dropped_terms.append(Omitted(term_name(term), why))
        terms.remove(term)
    return factors, terms, dropped_factors, dropped_terms


def _leave_error_df(
    terms: list[tuple[str, ...]], counts: Mapping[str, int], rows: int
) -> tuple[list[tuple[str, ...]], list[Omitted]]:
    """Drop two-way interactions (most degrees of freedom first) until the model leaves an error df."""
    terms = list(terms)
    dropped: list[Omitted] = []

    def size(t: tuple[str, ...]) -> int:
        return math.prod(counts[f] - 1 for f in t)

    while rows - 1 - sum(size(t) for t in terms) < 1:
        pairs = [t for t in terms if len(t) == 2]
        if not pairs:
            break
        term = max(reversed(pairs), key=size)
        terms.remove(term)
        dropped.append(
            Omitted(
                term_name(term),
                "left out so the model keeps an error term (otherwise no degree of freedom is left to test "
                "against); its degrees of freedom join the error",
            )
        )
    return terms, dropped


# --- the analysis ------------------------------------------------------------------------------


def _kept_units(
    table: pd.DataFrame, factors: Sequence[str], response: str, unit_col: str, learned_col: str
) -> tuple[pd.DataFrame, list[Omitted]]:
    missing = [c for c in [unit_col, response, learned_col, *factors] if c not in table.columns]
    if missing:
        raise UserError(f"factorial table: no column {', '.join(missing)} (columns: {', '.join(map(str, table))})")
    duplicated = table[unit_col][table[unit_col].duplicated()].tolist()
    if duplicated:
        raise UserError(f"factorial table: unit {duplicated[0]} appears more than once (one row per unit)")
    excluded: list[Omitted] = []
    keep = []
    values = pd.to_numeric(table[response], errors="coerce").astype(float).to_numpy()
    learned = table[learned_col].to_numpy()
    empty = table[list(factors)].isna().to_numpy()
    for position, unit in enumerate(table[unit_col].astype(str)):
        if not bool(learned[position]):
            excluded.append(Omitted(unit, "did not learn"))
        elif not (math.isfinite(values[position]) and values[position] > 0):
            raw = table[response].iloc[position]
            excluded.append(Omitted(unit, f"no finite positive {response} ({raw})"))
        elif empty[position].any():
            excluded.append(Omitted(unit, f"no value for {', '.join(np.array(factors)[empty[position]])}"))
        else:
            keep.append(position)
    return table.iloc[keep], excluded


def _contrast_matrix(grid: Mapping[str, np.ndarray], exog: np.ndarray, where: Mapping[str, str]) -> np.ndarray:
    """The mean design row over the grid's cells that match ``where``: a marginal mean is this row times beta."""
    mask = np.ones(len(exog), dtype=bool)
    for factor, level in where.items():
        mask &= grid[factor] == level
    return exog[mask].mean(axis=0)


@dataclass(frozen=True)
class _Fit:
    """What the estimates need from the fitted model: coefficients, covariance, the grid's design."""

    beta: np.ndarray
    cov: np.ndarray
    df: int
    grid: dict[str, np.ndarray]
    exog: np.ndarray

    def row(self, where: Mapping[str, str]) -> np.ndarray:
        return _contrast_matrix(self.grid, self.exog, where)

    def estimate(self, row: np.ndarray) -> tuple[float, float]:
        return float(row @ self.beta), float(math.sqrt(max(0.0, row @ self.cov @ row)))

    def interval(self, row: np.ndarray, confidence: float) -> tuple[float, float | None, float | None]:
        centre, se = self.estimate(row)
        if self.df < 1 or not math.isfinite(se):
            return centre, None, None
        half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, self.df)) * se
        return centre, centre - half, centre + half

    def wald(self, rows: np.ndarray) -> tuple[float | None, float | None]:
        values = rows @ self.beta
        middle = rows @ self.cov @ rows.T
        if self.df < 1 or not np.all(np.isfinite(middle)):
            return None, None
        try:
            f = float(values @ np.linalg.solve(middle, values)) / len(rows)
        except np.linalg.LinAlgError:
            return None, None
        return f, float(scipy_stats.f.sf(f, len(rows), self.df))


def _exp(value: float | None) -> float | None:
    return None if value is None else math.exp(value)


def _grid_columns(factors: Sequence[str], levels: Mapping[str, list[str]]) -> list[tuple[str, ...]]:
    """Every combination of the factors' levels, as one tuple of labels per factor."""
    combos = list(itertools.product(*(levels[f] for f in factors)))
    return list(zip(*combos, strict=True)) if combos else [() for _ in factors]


def _grid_design(
    frame: pd.DataFrame,
    grid: Mapping[str, np.ndarray],
    factors: Sequence[str],
    terms: Sequence[tuple[str, ...]],
    levels: Mapping[str, list[str]],
    exog: np.ndarray,
) -> np.ndarray:
    """The fitted model's design matrix at every cell of the full grid, whatever its column order or engine.

    Our own sum-coded design of the kept units spans the same columns as the model's full-rank
    exog, so exog = ours @ T for one invertible T (found by least squares, checked exact); the
    grid's design is then our grid design @ T.
    """

    def ours(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        codes = {f: np.array([levels[f].index(v) for v in columns[f]]) for f in factors}
        counts = {f: len(levels[f]) for f in factors}
        rows = len(next(iter(codes.values())))
        return np.hstack([np.ones((rows, 1)), *(_term_columns(t, codes, counts) for t in terms)])

    kept = ours({f: frame[f].to_numpy() for f in factors})
    transform, *_ = np.linalg.lstsq(kept, exog, rcond=None)
    if not np.allclose(kept @ transform, exog, atol=1e-9):
        raise AssertionError("the model's design is not the sum-coded design of its terms")
    return ours(grid) @ transform


def _fit(frame: pd.DataFrame, factors: list[str], terms: list[tuple[str, ...]], levels: dict[str, list[str]]):
    """OLS with statsmodels on internally renamed columns; the Type II table; the design of the full grid."""
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    inner = {f: f"f{i}" for i, f in enumerate(factors)}
    data = pd.DataFrame({inner[f]: pd.Categorical(frame[f], categories=levels[f]) for f in factors})
    data["y"] = np.log(frame["__response__"].to_numpy(dtype=float))
    spelled = {t: ":".join(f"C({inner[f]}, Sum)" for f in t) for t in terms}
    formula = "y ~ " + (" + ".join(spelled[t] for t in terms) if terms else "1")
    result = ols(formula, data=data).fit()
    table = anova_lm(result, typ=2) if terms else None
    columns = _grid_columns(factors, levels)
    grid = {f: np.array(column, dtype=object) for f, column in zip(factors, columns, strict=True)}
    fit = _Fit(
        beta=result.params.to_numpy(),
        cov=result.cov_params().to_numpy(),
        df=round(result.df_resid),
        grid=grid,
        exog=_grid_design(frame, grid, factors, terms, levels, np.asarray(result.model.exog)),
    )
    rows = {}
    if table is not None:
        for t in terms:
            line = table.loc[spelled[t]]
            rows[t] = (round(line["df"]), float(line["sum_sq"]), _finite(line["F"]), _finite(line["PR(>F)"]))
    readable = "log(" + "ESR" + ") ~ " + (" + ".join(term_name(t).replace(":", " x ") for t in terms) or "1")
    return fit, rows, float(result.mse_resid) if fit.df >= 1 else None, readable


def _term_tests(
    rows: Mapping[tuple[str, ...], tuple[int, float, float | None, float | None]],
    df_error: int,
    units: int,
    confidence: float,
) -> list[TermTest]:
    adjusted = holm({term_name(t): r[3] for t, r in rows.items() if r[3] is not None})
    tests = []
    for t, (df, sum_sq, f, p) in rows.items():
        eta = omega = None
        eta_ci: tuple[float | None, float | None] = (None, None)
        omega_ci: tuple[float | None, float | None] = (None, None)
        if f is not None and df_error >= 1:
            eta, omega = partial_eta_squared(f, df, df_error), partial_omega_squared(f, df, units)
            low, high = noncentrality_interval(f, df, df_error, confidence)
            eta_ci = (low / (low + df + df_error + 1), high / (high + df + df_error + 1) if high < math.inf else 1.0)
            omega_ci = (low / (low + units), high / (high + units) if high < math.inf else 1.0)
        tests.append(
            TermTest(
                term=term_name(t),
                factors=t,
                df=df,
                sum_sq=sum_sq,
                f=f,
                p=p,
                p_holm=adjusted.get(term_name(t)),
                partial_eta_sq=eta,
                partial_eta_sq_low=eta_ci[0],
                partial_eta_sq_high=eta_ci[1],
                partial_omega_sq=omega,
                partial_omega_sq_low=omega_ci[0],
                partial_omega_sq_high=omega_ci[1],
            )
        )
    return tests


def _marginal_means(
    fit: _Fit, frame: pd.DataFrame, factors: list[str], levels: dict[str, list[str]], confidence: float
) -> dict[str, list[LevelMean]]:
    means = {}
    for f in factors:
        means[f] = []
        for level in levels[f]:
            centre, low, high = fit.interval(fit.row({f: level}), confidence)
            count = int((frame[f] == level).sum())
            means[f].append(LevelMean(f, level, math.exp(centre), _exp(low), _exp(high), count))
    return means


def _cell_means(
    fit: _Fit, frame: pd.DataFrame, pair: tuple[str, str], levels: dict[str, list[str]], confidence: float
) -> list[CellMean]:
    cells = []
    for a, b in itertools.product(levels[pair[0]], levels[pair[1]]):
        centre, low, high = fit.interval(fit.row({pair[0]: a, pair[1]: b}), confidence)
        count = int(((frame[pair[0]] == a) & (frame[pair[1]] == b)).sum())
        cells.append(CellMean(pair, (a, b), math.exp(centre), _exp(low), _exp(high), count))
    return cells


def _contrasts(fit: _Fit, factor: str, levels: list[str], confidence: float) -> list[Contrast]:
    pairs = list(itertools.combinations(levels, 2))
    estimates = []
    for reference, level in pairs:
        centre, se = fit.estimate(fit.row({factor: level}) - fit.row({factor: reference}))
        p = None
        if fit.df >= 1 and se > 0:
            p = float(2.0 * scipy_stats.t.sf(abs(centre / se), fit.df))
        estimates.append((reference, level, centre, se, p))
    adjusted = holm({f"{r}|{lv}": p for r, lv, _, _, p in estimates if p is not None})
    steps = holm_levels([e[4] for e in estimates], confidence)
    out = []
    for (reference, level, centre, se, p), step in zip(estimates, steps, strict=True):
        low = high = None
        if fit.df >= 1:
            half = float(scipy_stats.t.ppf(0.5 + step / 2.0, fit.df)) * se
            low, high = math.exp(centre - half), math.exp(centre + half)
        p_holm = adjusted.get(f"{reference}|{level}")
        out.append(
            Contrast(
                factor=factor,
                level=level,
                reference=reference,
                ratio=math.exp(centre),
                low=low,
                high=high,
                p=p,
                p_holm=p_holm,
                confidence=step,
                significant=p_holm is not None and p_holm < 1.0 - confidence,
            )
        )
    return out


def _simple_effects(
    fit: _Fit, factor: str, within: str, levels: dict[str, list[str]], alpha: float
) -> list[SimpleEffect]:
    effects = []
    for w in levels[within]:
        rows = [fit.row({factor: a, within: w}) for a in levels[factor]]
        contrast = np.array([r - rows[0] for r in rows[1:]])
        f, p = fit.wald(contrast)
        logs = [fit.estimate(r)[0] for r in rows]
        best, worst = int(np.argmin(logs)), int(np.argmax(logs))
        effects.append((w, len(rows) - 1, f, p, levels[factor][best], levels[factor][worst], logs))
    adjusted = holm({w: p for w, _, _, p, *_ in effects if p is not None})
    out = []
    for w, df, f, p, best, worst, logs in effects:
        # Two levels: the ratio from the first to the second; more: worst over best (>= 1).
        ratio = math.exp(logs[1] - logs[0]) if len(logs) == 2 else math.exp(max(logs) - min(logs))
        p_holm = adjusted.get(w)
        out.append(
            SimpleEffect(factor, within, w, df, f, p, p_holm, best, worst, ratio, p_holm is not None and p_holm < alpha)
        )
    return out


def _strongest_interaction(tests: Sequence[TermTest]) -> TermTest | None:
    pairs = [t for t in tests if len(t.factors) == 2 and t.f is not None]
    return max(pairs, key=lambda t: (t.partial_eta_sq or 0.0, t.f or 0.0), default=None)


def _orientation(fit: _Fit, pair: tuple[str, ...], levels: dict[str, list[str]], alpha: float) -> list[SimpleEffect]:
    """Simple effects in the direction that says most: one factor mattering at some levels of the other and not all."""
    options = [
        _simple_effects(fit, pair[0], pair[1], levels, alpha),
        _simple_effects(fit, pair[1], pair[0], levels, alpha),
    ]

    def score(effects: list[SimpleEffect]) -> tuple[bool, float]:
        flags = {e.significant for e in effects}
        spread = [abs(math.log(e.ratio)) for e in effects]
        return len(flags) == 2, max(spread) - min(spread)

    return max(options, key=score)


def _power(sigma: float | None, factors: list[str], levels: dict[str, list[str]], alpha: float) -> list[PowerRow]:
    if sigma is None:
        return []
    rows = [
        PowerRow(
            "two arms, two-sample t-test on log ESR",
            None,
            c,
            seeds_needed(sigma, c, alpha=alpha),
            "arm",
            POWER_TARGET,
            alpha,
        )
        for c in POWER_CHANGES
    ]
    counts = {f: len(levels[f]) for f in factors}
    cells = math.prod(counts.values())
    params = 1 + sum(k - 1 for k in counts.values())
    params += sum((counts[a] - 1) * (counts[b] - 1) for a, b in itertools.combinations(factors, 2))
    for f in factors:
        per_level = cells // counts[f]
        for c in POWER_CHANGES:
            seeds = seeds_needed(sigma, c, variance_factor=2.0 / per_level, params=params, cells=cells, alpha=alpha)
            rows.append(
                PowerRow(
                    f"two levels of {f} in this grid (marginal means, full two-way model)",
                    f,
                    c,
                    seeds,
                    "cell",
                    POWER_TARGET,
                    alpha,
                )
            )
    return rows


def _error_description(pure: int, higher: int, factors: int) -> str:
    if pure == 0 and higher == 0:
        return "none: the model uses every degree of freedom, nothing is left to test against"
    if pure == 0:
        return (
            f"one unit per cell, so no seed replicates: the interactions the model leaves out ({higher} df; "
            f"{'three-way and higher' if factors > 2 else 'the two-way interaction'}) form the error term, "
            "which assumes they are small"
        )
    if higher == 0:
        return f"the spread between seeds within cells ({pure} df)"
    return f"the spread between seeds within cells ({pure} df) pooled with the interactions left out ({higher} df)"


def analyse_factorial(
    table: pd.DataFrame,
    factors: Sequence[str],
    *,
    response: str = "test_esr",
    unit_col: str = "unit",
    learned_col: str = "learned",
    alpha: float = ALPHA,
    confidence: float = CONFIDENCE,
) -> FactorialResult:
    """The factorial analysis of one value per unit (see the module docstring for every choice).

    ``table``: one row per unit with the column ``unit_col`` (the unit's name), one column per
    factor named as in ``factors`` (dotted config paths such as ``train.lstm_units``, ``context``),
    ``response`` (test ESR, > 0) and ``learned_col`` (bool: did the unit learn). Units that did not
    learn, or have no finite positive ESR, are left out and named in ``excluded_units``. Raises
    UserError (one line) when a column is missing or a unit appears twice. Never raises on a
    design it cannot fully analyse: what could not be done is named in ``dropped_factors``,
    ``dropped_terms`` and ``notes``.
    """
    factors = list(dict.fromkeys(factors))
    kept, excluded = _kept_units(table, factors, response, unit_col, learned_col)
    frame = pd.DataFrame({f: [level_label(v) for v in kept[f]] for f in factors}, index=kept.index)
    frame["__response__"] = pd.to_numeric(kept[response]).astype(float)
    levels = {f: [level_label(v) for v in ordered_levels(kept[f])] for f in factors}
    dropped_factors = [
        Omitted(f, f"only one level among the units kept ({', '.join(levels[f]) or 'none'})")
        for f in factors
        if len(levels[f]) < 2
    ]
    usable = [f for f in factors if len(levels[f]) >= 2]
    notes: list[str] = []
    usable, terms, confounded, dropped_terms = _estimable(frame, usable, levels) if usable else ([], [], [], [])
    dropped_factors += confounded
    counts = {f: len(levels[f]) for f in usable}
    terms, for_error = _leave_error_df(terms, counts, len(frame))
    dropped_terms += for_error
    n = len(frame)
    params = 1 + sum(math.prod(counts[f] - 1 for f in t) for t in terms)
    occupied = len(frame.groupby(usable, observed=True).size()) if usable else min(n, 1)
    pure_df = n - occupied
    higher_df = max(0, occupied - params)
    base = dict(
        response=response,
        levels={f: levels[f] for f in usable},
        units=n,
        excluded_units=excluded,
        dropped_factors=dropped_factors,
        dropped_terms=dropped_terms,
        alpha=alpha,
        confidence=confidence,
        methods={
            "anova": ANOVA_METHOD,
            "effect_size": EFFECT_METHOD,
            "marginal_means": MEANS_METHOD,
            "contrasts": CONTRAST_METHOD,
            "power": POWER_METHOD,
        },
    )
    if not usable or n - params < 1:
        why = (
            "no factor has two levels among the units kept"
            if not usable
            else f"{n} units cannot estimate {params} parameters of even the main-effects model"
        )
        notes.append(f"No ANOVA: {why}.")
        result = FactorialResult(
            factors=usable,
            formula=None,
            terms=[],
            residual_df=max(0, n - params),
            residual_sd=None,
            pure_error_df=pure_df,
            higher_order_df=higher_df,
            error_term="none",
            marginal_means={},
            cell_means={},
            contrasts={},
            strongest_interaction=None,
            simple_effects=[],
            power=[],
            notes=notes,
            verdict=[],
            **base,
        )
        result.verdict = factorial_verdict(result)
        return result

    fit, rows, mse, formula = _fit(frame, usable, terms, levels)
    sigma = math.sqrt(mse) if mse is not None and mse > 0 else None
    if mse is not None and mse <= 0:
        notes.append("The model fits the kept units exactly (zero residual): no test or interval is possible.")
    tests = _term_tests(rows, fit.df, n, confidence)
    if fit.df < 3:
        notes.append(f"The error term has only {fit.df} degree(s) of freedom: intervals are wide and tests weak.")
    pairs = [t for t in terms if len(t) == 2]
    strongest = _strongest_interaction(tests)
    result = FactorialResult(
        factors=usable,
        formula=formula,
        terms=tests,
        residual_df=fit.df,
        residual_sd=sigma,
        pure_error_df=pure_df,
        higher_order_df=higher_df,
        error_term=_error_description(pure_df, higher_df, len(usable)),
        marginal_means=_marginal_means(fit, frame, usable, levels, confidence),
        cell_means={term_name(p): _cell_means(fit, frame, (p[0], p[1]), levels, confidence) for p in pairs},
        contrasts={f: _contrasts(fit, f, levels[f], confidence) for f in usable},
        strongest_interaction=strongest.term if strongest else None,
        simple_effects=_orientation(fit, strongest.factors, levels, alpha) if strongest else [],
        power=_power(sigma, usable, levels, alpha),
        notes=notes,
        verdict=[],
        **base,
    )
    result.verdict = factorial_verdict(result)
    return result


# --- the verdict -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}"


def _p_text(p: float | None) -> str:
    if p is None:
        return "p –"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _move_text(result: FactorialResult, factor: str) -> str:
    """How ESR moves across a factor: ``64 → 96: ESR ×0.71 (95 % CI ...)``, or best → worst level for more levels."""
    start, stop, ratio, low, high = _largest_contrast(result, factor)
    several = len(result.levels[factor]) > 2
    text = f"{'best ' if several else ''}{start} → {'worst ' if several else ''}{stop}: ESR ×{ratio:.2f}"
    if low is None or high is None:
        return text
    label = "Holm-adjusted CI" if several else f"{result.confidence * 100:.0f} % CI"
    return f"{text} ({label} ×{low:.2f} to ×{high:.2f})"


def _largest_contrast(result: FactorialResult, factor: str) -> tuple[str, str, float, float | None, float | None]:
    """(from level, to level, ratio, low, high) for the factor: first to second level, or best to worst."""
    means = {m.level: m.esr for m in result.marginal_means[factor]}
    if len(means) == 2:
        contrast = result.contrasts[factor][0]
        return contrast.reference, contrast.level, contrast.ratio, contrast.low, contrast.high
    best = min(means, key=means.__getitem__)
    worst = max(means, key=means.__getitem__)
    for c in result.contrasts[factor]:
        if (c.reference, c.level) == (best, worst):
            return best, worst, c.ratio, c.low, c.high
        if (c.reference, c.level) == (worst, best):
            return (
                best,
                worst,
                1.0 / c.ratio,
                None if c.high is None else 1.0 / c.high,
                None if c.low is None else 1.0 / c.low,
            )
    return best, worst, means[worst] / means[best], None, None


def _term_stats(test: TermTest) -> str:
    f = "–" if test.f is None else f"{test.f:.2f}"
    return f"F({test.df}, {{df}}) = {f}, {_p_text(test.p)}"


def _factor_sentence(result: FactorialResult, test: TermTest, interacting: set[str]) -> str:
    factor = test.term
    stats = _term_stats(test).format(df=result.residual_df)
    size = ""
    if test.partial_omega_sq is not None:
        size = (
            f"partial ω² {_num(test.partial_omega_sq)} ({result.confidence * 100:.0f} % CI "
            f"{_num(test.partial_omega_sq_low)} to {_num(test.partial_omega_sq_high)}), "
        )
    move = _move_text(result, factor)
    averaged = f" (averaged over {', '.join(sorted(interacting))}; see the interaction)" if interacting else ""
    return f"{factor} matters: {size}{stats}; {move}{averaged}."


def _noise_phrase(result: FactorialResult) -> str:
    return "within seed noise" if result.higher_order_df == 0 else "within the noise of the error term"


def _interaction_sentence(result: FactorialResult) -> str | None:
    test = result.term(result.strongest_interaction) if result.strongest_interaction else None
    if test is None:
        return None
    a, b = test.factors
    stats = _term_stats(test).format(df=result.residual_df)
    if test.p is None or test.p >= result.alpha:
        return f"No two-way interaction is significant; the strongest is {a} × {b} ({stats})."
    effects = result.simple_effects
    factor, within = effects[0].factor, effects[0].within

    def where(e: SimpleEffect, named: bool = True) -> str:
        levels = result.levels[factor]
        how = (
            f"{levels[0]} → {levels[1]}: ESR ×{e.ratio:.2f}"
            if len(levels) == 2
            else f"ESR ×{e.ratio:.2f} from {e.best_level} to {e.worst_level}"
        )
        return f"{f'{within} = ' if named else ''}{e.within_level} ({how}, Holm {_p_text(e.p_holm)})"

    def listing(effects: Sequence[SimpleEffect], joiner: str, named: bool = True) -> str:
        parts = [where(e, named=named and index == 0) for index, e in enumerate(effects)]
        return f"{joiner} ".join(parts) if joiner == ";" else f" {joiner} ".join(parts)

    yes = [e for e in effects if e.significant]
    no = [e for e in effects if not e.significant]
    head = f"The strongest interaction, {a} × {b}, is significant ({stats}): "
    if yes and no:
        return head + f"{factor} matters at {listing(yes, 'and')} but not at {listing(no, 'or', named=False)}."
    if yes:
        return head + f"{factor} matters at every level of {within}, by different amounts: {listing(yes, ';')}."
    return (
        head + f"the effect of {factor} changes with {within} ({listing(no, 'and')}), though no level's "
        "simple effect is significant on its own."
    )


def factorial_verdict(result: FactorialResult) -> list[str]:
    """The factorial answer in plain sentences: what was left out, what matters and by how much, what to run next."""
    sentences = []
    if result.excluded_units:
        names = ", ".join(f"{u.name} ({u.reason})" for u in result.excluded_units)
        count = len(result.excluded_units)
        sentences.append(
            f"Left out of the analysis ({count} unit{'s' if count > 1 else ''}, never averaged in): {names}."
        )
    for dropped in result.dropped_factors:
        sentences.append(f"Factor {dropped.name} is not analysed: {dropped.reason}.")
    for dropped in result.dropped_terms:
        sentences.append(f"The interaction {dropped.name.replace(':', ' × ')} is not in the model: {dropped.reason}.")
    if not result.terms:
        return sentences + result.notes
    significant_pairs = [t for t in result.terms if len(t.factors) == 2 and t.p is not None and t.p < result.alpha]
    mains = sorted((t for t in result.terms if len(t.factors) == 1), key=lambda t: -(t.partial_eta_sq or 0.0))
    quiet = []
    for test in mains:
        if test.p is not None and test.p < result.alpha:
            partners = {f for t in significant_pairs if test.term in t.factors for f in t.factors if f != test.term}
            sentences.append(_factor_sentence(result, test, partners))
        else:
            stats = _term_stats(test).format(df=result.residual_df)
            quiet.append(f"{test.term} ({stats}; {_move_text(result, test.term)})")
    if quiet:
        sentences.append(f"{_noise_phrase(result).capitalize()}: {'; '.join(quiet)}.")
    interaction = _interaction_sentence(result)
    if interaction:
        sentences.append(interaction)
    sentences.append(
        f"The error term is {result.error_term}; residual SD {_num(result.residual_sd, 3)} in log ESR "
        f"(about {100 * (math.exp(result.residual_sd) - 1):.0f} % per unit)."
        if result.residual_sd
        else f"The error term is {result.error_term}."
    )
    arms = {row.change: row.seeds for row in result.power if row.factor is None}
    if arms:

        def seeds(c: float) -> str:
            return "more than 10,000" if arms[c] is None else str(arms[c])

        sentences.append(
            "What to run next: telling two arms apart by a 20 % change in ESR with "
            f"{POWER_TARGET * 100:.0f} % power at alpha {result.alpha} takes {seeds(0.2)} seeds per arm; "
            f"by a 10 % change, {seeds(0.1)}."
        )
    return sentences + result.notes

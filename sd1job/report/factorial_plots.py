"""The factorial answer's figures, as PNG bytes: what matters (effect sizes), by how much (marginal means), and how
the strongest interaction looks. Drawn from the pieces of ``sd1job.factorial.FactorialResult`` (plain dataclasses),
with the helpers and style of ``plots.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sd1job.factorial import CellMean, FactorialResult, LevelMean, TermTest
from sd1job.report.plots import ESR_GUIDES, _figure, _png

SIGNIFICANT = "tab:blue"
NOT_SIGNIFICANT = "tab:grey"


def _label(term: str) -> str:
    return term.replace(":", " × ")


def _p_label(p: float | None) -> str:
    return "" if p is None else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _esr_axis(axes: Any) -> None:
    """A log ESR axis whose ticks read as plain numbers (0.012, not 1.2 x 10^-2)."""
    from matplotlib.ticker import FuncFormatter

    axes.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:.3g}")
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(plain)
    axes.tick_params(axis="y", which="both", labelsize=7)


def _guides_in_view(axes: Any) -> None:
    """NAM's ESR verdict thresholds, only those inside the data's range (so they do not squash the differences)."""
    low, high = axes.get_ylim()
    for level, verdict in ESR_GUIDES:
        if low <= level <= high:
            axes.axhline(level, color="grey", linestyle=":", linewidth=0.8, alpha=0.6)
            place = ("axes fraction", "data")
            axes.annotate(verdict, (1.0, level), xycoords=place, fontsize=7, color="grey", ha="right")
    axes.set_ylim(low, high)


def effect_sizes(terms: Sequence[TermTest], alpha: float = 0.05) -> bytes:
    """Each term's partial omega squared with its 95 % interval, largest first; significant terms in colour.

    A horizontal dot-and-whisker plot on 0..1: how much of the variation that the term and the noise
    explain together is the term's, with the uncertainty the importance panels of other tools do not
    show. Terms without an effect size (no error term) are left out.
    """
    shown = [t for t in terms if t.partial_omega_sq is not None]
    shown.sort(key=lambda t: t.partial_omega_sq or 0.0)
    figure = _figure(8.0, 1.2 + 0.45 * max(1, len(shown)))
    axes = figure.add_subplot()
    for row, term in enumerate(shown):
        colour = SIGNIFICANT if term.p is not None and term.p < alpha else NOT_SIGNIFICANT
        low, high = term.partial_omega_sq_low, term.partial_omega_sq_high
        if low is not None and high is not None:
            axes.plot([low, high], [row, row], "-", color=colour, linewidth=2.5, alpha=0.7)
        marker = "o" if len(term.factors) == 1 else "D"
        axes.plot([term.partial_omega_sq], [row], marker, color=colour, markersize=7)
    axes.set_yticks(range(len(shown)))
    axes.set_yticklabels([_label(t.term) for t in shown], fontsize=8)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(-0.6, len(shown) - 0.4)
    right = axes.twinx()  # each term's p value in a column of its own, clear of the intervals
    right.set_ylim(axes.get_ylim())
    right.set_yticks(range(len(shown)))
    right.set_yticklabels([_p_label(t.p) for t in shown], fontsize=7, color="grey")
    right.tick_params(axis="y", length=0)
    axes.set_xlabel("partial ω² with 95 % interval (share of variance: term / (term + error))")
    axes.set_title(f"What matters: effect size per term (blue: p < {alpha}; diamonds: interactions)", fontsize=10)
    axes.grid(True, axis="x", alpha=0.3)
    return _png(figure)


def marginal_means(means: Mapping[str, Sequence[LevelMean]]) -> bytes:
    """One panel per factor: the estimated marginal mean test ESR at each level with its 95 % interval, log axis.

    Every panel shares the ESR axis, so the factors' effects compare at a glance; NAM's verdict
    thresholds are faint guides.
    """
    factors = list(means)
    columns = min(4, max(1, len(factors)))
    rows = math.ceil(max(1, len(factors)) / columns)
    figure = _figure(3.4 * columns, 3.2 * rows)
    first = None
    for index, factor in enumerate(factors):
        axes = figure.add_subplot(rows, columns, index + 1, sharey=first)
        first = first or axes
        levels = list(means[factor])
        xs = list(range(len(levels)))
        centre = [m.esr for m in levels]
        below = [m.esr - m.low if m.low is not None else 0.0 for m in levels]
        above = [m.high - m.esr if m.high is not None else 0.0 for m in levels]
        axes.errorbar(xs, centre, yerr=[below, above], fmt="s-", color="black", capsize=4, linewidth=1.2)
        axes.set_xticks(xs)
        axes.set_xticklabels([f"{m.level}\n({m.units} units)" for m in levels], fontsize=8)
        _esr_axis(axes)
        axes.set_title(factor, fontsize=10)
        axes.grid(True, which="both", alpha=0.3)
        if index % columns == 0:
            axes.set_ylabel("test ESR (marginal mean, 95 % CI)")
    for axes in figure.axes:
        _guides_in_view(axes)
    figure.suptitle("Marginal means per factor (averaged with equal weight over the other factors' levels)")
    return _png(figure)


def interaction(cells: Sequence[CellMean], p: float | None = None, across: str | None = None) -> bytes:
    """The interaction plot of one two-way term: ESR per level of ``across``, one line per level of the other factor.

    ``across`` (the x axis) defaults to the term's first factor; the verdict's "A matters at B = b"
    reads best with B across and a line per level of A.

    Points are the cells' estimated means (averaged over any other factors) with 95 % intervals,
    nudged sideways so the intervals do not overlap; parallel lines mean no interaction.
    """
    x_index = 1 if across is not None and across == cells[0].factors[1] else 0
    first, second = cells[0].factors[x_index], cells[0].factors[1 - x_index]
    x_levels = list(dict.fromkeys(c.levels[x_index] for c in cells))
    line_levels = list(dict.fromkeys(c.levels[1 - x_index] for c in cells))
    figure = _figure(7.5, 4.8)
    axes = figure.add_subplot()
    width = 0.08
    for index, level in enumerate(line_levels):
        mine = [c for c in cells if c.levels[1 - x_index] == level]
        mine.sort(key=lambda c: x_levels.index(c.levels[x_index]))
        offset = (index - (len(line_levels) - 1) / 2) * width
        xs = [x_levels.index(c.levels[x_index]) + offset for c in mine]
        centre = [c.esr for c in mine]
        below = [c.esr - c.low if c.low is not None else 0.0 for c in mine]
        above = [c.high - c.esr if c.high is not None else 0.0 for c in mine]
        axes.errorbar(xs, centre, yerr=[below, above], fmt="o-", capsize=3, linewidth=1.5, label=f"{second} = {level}")
    axes.set_xticks(range(len(x_levels)))
    axes.set_xticklabels(x_levels)
    axes.set_xlabel(first)
    _esr_axis(axes)
    axes.set_ylabel("test ESR (cell mean, 95 % CI)")
    test = f" ({_p_label(p)})" if p is not None else ""
    axes.set_title(f"Interaction {first} × {second}{test}: parallel lines would mean none", fontsize=10)
    _guides_in_view(axes)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return _png(figure)


def draw_factorial(result: FactorialResult) -> dict[str, bytes]:
    """Every factorial figure the result supports, by file stem.

    ``factorial_effects`` and ``factorial_means`` whenever the ANOVA ran; ``factorial_interaction``
    when the model has a two-way interaction (the strongest one, as the verdict describes).
    """
    if not result.terms:
        return {}
    figures = {
        "factorial_effects": effect_sizes(result.terms, result.alpha),
        "factorial_means": marginal_means(result.marginal_means),
    }
    strongest = result.strongest_interaction
    if strongest is not None and result.cell_means.get(strongest):
        test = result.term(strongest)
        across = result.simple_effects[0].within if result.simple_effects else None
        figures["factorial_interaction"] = interaction(result.cell_means[strongest], test.p if test else None, across)
    return figures

"""The factorial statistics on constructed grids with known answers (one row per unit, log ESR planted)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from sd1job import factorial
from sd1job.errors import UserError
from sd1job.factorial import analyse_factorial
from sd1job.report import factorial_plots

BASE_ESR = 0.02
SEED_SD = 0.14  # about 15 % between two seeds of one arm, as measured on the demo data


def grid_table(
    levels: dict[str, list], seeds: int, rng: np.random.Generator, effect=lambda row: 0.0, sd: float = SEED_SD
) -> pd.DataFrame:
    """One row per unit: log ESR = log BASE_ESR + effect(row) + a seed's N(0, sd) draw."""
    rows = []
    for combo in itertools.product(*levels.values()):
        for seed in range(seeds):
            row = dict(zip(levels, combo, strict=True))
            row["unit"] = "-".join(map(str, combo)) + f"-s{seed}"
            row["test_esr"] = math.exp(math.log(BASE_ESR) + effect(row) + rng.normal(0.0, sd))
            row["learned"] = True
            rows.append(row)
    return pd.DataFrame(rows)


def contrast(result, factor: str, reference: str, level: str) -> factorial.Contrast:
    return next(c for c in result.contrasts[factor] if (c.reference, c.level) == (reference, level))


# --- the ANOVA table itself ---------------------------------------------------------------------


def _rss(y: np.ndarray, frame: pd.DataFrame, terms: list[tuple[str, ...]]) -> float:
    """Residual sum of squares of OLS on treatment-coded dummies (a coding the module does not use)."""
    columns = [np.ones(len(y))]
    dummies = {f: pd.get_dummies(frame[f], drop_first=True).to_numpy(float) for f in frame}
    for term in terms:
        block = dummies[term[0]]
        for f in term[1:]:
            block = (block[:, :, None] * dummies[f][:, None, :]).reshape(len(y), -1)
        columns.append(block)
    design = np.column_stack(columns)
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.sum((y - design @ beta) ** 2))


def test_type_ii_sums_of_squares_match_the_textbook_model_comparison_on_unbalanced_cells():
    rng = np.random.default_rng(3)
    levels = {"a": ["x", "y", "z"], "b": [1, 2], "c": ["p", "q"]}
    table = grid_table(levels, 3, rng, lambda r: 0.3 * (r["a"] == "y") - 0.2 * (r["b"] == 2) * (r["c"] == "q"))
    table = table.drop(index=[0, 1, 7, 20]).reset_index(drop=True)  # unbalanced: some cells lost units
    result = analyse_factorial(table, list(levels))
    frame = table[list(levels)].astype(str)
    y = np.log(table["test_esr"].to_numpy())
    terms = [(f,) for f in levels] + list(itertools.combinations(levels, 2))
    full = _rss(y, frame, terms)
    for term in terms:
        # Type II: the term after every term that does not contain it.
        others = [t for t in terms if t != term and not set(term) < set(t)]
        expected = _rss(y, frame, others) - _rss(y, frame, [*others, term])
        row = result.term(factorial.term_name(term))
        assert row.sum_sq == pytest.approx(expected, rel=1e-8), term
        f = (expected / row.df) / (full / result.residual_df)
        assert row.f == pytest.approx(f, rel=1e-8)
        assert row.p == pytest.approx(scipy_stats.f.sf(f, row.df, result.residual_df), rel=1e-6)
    assert result.residual_df == len(table) - (1 + 2 + 1 + 1 + 2 + 2 + 1)


def test_a_null_factor_is_called_significant_at_most_alpha_and_intervals_cover_the_truth():
    """150 simulated grids: A moves ESR by a factor 1.3, B and C do nothing, no interaction."""
    rng = np.random.default_rng(20)
    levels = {"a": ["lo", "hi"], "b": [44, 88, 132], "c": ["lstm", "gru"]}
    replicates, alpha = 150, 0.05
    null_terms = ["b", "c", "a:b", "a:c", "b:c"]
    calls = dict.fromkeys(null_terms, 0)
    family_calls = 0  # any of b's three Holm-adjusted pairwise contrasts called significant
    covered_ratio = covered_mean = 0
    for _ in range(replicates):
        table = grid_table(levels, 2, rng, lambda r: math.log(1.3) * (r["a"] == "hi"))
        result = analyse_factorial(table, list(levels), alpha=alpha)
        for term in null_terms:
            calls[term] += result.term(term).p < alpha
        family_calls += any(c.significant for c in result.contrasts["b"])
        planted = contrast(result, "a", "lo", "hi")
        covered_ratio += planted.low <= 1.3 <= planted.high
        low_mean = result.marginal_means["a"][0]
        covered_mean += low_mean.low <= BASE_ESR <= low_mean.high
    # A binomial count above its 99.9th percentile at alpha would reject "the rate is at most alpha".
    limit = scipy_stats.binom.ppf(0.999, replicates, alpha)
    assert all(count <= limit for count in calls.values()), calls
    assert sum(calls.values()) <= scipy_stats.binom.ppf(0.999, replicates * len(null_terms), alpha), calls
    assert family_calls <= limit
    # 95 % intervals: coverage not significantly below 95 %.
    floor = scipy_stats.binom.ppf(0.001, replicates, 0.95)
    assert covered_ratio >= floor and covered_mean >= floor, (covered_ratio, covered_mean)


def test_a_planted_effect_is_found_and_its_size_recovered_within_its_interval():
    """One grid at a fixed seed: how often such intervals cover the truth is the simulation's business."""
    rng = np.random.default_rng(5)
    ratios = {"Low": 1.0, "Mid": 1.5, "High": 2.0}
    levels = {"recordings.set": list(ratios), "train.lstm_units": [64, 96]}
    table = grid_table(levels, 4, rng, lambda r: math.log(ratios[r["recordings.set"]]))
    result = analyse_factorial(table, list(levels))
    drive = result.term("recordings.set")
    assert drive.p < 0.001
    assert 0.0 < drive.partial_omega_sq_low <= drive.partial_omega_sq <= drive.partial_omega_sq_high < 1.0
    assert drive.partial_eta_sq_low <= drive.partial_eta_sq <= drive.partial_eta_sq_high
    assert drive.partial_omega_sq < drive.partial_eta_sq  # omega corrects eta's upward bias
    for level in ("Mid", "High"):
        found = contrast(result, "recordings.set", "Low", level)
        assert found.low <= ratios[level] <= found.high, (level, found)
        assert found.significant and found.p_holm < 0.05 and found.confidence > 0.95
    means = {m.level: m for m in result.marginal_means["recordings.set"]}
    for level, ratio in ratios.items():
        assert means[level].low <= BASE_ESR * ratio <= means[level].high
        assert means[level].units == 8
    assert result.term("train.lstm_units").p > 0.05
    assert any(s.startswith("recordings.set matters") for s in result.verdict)
    assert any("train.lstm_units (F(1," in s and s.startswith("Within seed noise") for s in result.verdict)


def test_unbalanced_cells_leave_the_marginal_means_untilted():
    """A is null, B doubles ESR, and most of A's 'hi' units that failed sat at B=1: a raw mean would blame A."""
    rng = np.random.default_rng(11)
    levels = {"a": ["lo", "hi"], "b": [1, 2]}
    table = grid_table(levels, 5, rng, lambda r: math.log(2.0) * (r["b"] == 2), sd=0.05)
    failed = table.index[(table.a == "hi") & (table.b == 1)][:4]
    table.loc[failed, "learned"] = False
    result = analyse_factorial(table, list(levels))
    assert [u.name for u in result.excluded_units] == table.loc[failed, "unit"].tolist()
    assert result.units == 16
    raw = table[table.learned].groupby("a")["test_esr"].apply(lambda s: math.exp(np.log(s).mean()))
    # The naive comparison is tilted by the lost cell: exp((5 log 2) / 6 - (5 log 2) / 10) = 1.26.
    assert raw["hi"] / raw["lo"] > 1.15
    ratio = contrast(result, "a", "lo", "hi")
    assert ratio.low <= 1.0 <= ratio.high and 0.9 < ratio.ratio < 1.1
    assert result.term("a").p > 0.05
    assert [m.units for m in result.marginal_means["a"]] == [10, 6]


def test_an_empty_cell_drops_the_interaction_and_names_the_cell():
    rng = np.random.default_rng(5)
    levels = {"a": ["x", "y"], "b": [1, 2]}
    table = grid_table(levels, 3, rng, lambda r: 0.4 * (r["a"] == "y"))
    table.loc[(table.a == "y") & (table.b == 2), "learned"] = False
    result = analyse_factorial(table, list(levels))
    assert [t.term for t in result.terms] == ["a", "b"]
    assert result.dropped_terms[0].name == "a:b"
    assert "a=y & b=2" in result.dropped_terms[0].reason
    assert any("a × b is not in the model" in s and "a=y & b=2" in s for s in result.verdict)
    assert result.term("a").p < 0.05


def test_one_seed_per_cell_uses_the_higher_order_interactions_as_the_error_term():
    rng = np.random.default_rng(9)
    levels = {"recordings.set": ["Low", "Mid", "High"], "context": [44, 66, 88], "train.lstm_units": [64, 96]}
    table = grid_table(levels, 1, rng, lambda r: math.log(1.5) * (r["recordings.set"] == "High"), sd=0.1)
    result = analyse_factorial(table, list(levels))
    assert result.pure_error_df == 0
    assert result.residual_df == result.higher_order_df == 2 * 2 * 1  # the three-way interaction
    assert "one unit per cell" in result.error_term and "three-way" in result.error_term
    assert any("one unit per cell" in s for s in result.verdict)
    assert len(result.terms) == 6 and not result.dropped_terms
    assert result.term("recordings.set").p < 0.05
    # Two factors, one seed: the two-way interaction must become the error term.
    two = analyse_factorial(table[table["train.lstm_units"] == 64], ["recordings.set", "context"])
    assert [t.term for t in two.terms] == ["recordings.set", "context"]
    assert two.dropped_terms[0].name == "recordings.set:context"
    assert "keeps an error term" in two.dropped_terms[0].reason
    assert two.residual_df == 4 and "the two-way interaction" in two.error_term


def test_a_failed_unit_is_named_and_left_out_not_averaged_in():
    rng = np.random.default_rng(13)
    levels = {"a": ["x", "y"], "b": ["p", "q"]}
    table = grid_table(levels, 3, rng)
    table.loc[2, ["test_esr", "learned"]] = [1.0, False]  # a unit that never learned: ESR of a silent model
    table.loc[5, "test_esr"] = float("nan")  # a unit without a score
    result = analyse_factorial(table, list(levels))
    assert [(u.name, u.reason.split(" (")[0]) for u in result.excluded_units] == [
        (table.unit[2], "did not learn"),
        (table.unit[5], "no finite positive test_esr"),
    ]
    without = analyse_factorial(table.drop(index=[2, 5]), list(levels))
    assert [t.f for t in result.terms] == pytest.approx([t.f for t in without.terms])
    assert result.verdict[0].startswith("Left out of the analysis (2 units, never averaged in)")
    assert table.unit[2] in result.verdict[0]


def test_an_interaction_is_found_and_described_through_simple_effects():
    """Context matters at High drive (ESR halves from 44 to 88) but not at Low."""
    rng = np.random.default_rng(17)
    levels = {"recordings.set": ["Low", "High"], "context": [44, 88], "train.lstm_units": [64, 96]}

    def effect(row: dict) -> float:
        return math.log(0.5) * (row["recordings.set"] == "High") * (row["context"] == 88)

    table = grid_table(levels, 3, rng, effect)
    result = analyse_factorial(table, list(levels))
    assert result.strongest_interaction == "recordings.set:context"
    assert result.term("recordings.set:context").p < 0.001
    assert {(e.factor, e.within_level, e.significant) for e in result.simple_effects} == {
        ("context", "High", True),
        ("context", "Low", False),
    }
    sentence = next(s for s in result.verdict if s.startswith("The strongest interaction"))
    assert "context matters at recordings.set = High" in sentence and "but not at Low" in sentence
    high = next(e for e in result.simple_effects if e.within_level == "High")
    assert 0.4 < high.ratio < 0.62
    cells = {c.levels: c for c in result.cell_means["recordings.set:context"]}
    assert cells[("High", "88")].low <= BASE_ESR * 0.5 <= cells[("High", "88")].high


def test_factors_with_one_level_or_changed_together_are_dropped_with_the_reason():
    rng = np.random.default_rng(19)
    table = grid_table({"a": ["x", "y"], "b": [1, 2, 3], "single": ["only"]}, 2, rng)
    table["twin"] = table["a"].map({"x": "lo", "y": "hi"})
    result = analyse_factorial(table, ["a", "b", "single", "twin"])
    reasons = {d.name: d.reason for d in result.dropped_factors}
    assert reasons["single"].startswith("only one level") and "confounded with a" in reasons["twin"]
    assert result.factors == ["a", "b"]
    assert [t.term for t in result.terms] == ["a", "b", "a:b"]


def test_nothing_left_to_analyse_is_said_not_raised():
    rng = np.random.default_rng(23)
    table = grid_table({"a": ["x", "y"]}, 2, rng)
    table["learned"] = False
    result = analyse_factorial(table, ["a"])
    assert result.terms == [] and len(result.excluded_units) == 4
    assert any(s.startswith("No ANOVA") for s in result.verdict)
    assert factorial_plots.draw_factorial(result) == {}


def test_bad_tables_are_refused_with_one_line_naming_the_column_or_unit():
    table = grid_table({"a": ["x", "y"]}, 2, np.random.default_rng(1))
    with pytest.raises(UserError, match=r"no column train\.lr"):
        analyse_factorial(table, ["train.lr"])
    with pytest.raises(UserError, match="x-s0 appears more than once"):
        analyse_factorial(pd.concat([table, table.iloc[:1]]), ["a"])


# --- the pieces ----------------------------------------------------------------------------------


def test_seeds_needed_matches_the_classic_two_sample_sizes():
    # Cohen's d = 0.5 takes 64 per group and d = 0.8 takes 26 for 80 % power at alpha 0.05.
    delta = math.log(1.2)
    assert factorial.seeds_needed(delta / 0.5, 0.2) == 64
    assert factorial.seeds_needed(delta / 0.8, 0.2) == 26
    assert factorial.seeds_needed(0.14, 0.1) > factorial.seeds_needed(0.14, 0.2)


def test_noncentral_f_interval_covers_the_true_noncentrality():
    rng = np.random.default_rng(29)
    truth, df, df_error = 6.0, 2, 20
    draws = scipy_stats.ncf.rvs(df, df_error, truth, size=300, random_state=rng)
    covered = 0
    for f in draws:
        low, high = factorial.noncentrality_interval(float(f), df, df_error)
        covered += low <= truth <= high
    assert covered >= scipy_stats.binom.ppf(0.001, 300, 0.95)
    low, high = factorial.noncentrality_interval(8.0, df, df_error)
    assert scipy_stats.ncf.cdf(8.0, df, df_error, low) == pytest.approx(0.975, abs=1e-6)
    assert scipy_stats.ncf.cdf(8.0, df, df_error, high) == pytest.approx(0.025, abs=1e-6)
    low, high = factorial.noncentrality_interval(0.1, df, df_error)  # below the null's median: low is floored
    assert low == 0.0 and high > 0.0


def test_holm_levels_freeze_where_holm_stops():
    # m = 3, alpha = 0.05: the smallest p is tested at 0.05/3, the next at 0.05/2 (0.03 fails: Holm stops).
    levels = factorial.holm_levels([0.001, 0.04, 0.03])
    assert levels == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 2])
    assert factorial.holm_levels([0.001, 0.002, 0.003]) == pytest.approx([1 - 0.05 / 3, 1 - 0.05 / 2, 0.95])


def test_level_order_and_labels():
    assert factorial.ordered_levels(pd.Series([96, 64, 96])) == [64, 96]
    assert factorial.ordered_levels(pd.Series(["Low", "Mid", "High"])) == ["Low", "Mid", "High"]
    assert [factorial.level_label(v) for v in (64, 0.0001, 0.01, 44.0, "High", True)] == [
        "64",
        "0.0001",
        "0.01",
        "44",
        "High",
        "true",
    ]


# --- results.json and the figures ----------------------------------------------------------------


@pytest.fixture(scope="module")
def interacting():
    rng = np.random.default_rng(31)
    levels = {"recordings.set": ["Low", "Mid", "High"], "context": [44, 88], "model.cell": ["lstm", "gru"]}

    def effect(row: dict) -> float:
        high = row["recordings.set"] == "High"
        return 0.4 * high - 0.5 * high * (row["context"] == 88)

    table = grid_table(levels, 2, rng, effect)
    table.loc[0, "learned"] = False
    return analyse_factorial(table, list(levels))


def test_to_dict_is_strict_json_with_the_tables_the_page_needs(interacting):
    data = json.loads(json.dumps(interacting.to_dict(), allow_nan=False))
    assert {"term", "df", "f", "p", "partial_omega_sq", "partial_omega_sq_low", "partial_omega_sq_high"} <= set(
        data["terms"][0]
    )
    assert {m["level"] for m in data["marginal_means"]["recordings.set"]} == {"Low", "Mid", "High"}
    assert len(data["contrasts"]["recordings.set"]) == 3
    assert data["excluded_units"][0]["reason"] == "did not learn"
    assert {row["change"] for row in data["power"]} == {0.2, 0.1}
    assert data["verdict"] == interacting.verdict


def test_the_figures_are_drawn(interacting):
    figures = factorial_plots.draw_factorial(interacting)
    assert set(figures) == {"factorial_effects", "factorial_means", "factorial_interaction"}
    assert all(png.startswith(b"\x89PNG") and len(png) > 10_000 for png in figures.values())

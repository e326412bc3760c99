"""Per-configuration statistics against the baseline, from synthetic records with known numbers."""
import math

import pytest

from harness.report.build import load_runs
from harness.report.summary import Baseline, SummaryOptions, apply_targets, missing_cells, summarize
from report.synthetic import make_record, small_sweep, write


@pytest.fixture
def runs(tmp_path):
    df, problems = load_runs(small_sweep(tmp_path))
    assert problems == []
    return df


def _row(table, forward, backward):
    return table[(table.forward == forward) & (table.backward == backward)].iloc[0]


def test_counts_failures_and_compares_with_the_exact_rule_of_the_same_forward(runs):
    table = summarize(runs)
    assert len(table) == 4
    rr = _row(table, "relu", "rectangular")
    assert (rr.runs, rr.ok, rr.failed) == (4, 3, 1)  # the failed run is counted, not dropped
    assert rr.final_test_acc_mean == pytest.approx(0.34) and rr.diff_mean == pytest.approx(0.34 - 0.64)
    sr = _row(table, "step", "rectangular")
    assert sr.diff_mean == pytest.approx(0.50 - 0.76 / 3)
    assert sr.baseline_id == _row(table, "step", "exact").config_id  # not relu's exact
    assert (rr.verdict, sr.verdict) == ("worse", "better")
    assert _row(table, "relu", "exact").verdict == "baseline"
    assert sr.step_ratio == pytest.approx(0.8) and sr.memory_ratio == pytest.approx(1.0)


def test_holm_across_the_comparisons_of_the_table(runs):
    table = summarize(runs)
    compared = table[table.p_welch.notna()].sort_values("p_welch")
    assert len(compared) == 2
    assert compared.p_welch_holm.iloc[0] == pytest.approx(2 * compared.p_welch.iloc[0])
    assert compared.p_welch_holm.iloc[1] == pytest.approx(max(compared.p_welch.iloc[1], 2 * compared.p_welch.iloc[0]))
    assert table.p_mw.isna().all()  # 3 vs 3 cannot reach p < 0.05: not run


def test_time_to_target_counts_the_runs_that_never_reach_it(runs):
    table = summarize(runs)
    sr, rr = _row(table, "step", "rectangular"), _row(table, "relu", "rectangular")
    assert sr.target_reached == 2 and sr.target_s_n == 2 and sr.ok == 3  # seed with 0.49 never reached it
    assert rr.target_reached == 0 and math.isnan(rr.target_s_mean)
    again = summarize(apply_targets(runs, {"mnist1d": 0.2}))
    # A target of 0.2 is reached at the first evaluation whose accuracy (acc * k / 4) is >= 0.2.
    assert _row(again, "relu", "rectangular").target_reached == 3
    assert _row(again, "relu", "rectangular").target_step_mean == pytest.approx(750)  # 0.3*3/4=0.225 at step 750 for 0.30


def test_verdict_matches_for_equal_rules(tmp_path):
    for seed, acc in enumerate([0.600, 0.602, 0.604]):
        write(tmp_path, f"e{seed}", make_record("relu", "exact", seed, acc))
        write(tmp_path, f"b{seed}", make_record("relu", "b_silu", seed, acc + 0.001))
    table = summarize(load_runs(tmp_path)[0])
    assert _row(table, "relu", "b_silu").verdict == "matches"
    loose = summarize(load_runs(tmp_path)[0], SummaryOptions(baseline=Baseline.parse("backward=b_silu")))
    assert _row(loose, "relu", "exact").verdict == "matches" and _row(loose, "relu", "b_silu").verdict == "baseline"


def test_too_few_seeds_are_inconclusive(tmp_path):
    for seed in range(2):
        write(tmp_path, f"e{seed}", make_record("relu", "exact", seed, 0.6 + seed / 100))
        write(tmp_path, f"r{seed}", make_record("relu", "rectangular", seed, 0.3 + seed / 100))
    table = summarize(load_runs(tmp_path)[0])
    assert _row(table, "relu", "rectangular").verdict == "inconclusive (n too small)"


def test_bad_baseline_and_metric_are_clear_errors(runs):
    with pytest.raises(ValueError, match="GROUP=NAME"):
        Baseline.parse("exact")
    with pytest.raises(ValueError, match="not a column"):
        summarize(runs, SummaryOptions(metric="accuracy"))


def test_missing_cells_of_the_grid(runs):
    missing = missing_cells(runs)
    # seeds {0, 1, 2, 9} x 4 pairs = 16 cells; 12 ok runs + 1 failed run (relu/rectangular seed 9) are present.
    assert len(missing) == 3 and set(missing.seed) == {9}
    assert {(r.forward, r.backward) for r in missing.itertuples()} == {("relu", "exact"), ("step", "exact"), ("step", "rectangular")}


def test_duplicate_run_keys_count_once(tmp_path):
    write(tmp_path, "a", make_record(seed=0, acc=0.5))
    write(tmp_path, "copy", make_record(seed=0, acc=0.5))
    runs, problems = load_runs(tmp_path)
    assert len(runs) == 1 and len(problems) == 1 and "duplicate of run key" in problems[0]

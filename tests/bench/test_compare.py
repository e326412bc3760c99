"""Ratio comparison with a baseline on synthetic entries: thresholds, new/missing keys, retries."""
import pytest

from harness.bench import compare as cmp


def _by_pair(comparisons):
    return {c.key[0]: c for c in comparisons}


def test_30_percent_worse_fails_and_20_percent_worse_passes_at_threshold_025(entry):
    base = [entry("a", 1.0), entry("b", 2.0)]
    cur = [entry("a", 1.30), entry("b", 2.40)]
    comps = _by_pair(cmp.compare_entries(base, cur, 0.25))
    assert comps["a"].status == cmp.WORSE and comps["a"].failed
    assert comps["a"].change == pytest.approx(0.30)
    assert comps["b"].status == cmp.OK and not comps["b"].failed
    assert cmp.exit_code(list(comps.values())) == 1


def test_exactly_at_threshold_passes_and_big_gains_are_flagged_as_improved(entry):
    comps = _by_pair(cmp.compare_entries([entry("a", 1.0), entry("b", 1.0)], [entry("a", 1.25), entry("b", 0.5)], 0.25))
    assert comps["a"].status == cmp.OK
    assert comps["b"].status == cmp.IMPROVED
    assert cmp.exit_code(list(comps.values())) == 0


def test_missing_from_the_baseline_is_new_and_missing_from_the_run_is_not_measured(entry):
    base = [entry("a", 1.0), entry("old", 1.0)]
    cur = [entry("a", 1.0), entry("fresh", 9.0), entry("a", 5.0, threads="all")]
    comps = cmp.compare_entries(base, cur, 0.25)
    status = {c.key: c.status for c in comps}
    assert status[("fresh", "flat", "1", "eager")] == cmp.NEW
    assert status[("a", "flat", "all", "eager")] == cmp.NEW  # another thread setting is another key
    assert status[("old", "flat", "1", "eager")] == cmp.NOT_MEASURED
    assert cmp.exit_code(comps) == 0


def test_keys_separate_shape_threads_and_mode(entry):
    base = [entry("a", 1.0, shape="conv"), entry("a", 1.0, mode="compile")]
    cur = [entry("a", 2.0, shape="flat"), entry("a", 1.0, mode="compile")]
    status = {c.key: c.status for c in cmp.compare_entries(base, cur, 0.25)}
    assert status[("a", "flat", "1", "eager")] == cmp.NEW
    assert status[("a", "flat", "1", "compile")] == cmp.OK


def test_peers_never_gate(entry):
    comps = cmp.compare_entries([entry("peer:x", 1.0, kind="peer")], [entry("peer:x", 9.0, kind="peer")], 0.25)
    assert comps == []


def test_a_ratio_that_can_no_longer_be_measured_is_an_error(entry):
    comps = cmp.compare_entries([entry("a", 1.0), entry("b", None)], [entry("a", None), entry("b", 1.0)], 0.25)
    by = _by_pair(comps)
    assert by["a"].status == cmp.ERROR and by["a"].failed
    assert by["b"].status == cmp.NEW  # the baseline had nothing to compare against


def test_bad_threshold_is_rejected(entry):
    with pytest.raises(ValueError, match="threshold"):
        cmp.compare_entries([], [], 0)


def test_retry_that_comes_back_good_passes(entry):
    asked = []

    def remeasure(keys, attempt):
        asked.append((keys, attempt))
        return [entry("a", 1.05)]

    comps = cmp.compare_with_retries([entry("a", 1.0), entry("b", 1.0)], [entry("a", 1.5), entry("b", 1.0)],
                                     remeasure, threshold=0.25, retries=2)
    a = _by_pair(comps)["a"]
    assert a.status == cmp.OK and a.attempts == [1.5, 1.05]
    assert asked == [([("a", "flat", "1", "eager")], 1)]  # only the suspect, and only once
    assert cmp.exit_code(comps) == 0
    assert "after retry" in cmp.format_comparison(comps, 0.25)


def test_retry_that_stays_bad_fails_after_all_attempts(entry):
    attempts = []

    def remeasure(keys, attempt):
        attempts.append(attempt)
        return [entry("a", 1.4)]

    comps = cmp.compare_with_retries([entry("a", 1.0)], [entry("a", 1.5)], remeasure, threshold=0.25, retries=2)
    assert attempts == [1, 2]
    assert comps[0].status == cmp.WORSE and comps[0].attempts == [1.5, 1.4, 1.4]
    assert cmp.exit_code(comps) == 1
    text = cmp.format_comparison(comps, 0.25)
    assert "WORSE" in text and "FAIL" in text


def test_no_retries_means_no_remeasurement(entry):
    def remeasure(keys, attempt):
        raise AssertionError("must not be called")

    comps = cmp.compare_with_retries([entry("a", 1.0)], [entry("a", 1.5)], remeasure, threshold=0.25, retries=0)
    assert cmp.exit_code(comps) == 1


def test_to_json_is_plain_data(entry):
    (c,) = cmp.compare_entries([entry("a", 1.0)], [entry("a", 1.1)], 0.25)
    assert c.to_json() == {"pair": "a", "shape": "flat", "threads": "1", "mode": "eager", "baseline": 1.0,
                           "attempts": [1.1], "change": pytest.approx(0.1), "status": "ok",
                           "contended": False, "baseline_contended": False}


def test_worse_under_contention_is_reported_but_does_not_fail(entry):
    def remeasure(keys, attempt):
        return [entry("a", 2.0, threads="all", contended=True)]

    comps = cmp.compare_with_retries([entry("a", 1.0, threads="all"), entry("b", 1.0, threads="all", contended=True)],
                                     [entry("a", 2.0, threads="all", contended=True), entry("b", 2.0, threads="all")],
                                     remeasure, threshold=0.25, retries=1)
    by = _by_pair(comps)
    assert by["a"].status == cmp.CONTENDED and by["a"].contended  # current side contended
    assert by["b"].status == cmp.CONTENDED and by["b"].baseline_contended  # baseline side contended
    assert cmp.exit_code(comps) == 0
    assert "contention" in cmp.format_comparison(comps, 0.25)


def test_a_clean_remeasurement_that_stays_worse_still_fails(entry):
    def remeasure(keys, attempt):
        return [entry("a", 2.0, threads="all", contended=False)]

    comps = cmp.compare_with_retries([entry("a", 1.0, threads="all")], [entry("a", 2.0, threads="all", contended=True)],
                                     remeasure, threshold=0.25, retries=1)
    assert comps[0].status == cmp.WORSE and cmp.exit_code(comps) == 1


def test_stat_selects_the_compared_field(entry):
    base, cur = [entry("a", 1.0)], [entry("a", 1.0, min_ratio=2.0)]
    assert cmp.compare_entries(base, cur, 0.25)[0].status == cmp.WORSE  # default: min-based
    assert cmp.compare_entries(base, cur, 0.25, stat="median")[0].status == cmp.OK
    with pytest.raises(ValueError, match="statistic"):
        cmp.compare_entries(base, cur, 0.25, stat="mean")

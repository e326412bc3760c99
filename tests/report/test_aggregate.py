"""Aggregation: records on disk -> per-configuration statistics with t confidence intervals."""
import math

import pytest

from harness.report.aggregate import load_runs, mean_ci, summarize_runs, to_markdown
from harness.report.cli import main
from harness.store.record import SCHEMA_VERSION, write_record


def record(backward, seed, acc, step_ms, status="ok", lr=0.01):
    return {
        "schema_version": SCHEMA_VERSION, "status": status, "run_id": f"{backward}{seed}",
        "config": {"seed": seed, "dataset": {"name": "mnist1d"}, "model": {"name": "mlp"},
                   "forward": {"name": "relu"}, "backward": {"name": backward}, "optimizer": {"name": "adam", "lr": lr}},
        "pair": {"forward": "relu", "backward": backward, "label": f"relu/{backward}"},
        "metrics": {"final_test_acc": acc, "best_test_acc": acc, "params": 1, "steps_done": 1,
                    "speed": {"step_ms": {"median": step_ms}}, "memory": {"saved_bytes_per_step": {"activations": 8}}},
        "curves": {}, "diagnostics": {}, "environment": {}, "started_at": "a", "ended_at": "b",
        "error": {"message": "boom"} if status == "failed" else None,
    }


@pytest.fixture
def sweep(tmp_path):
    for i, (b, acc, ms) in enumerate([("exact", 0.60, 2.0), ("exact", 0.64, 2.0), ("exact", 0.68, 2.0),
                                      ("rectangular", 0.30, 1.0), ("rectangular", 0.40, 1.0)]):
        write_record(record(b, i, acc, ms), tmp_path / str(i))
    write_record(record("rectangular", 9, None, None, status="failed"), tmp_path / "9")
    write_record(record("exact", 20, 0.10, 2.0, lr=1.0), tmp_path / "20")  # another configuration
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "record.json").write_text("{}")
    return tmp_path


def test_mean_ci_matches_the_t_interval():
    mean, half, n = mean_ci(__import__("pandas").Series([0.60, 0.64, 0.68]))
    # t_{0.975, 2} = 4.302652729911275, s = 0.04, n = 3
    assert n == 3 and mean == pytest.approx(0.64) and half == pytest.approx(4.302652729911275 * 0.04 / math.sqrt(3))
    assert math.isnan(mean_ci(__import__("pandas").Series([0.5]))[1])


def test_summary_groups_seeds_and_counts_failures(sweep):
    runs, problems = load_runs(sweep)
    assert len(runs) == 7 and len(problems) == 1 and "missing key" in problems[0]
    table = summarize_runs(runs)
    assert sorted(table.optimizer) == ["adam(lr=0.01)", "adam(lr=0.01)", "adam(lr=1.0)"]  # lr=1.0 is not a 4th seed
    table = table[table.optimizer == "adam(lr=0.01)"].set_index("backward")
    assert table.loc["exact", "ok"] == 3 and table.loc["rectangular", "failed"] == 1
    assert table.loc["rectangular", "test_acc"] == pytest.approx(0.35)
    assert table.loc["rectangular", "step_vs_exact"] == pytest.approx(0.5)
    md = to_markdown(summarize_runs(runs))
    exact_id = table.loc["exact", "config_id"]
    assert f"| mnist1d | mlp | relu | exact | adam(lr=0.01) | {exact_id} | 3/3 | 64.0 ± 9.9 |" in md


def test_cli_writes_tables_and_rejects_missing_folders(sweep, tmp_path, capsys):
    assert main([str(sweep)]) == 0
    assert {p.name for p in (sweep / "report").iterdir()} == {"runs.parquet", "summary.csv", "summary.md"}
    assert main([str(tmp_path / "nope")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1

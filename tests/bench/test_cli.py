"""The command line with an injected measurer: exit codes, re-measurement, JSON output."""
import io
import json

import pytest

from harness.bench import cli
from harness.bench.results import load_document, make_document, validate_document, write_document

PAIRS = ["relu/rectangular", "relu/b_silu"]


def _baseline(tmp_path, entry, ratios):
    doc = make_document([entry(p, r) for p, r in ratios.items()], {}, {"python": "x"}, kind="cpu-test")
    path = tmp_path / "baseline.json"
    write_document(doc, path)
    return path


def _run(argv, measurer):
    out = io.StringIO()
    code = cli.main(argv, measurer=measurer, out=out)
    return code, out.getvalue()


def _argv(baseline, *extra):
    return ["--pairs", *PAIRS, "--threads", "1", "--shapes", "flat", "--compare", str(baseline), "--no-peers", *extra]


def test_bad_once_then_good_passes(tmp_path, entry, fake_measurer):
    base = _baseline(tmp_path, entry, {"relu/rectangular": 1.0, "relu/b_silu": 2.0})
    m = fake_measurer(lambda pair, call: 1.5 if (pair == "relu/rectangular" and call == 0) else {"relu/rectangular": 1.0, "relu/b_silu": 2.0}[pair])
    code, text = _run(_argv(base), m)
    assert code == 0, text
    assert len(m.configs) == 2
    retry = m.configs[1]
    assert retry.pairs == ("relu/rectangular",)  # only the suspect is re-measured...
    assert retry.repeats > m.configs[0].repeats  # ...with more repeats
    assert "after retry" in text


def test_bad_every_time_fails_with_exit_1(tmp_path, entry, fake_measurer):
    base = _baseline(tmp_path, entry, {"relu/rectangular": 1.0, "relu/b_silu": 2.0})
    m = fake_measurer(lambda pair, call: 1.5 if pair == "relu/rectangular" else 2.0)
    code, text = _run(_argv(base, "--retries", "2"), m)
    assert code == 1
    assert len(m.configs) == 3  # the run and two retries
    assert "FAIL" in text and "WORSE" in text


def test_threshold_flag_is_honoured(tmp_path, entry, fake_measurer):
    base = _baseline(tmp_path, entry, {"relu/rectangular": 1.0, "relu/b_silu": 2.0})
    m = fake_measurer(lambda pair, call: 1.3 if pair == "relu/rectangular" else 2.0)
    assert _run(_argv(base, "--threshold", "0.5"), m)[0] == 0
    assert _run(_argv(base, "--threshold", "0.25", "--retries", "0"), fake_measurer(m.script))[0] == 1


def test_pairs_missing_from_the_baseline_are_new_not_failures(tmp_path, entry, fake_measurer):
    base = _baseline(tmp_path, entry, {"relu/rectangular": 1.0})
    code, text = _run(_argv(base), fake_measurer(lambda pair, call: 1.0 if pair == "relu/rectangular" else 50.0))
    assert code == 0
    assert "new" in text


def test_json_output_holds_the_comparison(tmp_path, entry, fake_measurer):
    base = _baseline(tmp_path, entry, {"relu/rectangular": 1.0, "relu/b_silu": 2.0})
    out = tmp_path / "run.json"
    code, _ = _run(_argv(base, "--json", str(out)), fake_measurer(lambda pair, call: 1.0 if pair == "relu/rectangular" else 2.0))
    assert code == 0
    doc = load_document(out)
    assert doc["comparison"]["threshold"] == 0.25
    assert {r["status"] for r in doc["comparison"]["results"]} == {"ok"}


@pytest.mark.parametrize("argv, message", [
    (["--pairs", "relu-rectangular"], "forward/rule"),
    (["--pairs", "relu/rectangulr"], "Did you mean"),
    (["--repeats", "5"], "repeats"),
    (["--threads", "zero"], "thread"),
    (["--compare", "/nonexistent/base.json"], "does not exist"),
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys, fake_measurer):
    m = fake_measurer(lambda pair, call: 1.0)
    assert cli.main(argv, measurer=m, out=io.StringIO()) == 2
    assert message in capsys.readouterr().err
    assert m.configs == []  # nothing measured


def test_quick_flag_selects_the_quick_preset(fake_measurer):
    m = fake_measurer(lambda pair, call: 1.0)
    assert _run(["--quick", "--pairs", "relu/exact", "--threads", "1"], m)[0] == 0
    (config,) = m.configs
    assert config.quick and list(config.shapes) == ["flat"] and config.repeats >= 20


def test_real_measurer_end_to_end_on_a_tiny_shape(tmp_path):
    out = tmp_path / "tiny.json"
    code, text = _run(["--pairs", "relu/rectangular", "relu/constant", "--shapes", "tiny=8x64", "--threads", "1",
                       "--repeats", "20", "--warmup", "0", "--no-peers", "--json", str(out)], None)
    assert code == 0
    doc = validate_document(json.loads(out.read_text()))
    assert [e["pair"] for e in doc["entries"]] == ["relu/rectangular", "relu/constant"]
    assert doc["settings"]["repeats"] == 20
    assert "relu/rectangular" in text
    # a run compared with itself passes (ratios identical)
    assert _run(["--pairs", "relu/rectangular", "--shapes", "tiny=8x64", "--threads", "1", "--repeats", "20",
                 "--no-peers", "--compare", str(out), "--threshold", "1000"], None)[0] == 0


def test_runs_keep_the_median_run_per_entry(fake_measurer, tmp_path):
    ratios = {0: 3.0, 1: 1.0, 2: 2.0}
    out = tmp_path / "base.json"
    m = fake_measurer(lambda pair, call: ratios[call])
    assert _run(["--pairs", "relu/exact", "--threads", "1", "--shapes", "flat", "--runs", "3", "--json", str(out)], m)[0] == 0
    assert len(m.configs) == 3
    (e,) = load_document(out)["entries"]
    assert e["ratios"]["vs_reference"] == 2.0
    assert e["runs"] == {"stat": "min", "ratios": [3.0, 1.0, 2.0], "picked": 2}


def test_median_run_prefers_uncontended_runs(entry):
    from harness.bench.results import median_run_entries

    runs = [[entry("a", 1.0, threads="all", contended=True)], [entry("a", 5.0, threads="all")],
            [entry("a", 0.9, threads="all", contended=True)], [entry("a", 4.0, threads="all"), entry("b", 2.0)]]
    a, b = median_run_entries(runs)
    assert a["ratios"]["vs_reference"] == 4.0 and a["runs"]["picked"] == 3  # lower median of the clean runs
    assert b["runs"] == {"stat": "min", "ratios": [None, None, None, 2.0], "picked": 3}


def test_compare_stat_flag_selects_the_ratio(tmp_path, entry, fake_measurer):
    base = _baseline(tmp_path, entry, {"relu/rectangular": 1.0, "relu/b_silu": 2.0})

    class MedianWorse:
        """Median ratio 50% worse, min ratio unchanged."""
        configs = []

        def __call__(self, config, log=None):
            self.configs.append(config)
            return [entry(p, {"relu/rectangular": 1.5, "relu/b_silu": 2.0}[p], shape=s, threads=t.label,
                          min_ratio={"relu/rectangular": 1.0, "relu/b_silu": 2.0}[p])
                    for s in config.shapes for t in config.thread_settings() for p in config.pairs]

    assert _run(_argv(base), MedianWorse())[0] == 0  # default: min
    assert _run(_argv(base, "--compare-stat", "median"), MedianWorse())[0] == 1

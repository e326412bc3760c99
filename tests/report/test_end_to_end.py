"""From real runs to the HTML page, and a 10,000-record report (both slow: `make test-slow`)."""
import json
import time

import pytest

from harness.report.build import build_report
from harness.report.cli import main
from harness.store.keys import code_hash
from harness.sweep.run import execute
from report.synthetic import make_record
from support.configs import tiny_config

pytestmark = pytest.mark.slow


def test_tiny_real_sweep_to_html(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for forward in ("relu", "step"):
        for backward in ("exact", "rectangular"):
            for seed in (0, 1):
                execute(tiny_config(f"forward={forward}", f"backward={backward}", f"seed={seed}", "trainer.target_acc=0.2"),
                        sweep / f"{forward}-{backward}-{seed}")
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "HTML report:" in out and "| relu | rectangular |" in out
    report = sweep / "report"
    page = (report / "report.html").read_text()
    assert page.count("<img") >= 6 and "data:image/png;base64," in page
    assert len(list((report / "figures").glob("*.pdf"))) >= 6
    runs = __import__("pandas").read_parquet(report / "runs.parquet")
    relu = runs[runs.forward_name == "relu"]
    # Real records carry the numbers the report headlines.
    assert relu.grad_cos_pairs.notna().all() and relu.grad_cos_min_layer.notna().all()
    assert (relu.model_saved_bytes > 0).all() and (relu.memory_vs_native > 1).all()  # 1-bit masks on top of native ReLU
    assert runs[runs.forward_name == "step"].native_saved_bytes.isna().all()  # no native step op
    reached = runs[runs.target_step.notna()]
    assert len(reached) and (reached.target_s > 0).all() and (reached.curve_train_time_s.map(len) == reached.curve_step.map(len)).all()


def test_ten_thousand_records(tmp_path):
    root = tmp_path / "big"
    current = code_hash()
    forwards, rules = ["relu", "step", "tanh", "gelu"], ["exact", "rectangular", "fast_sigmoid", "b_silu", "full_jam"]
    n = 0
    for i in range(10_000):
        f, b = forwards[i % 4], rules[(i // 4) % 5]
        lr = [0.001, 0.003, 0.01, 0.03, 0.1][(i // 20) % 5]
        seed = i // 100
        record = make_record(f, b, seed, 0.3 + 0.4 * ((i * 7919) % 1000) / 1000, lr=lr, code_hash=current,
                             steps=tuple(range(100, 2100, 100)))
        folder = root / f"{i // 1000:02d}" / f"{i:05d}"
        folder.mkdir(parents=True)
        (folder / "record.json").write_text(json.dumps(record))
        n += 1
    start = time.perf_counter()
    report = build_report(root, tmp_path / "out")
    elapsed = time.perf_counter() - start
    print(f"\n10,000 records: {report.seconds} (total {elapsed:.1f} s)")  # the number in harness/report/README.md
    assert len(report.runs) == n == 10_000 and len(report.summary) == 100
    assert (report.summary.ok == 100).all() and set(report.summary.final_test_acc_ci) == {"bootstrap"}
    assert len(report.figures) >= 6 and report.files["html"].stat().st_size > 0

"""Slow: real multirun sweeps through the parallel launcher, and wandb mirroring offline."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.store.record import find_records, load_record
from harness.sweep.run import execute
from support.configs import CONF, tiny_config

REPO = Path(CONF).parents[1]


@pytest.mark.slow
def test_parallel_launcher_sweep_writes_one_record_per_combination(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.sweep", "-m", "hydra/launcher=parallel", "backward=exact,rectangular",
         "seed=0,1", "trainer=quick", "trainer.steps=50", "trainer.eval_every=25", f"hydra.sweep.dir={tmp_path}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    records = [load_record(p) for p in find_records(tmp_path)]
    combos = sorted((r["config"]["backward"]["name"], r["config"]["seed"]) for r in records)
    assert combos == [("exact", 0), ("exact", 1), ("rectangular", 0), ("rectangular", 1)]
    assert all(r["status"] == "ok" and r["environment"]["torch_threads"] == 1 for r in records)
    # Reused joblib workers still reproduce the in-process result for the same seed.
    again = execute(tiny_config("backward=rectangular", "seed=1", "trainer.steps=50", "trainer.eval_every=25"), tmp_path / "again")
    match = next(r for r in records if r["config"]["backward"]["name"] == "rectangular" and r["config"]["seed"] == 1)
    assert again["curves"]["test_acc"] == match["curves"]["test_acc"]


@pytest.mark.slow
def test_wandb_logger_mirrors_config_curves_summary_and_record_offline(tmp_path, monkeypatch):
    import json

    from support.wandb_offline import finished_records

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = tiny_config("logger=wandb", "logger.mode=offline", f"logger.dir={tmp_path}", "logger.group=quick-test",
                      "backward=rectangular")
    record = execute(cfg, store=tmp_path / "store")
    assert record["status"] == "ok"
    run_files = list(tmp_path.rglob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1, "wandb wrote no offline run"
    sent = finished_records(run_files[0])
    kinds = [r.WhichOneof("record_type") for r in sent]
    assert "run" in kinds and "exit" in kinds, kinds
    run = next(r.run for r in sent if r.WhichOneof("record_type") == "run")
    assert run.run_group == "quick-test" and run.job_type == "relu/rectangular"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["backward"] == {"name": "rectangular", "a": -0.5, "b": 0.5} and config["seed"] == 0
    summary = {}
    for r in sent:
        if r.WhichOneof("record_type") == "summary":
            summary.update({item.key: json.loads(item.value_json) for item in r.summary.update})
    assert summary["status"] == "ok" and summary["run_key"] == record["identity"]["run_key"]
    assert summary["final_test_acc"] == pytest.approx(record["metrics"]["final_test_acc"])
    history = [r for r in sent if r.WhichOneof("record_type") == "history"]
    assert len(history) == len(record["curves"]["step"])  # one row per evaluation
    artifact = next(r.artifact for r in sent if r.WhichOneof("record_type") == "artifact")
    assert artifact.name == f"record-{record['identity']['run_key']}" and artifact.type == "run-record"


def test_a_logger_that_fails_never_costs_the_run_or_its_record(tmp_path, caplog):
    class Broken:
        def start(self, cfg, pair):
            raise RuntimeError("no wandb login")

        def log(self, row):
            raise AssertionError("never called after a failed start")

        def finish(self, record):
            raise AssertionError("never called after a failed start")

    with caplog.at_level("WARNING", logger="harness"):
        record = execute(tiny_config("trainer.steps=20", "trainer.eval_every=10"), store=tmp_path, logger=Broken())
    assert record["status"] == "ok" and "logger failed to start" in caplog.text
    assert caplog.text.count("logger failed") == 1
    assert find_records(tmp_path)

"""Slow: sweeps killed with SIGKILL or SIGTERM at different moments, then run again.

Whatever happens to the process, the same command afterwards ends with every run recorded
exactly once, no half-written file and no duplicate for one key.
"""
import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.store.record import find_records, load_record

REPO = Path(__file__).resolve().parents[2]
GRID = ["backward=exact,rectangular,b_silu", "seed=0,1", "trainer.steps=300", "trainer.eval_every=100", "progress=false"]
pytestmark = pytest.mark.slow


def start(*args, sweep):
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen([sys.executable, "-m", "harness.sweep", "-m", *args, f"hydra.sweep.dir={sweep}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_records(sweep, n, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if len(find_records(sweep)) >= n:
            return
        time.sleep(0.2)


def kill_tree(proc, sig=signal.SIGKILL):
    os.killpg(proc.pid, sig)
    proc.communicate(timeout=60)


def check_exactly_once(sweep, expected):
    records = [load_record(p) for p in find_records(sweep)]  # raises on a corrupt or half-written file
    per_key = collections.Counter((r["config"]["backward"]["name"], r["config"]["seed"]) for r in records)
    assert sorted(per_key) == sorted(expected) and set(per_key.values()) == {1}, per_key
    assert all(r["status"] == "ok" for r in records)
    assert not list(Path(sweep).rglob(".record.*.tmp"))
    return records


EXPECTED = [(b, s) for b in ("exact", "rectangular", "b_silu") for s in (0, 1)]


@pytest.mark.parametrize("launcher", ["basic", "parallel"])
def test_kill_9_at_three_moments_then_rerun_records_every_run_once(tmp_path, launcher):
    extra = [] if launcher == "basic" else ["hydra/launcher=parallel"]
    sweep = tmp_path / "sweep"
    finished_before = []
    for moment in (0, 2, 4):  # kill during the first run, after two records, after four
        proc = start(*GRID, *extra, sweep=sweep)
        if moment == 0:
            wait_for_records(sweep, 0, proc)
            time.sleep(8.0)  # inside start-up or the first runs
        else:
            wait_for_records(sweep, moment, proc)
        kill_tree(proc)
        finished_before.append(len(find_records(sweep)))
    proc = start(*GRID, *extra, sweep=sweep)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out
    records = check_exactly_once(sweep, EXPECTED)
    ids_before = {r["run_id"] for r in records}
    proc = start(*GRID, *extra, sweep=sweep)  # everything is done: nothing trains again
    out, _ = proc.communicate(timeout=200)
    assert proc.returncode == 0 and "6 cached, 0 to run" in out, out
    assert {r["run_id"] for r in check_exactly_once(sweep, EXPECTED)} == ids_before


def test_sigterm_records_the_run_as_interrupted_and_exits_nonzero(tmp_path):
    sweep = tmp_path / "sweep"
    proc = start("backward=exact,rectangular", "seed=0", "trainer.steps=200000", "trainer.eval_every=1000", "progress=false", sweep=sweep)
    out = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the first run is training
        if any(p.name == "label" for p in sweep.rglob("label")):
            break
        time.sleep(0.2)
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    records = [load_record(p) for p in find_records(sweep)]
    assert [(r["status"], r["interrupted_by"]) for r in records] == [("interrupted", "SIGTERM")]
    assert records[0]["metrics"]["steps_done"] > 0


def test_submitit_local_sweep_killed_once_then_resumed(tmp_path):
    pytest.importorskip("submitit")
    sweep = tmp_path / "sweep"
    grid = ["backward=exact,rectangular", "seed=0,1", "trainer.steps=200", "trainer.eval_every=100", "progress=false",
            "hydra/launcher=submitit_local_preset"]
    proc = start(*grid, sweep=sweep)
    wait_for_records(sweep, 1, proc, timeout=300)
    kill_tree(proc)
    proc = start(*grid, sweep=sweep)
    out, _ = proc.communicate(timeout=500)
    assert proc.returncode == 0, out
    check_exactly_once(sweep, [(b, s) for b in ("exact", "rectangular") for s in (0, 1)])


def test_two_sweeps_sharing_a_store_train_each_run_once(tmp_path):
    store = tmp_path / "shared"
    grid = ["backward=exact,rectangular", "seed=0,1", "trainer.steps=300", "trainer.eval_every=100", "progress=false",
            f"store.dir={store}"]
    first, second = start(*grid, sweep=tmp_path / "a"), start(*grid, sweep=tmp_path / "b")
    out_a, _ = first.communicate(timeout=400)
    out_b, _ = second.communicate(timeout=400)
    assert first.returncode == 0 and second.returncode == 0, out_a + out_b
    check_exactly_once(store, [(b, s) for b in ("exact", "rectangular") for s in (0, 1)])
    trained = (out_a + out_b).count("] - [ok]")  # one log line per run that trained
    skipped = (out_a + out_b).count("cached (skipped)") + 4 * (out_a + out_b).count("4 cached, 0 to run")
    assert trained == 4 and trained + skipped == 8, out_a + out_b

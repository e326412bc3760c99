"""Where records live, the cache rules, and the per-run lock across processes."""
import multiprocessing as mp
import os
import stat
import time

import pytest

from harness.errors import ConfigError
from harness.store import layout
from harness.store.keys import code_hash
from harness.store.record import SCHEMA_VERSION, find_records, load_record, write_record


def make_record(status="ok", code=None, run_id="r1"):
    return {"schema_version": SCHEMA_VERSION, "status": status, "run_id": run_id, "config": {"seed": 0},
            "identity": {"run_key": "ab12", "code_hash": code or code_hash()},
            "metrics": {"final_test_acc": 0.5, "best_test_acc": 0.5, "speed": {}, "memory": {}, "params": 1, "steps_done": 1},
            "curves": {}, "diagnostics": {}, "environment": {}, "started_at": "t", "ended_at": "t",
            "error": {"type": "X", "message": "m"} if status == "failed" else None}


def test_record_place_follows_the_key(tmp_path):
    assert layout.record_path(tmp_path, "ab12cd") == tmp_path / "ab" / "ab12cd" / "record.json"


@pytest.mark.parametrize("status,cached", [("ok", True), ("diverged", True), ("failed", False), ("interrupted", False)])
def test_only_results_are_cached(tmp_path, status, cached):
    write_record(make_record(status), layout.key_dir(tmp_path, "ab12"))
    hit = layout.lookup(tmp_path, "ab12")
    assert (hit is not None) == cached
    assert layout.should_skip(hit, "none") == cached


def test_stale_records_rerun_only_when_asked(tmp_path):
    write_record(make_record(code="0" * 16), layout.key_dir(tmp_path, "ab12"))
    hit = layout.lookup(tmp_path, "ab12")
    assert hit.stale
    assert layout.should_skip(hit, "none") and not layout.should_skip(hit, "stale") and not layout.should_skip(hit, "all")
    write_record(make_record(), layout.key_dir(tmp_path, "ab12"))
    fresh = layout.lookup(tmp_path, "ab12")
    assert not fresh.stale and layout.should_skip(fresh, "stale") and not layout.should_skip(fresh, "all")
    with pytest.raises(ConfigError, match="rerun must be one of none, stale, all"):
        layout.should_skip(fresh, "yes")


def test_an_unreadable_record_counts_as_missing(tmp_path):
    folder = layout.key_dir(tmp_path, "ab12")
    folder.mkdir(parents=True)
    (folder / "record.json").write_text('{"status": "ok", "trunc')
    assert layout.lookup(tmp_path, "ab12") is None


def test_records_are_group_readable(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_record(make_record(), tmp_path)
    finally:
        os.umask(old)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH


def test_claim_removes_a_killed_writers_temporary_file(tmp_path):
    folder = layout.key_dir(tmp_path, "ab12")
    folder.mkdir(parents=True)
    (folder / ".record.x.tmp").write_text("half")
    with layout.claim(tmp_path, "ab12", "label-1"):
        assert not list(folder.glob(".record.*.tmp"))
    assert (folder / "label").read_text() == "label-1\n"


def _hold(store, seconds, started):
    with layout.claim(store, "ab12"):
        started.set()
        time.sleep(seconds)


def start_holder(store, seconds):
    """Another process that holds run ab12's lock for `seconds` (returned once it holds it)."""
    ctx = mp.get_context("fork")
    started = ctx.Event()
    holder = ctx.Process(target=_hold, args=(store, seconds, started))
    holder.start()
    assert started.wait(30)
    return holder


def test_a_second_process_waits_for_the_lock(tmp_path):
    holder = start_holder(tmp_path, 1.0)
    t0 = time.monotonic()
    with layout.claim(tmp_path, "ab12"):
        waited = time.monotonic() - t0
    holder.join(30)
    assert waited > 0.5  # it blocked until the holder let go (not a speed assertion: a lower bound)


def test_a_killed_holder_releases_the_lock(tmp_path):
    holder = start_holder(tmp_path, 60.0)
    holder.kill()
    holder.join(30)
    with layout.claim(tmp_path, "ab12"):  # would block for a minute if kill -9 left the lock held
        pass


def _write_many(store, worker, n):
    for i in range(n):
        key = f"{worker:02d}{i:04d}"
        with layout.claim(store, key) as folder:
            write_record(make_record(run_id=f"{worker}-{i}"), folder)
        with layout.claim(store, "shared") as folder:  # every worker rewrites one shared key too
            write_record(make_record(run_id=f"{worker}-{i}"), folder)


def test_concurrent_writers_never_lose_or_corrupt_a_record(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(tmp_path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    paths = find_records(tmp_path)
    assert len(paths) == 4 * 25 + 1
    for p in paths:
        load_record(p)  # every file is complete, valid JSON
    assert not list(tmp_path.rglob(".record.*.tmp"))

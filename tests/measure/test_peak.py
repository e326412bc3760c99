"""Tests for harness.measure.peak: peak memory over a region, reset at start, method named."""
from __future__ import annotations

import pytest
import torch

from harness.measure import PeakMemory, peak


def test_peak_memory_sees_a_200mb_allocation():
    with PeakMemory("cpu") as pm:
        block = torch.ones(50_000_000, dtype=torch.float32)  # 200 MB, pages touched by the fill
        del block
    r = pm.result
    assert set(r) == {"peak_bytes", "baseline_bytes", "delta_bytes", "method"}
    assert r["method"] in ("linux VmHWM (peak RSS, reset at start)", "ru_maxrss (process lifetime peak)")
    assert r["delta_bytes"] == r["peak_bytes"] - r["baseline_bytes"]
    assert r["delta_bytes"] >= 190_000_000


def test_peak_is_reset_at_start():
    # A reused worker process (joblib): an earlier large peak must not leak into this region.
    big = torch.ones(75_000_000)  # 300 MB
    del big
    pm = PeakMemory("cpu").start()
    r = pm.stop()
    if not r["method"].startswith("linux"):
        pytest.skip("peak RSS cannot be reset on this system")
    assert r["delta_bytes"] < 100_000_000


def test_fallback_to_ru_maxrss(monkeypatch):
    monkeypatch.setattr(peak, "_reset_peak_rss", lambda: False)
    r = PeakMemory("cpu").start().stop()
    assert r["method"] == "ru_maxrss (process lifetime peak)"
    assert r["peak_bytes"] > 0 and r["baseline_bytes"] > 0


def test_cuda_path_uses_allocator_peak(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 1_000)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 5_000)
    r = PeakMemory("cuda").start().stop()
    assert r == {"peak_bytes": 5_000, "baseline_bytes": 1_000, "delta_bytes": 4_000, "method": "cuda.max_memory_allocated"}
    assert calls == ["sync", "reset", "sync"]


def test_stop_before_start_raises():
    with pytest.raises(RuntimeError):
        PeakMemory("cpu").stop()

"""Tests for harness.train.memory: exact saved-tensor bytes, attribution to pairs, peak memory.

Byte counts are computed by hand from the layer shapes (N=8 samples, 16 -> 32 -> 4, float32).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.activations import ActivationPair
from harness.train import memory
from harness.train.memory import PeakMemory, saved_bytes_by_activation, saved_tensor_bytes

N, IN, HID, OUT = 8, 16, 32, 4
F32 = 4
X_BYTES = N * IN * F32  # first Linear saves its input (for its weight gradient)
H_BYTES = N * HID * F32  # one hidden activation tensor (pre- or post-activation)
W2_BYTES = OUT * HID * F32  # second Linear saves its weight (for the gradient of its input)
BITS_BYTES = N * HID // 8  # one packed bit per hidden element


def _model(forward: str, backward: str) -> tuple[nn.Module, torch.Tensor]:
    model = nn.Sequential(nn.Linear(IN, HID), ActivationPair(forward, backward), nn.Linear(HID, OUT))
    return model, torch.randn(N, IN)


def test_output_rule_shares_storage_with_next_linear():
    # tanh' is written in y: the pair saves y, and the next Linear saves the same y.
    model, x = _model("tanh", "exact")
    r = saved_tensor_bytes(lambda: model(x).sum(), params=model.parameters())
    assert r["total"] == X_BYTES + H_BYTES + W2_BYTES
    assert r["total_with_duplicates"] == X_BYTES + 2 * H_BYTES + W2_BYTES
    assert r["count"] == 3 and r["count_with_duplicates"] == 4
    assert r["by_dtype"] == {"torch.float32": r["total"]}
    assert r["param_bytes"] == W2_BYTES


def test_bit_rule_saves_one_bit_per_element():
    model, x = _model("relu", "exact")
    r = saved_tensor_bytes(lambda: model(x).sum())
    assert r["by_dtype"] == {"torch.float32": X_BYTES + H_BYTES + W2_BYTES, "torch.uint8": BITS_BYTES}
    assert r["total"] == r["total_with_duplicates"] == X_BYTES + H_BYTES + W2_BYTES + BITS_BYTES
    assert r["param_bytes"] == 0  # no params passed


def test_attribution_to_activation_pairs():
    cases = {
        ("relu", "exact"): (BITS_BYTES, 0),  # 1 bit per element, nothing shared
        ("relu", "fast_sigmoid"): (H_BYTES, 0),  # saves its float input x
        ("relu", "constant"): (0, 0),  # saves nothing
        ("tanh", "exact"): (0, H_BYTES),  # saves y, which the next Linear holds anyway
    }
    for (fwd, bwd), (pair_bytes, shared) in cases.items():
        model, x = _model(fwd, bwd)
        r = saved_bytes_by_activation(model, lambda: model(x).sum())
        other = X_BYTES + H_BYTES + W2_BYTES
        assert r == {"activations": pair_bytes, "other": other, "total": pair_bytes + other, "shared": shared}, (fwd, bwd)
        assert r["total"] == saved_tensor_bytes(lambda: model(x).sum())["total"]
    # The hooks are removed afterwards.
    assert not model[1]._forward_pre_hooks and not model[1]._forward_hooks


def test_duplicate_saves_of_one_tensor_counted_once():
    a = torch.randn(100, requires_grad=True)
    r = saved_tensor_bytes(lambda: (a * a).sum())  # mul saves both operands: the same tensor
    assert r["count_with_duplicates"] == 2 and r["count"] == 1
    assert r["total"] == 400 and r["total_with_duplicates"] == 800


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
    monkeypatch.setattr(memory, "_reset_peak_rss", lambda: False)
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

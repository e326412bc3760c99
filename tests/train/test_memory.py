"""Tests for harness.train.memory: the record's saved-bytes entry and the whole model against native ops.

The counting itself is tested in tests/measure/test_saved.py; here the record's keys and the
numbers the trainer stores. Byte counts by hand (N=8 samples, 16 -> 32 -> 4, float32).
"""
from __future__ import annotations

import torch
from torch import nn

from harness.activations import ActivationPair
from harness.measure import count_saved
from harness.train.memory import non_parameter_saved_bytes, saved_bytes_by_activation

N, IN, HID, OUT = 8, 16, 32, 4
F32 = 4
OTHER = N * IN * F32 + N * HID * F32 + OUT * HID * F32  # input, hidden tensor, second weight
W2_BYTES = OUT * HID * F32


def _model(forward: str, backward: str) -> tuple[nn.Module, torch.Tensor]:
    model = nn.Sequential(nn.Linear(IN, HID), ActivationPair(forward, backward), nn.Linear(HID, OUT))
    return model, torch.randn(N, IN)


def test_record_entry_has_the_stored_keys_and_the_counter_numbers():
    # metrics.memory.saved_bytes_per_step.{activations, other, total} are read by harness/store/table.py.
    model, x = _model("relu", "fast_sigmoid")
    r = saved_bytes_by_activation(model, lambda: model(x).sum())
    assert r == {"activations": N * HID * F32, "other": OTHER, "total": N * HID * F32 + OTHER, "shared": 0}
    counted = count_saved(lambda: model(x).sum(), model)
    assert (r["activations"], r["other"], r["shared"]) == (counted.pair, counted.other, counted.shared)


def test_non_parameter_bytes_leave_out_saved_weights():
    model, x = _model("tanh", "exact")  # y is shared with the next Linear: held once
    assert non_parameter_saved_bytes(model, lambda: model(x).sum()) == OTHER - W2_BYTES

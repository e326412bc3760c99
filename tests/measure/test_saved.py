"""Tests for harness.measure.saved: exact saved-tensor bytes, deduplicated by storage, split by pair.

Byte counts are computed by hand from the layer shapes (N=8 samples, 16 -> 32 -> 4, float32).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.activations import ActivationPair
from harness.measure import SavedBytesCounter, count_saved, storage_key

N, IN, HID, OUT = 8, 16, 32, 4
F32 = 4
X_BYTES = N * IN * F32  # first Linear saves its input (for its weight gradient)
H_BYTES = N * HID * F32  # one hidden activation tensor (pre- or post-activation)
W2_BYTES = OUT * HID * F32  # second Linear saves its weight (for the gradient of its input)
BITS_BYTES = N * HID // 8  # one packed bit per hidden element
OTHER = X_BYTES + H_BYTES + W2_BYTES  # what the two Linears save, whatever the pair


def _model(forward: str, backward: str) -> tuple[nn.Module, torch.Tensor]:
    model = nn.Sequential(nn.Linear(IN, HID), ActivationPair(forward, backward), nn.Linear(HID, OUT))
    return model, torch.randn(N, IN)


def test_output_rule_shares_storage_with_next_linear():
    # tanh' is written in y: the pair saves y, and the next Linear saves the same y.
    model, x = _model("tanh", "exact")
    r = count_saved(lambda: model(x).sum(), model)
    assert r.total == OTHER
    assert r.total_with_duplicates == X_BYTES + 2 * H_BYTES + W2_BYTES
    assert r.count == 3 and r.count_with_duplicates == 4
    assert r.by_dtype == {"torch.float32": r.total}
    assert r.bytes_of(model.parameters()) == W2_BYTES  # the weight is saved as a transposed view
    assert (r.pair, r.other, r.shared) == (0, OTHER, H_BYTES)


def test_bit_rule_saves_one_bit_per_element():
    model, x = _model("relu", "exact")
    r = count_saved(lambda: model(x).sum())
    assert r.by_dtype == {"torch.float32": OTHER, "torch.uint8": BITS_BYTES}
    assert r.total == r.total_with_duplicates == OTHER + BITS_BYTES
    assert (r.pair, r.other) == (0, r.total)  # no model given: nothing is attributed to a pair


@pytest.mark.parametrize("forward, backward, pair_bytes, shared", [
    ("relu", "exact", BITS_BYTES, 0),  # 1 bit per element, nothing shared
    ("relu", "fast_sigmoid", H_BYTES, 0),  # saves its float input x
    ("relu", "constant", 0, 0),  # saves nothing
    ("tanh", "exact", 0, H_BYTES),  # saves y, which the next Linear holds anyway
])
def test_attribution_to_activation_pairs(forward, backward, pair_bytes, shared):
    model, x = _model(forward, backward)
    r = count_saved(lambda: model(x).sum(), model)
    assert (r.pair, r.other, r.total, r.shared) == (pair_bytes, OTHER, pair_bytes + OTHER, shared)
    assert r.total == count_saved(lambda: model(x).sum()).total  # attribution does not change the total
    assert not model[1]._forward_pre_hooks and not model[1]._forward_hooks  # hooks removed afterwards


def test_duplicate_saves_of_one_tensor_counted_once():
    a = torch.randn(100, requires_grad=True)
    r = count_saved(lambda: (a * a).sum())  # mul saves both operands: the same tensor
    assert r.count_with_duplicates == 2 and r.count == 1
    assert r.total == 400 and r.total_with_duplicates == 800
    assert r.bytes_of([a]) == 400 and r.bytes_of([torch.randn(100)]) == 0


def test_a_view_counts_its_whole_storage():
    # Saving a slice keeps the whole 1000-float storage alive: 4000 bytes, not 400.
    base = torch.randn(1000, requires_grad=True)
    r = count_saved(lambda: (base[:100] * base[:100].detach()).sum())
    assert r.total == 4000


def test_per_element_and_bad_count():
    x = torch.randn(16, 64, requires_grad=True)
    r = count_saved(lambda: ActivationPair("relu", "rectangular")(x))
    assert r.per_element(x.numel()) == 1 / 8
    with pytest.raises(ValueError, match="positive element count"):
        r.per_element(0)


def test_counter_releases_saved_tensors_and_hooks_when_the_block_raises():
    model, x = _model("relu", "fast_sigmoid")
    counter = SavedBytesCounter(model)
    with pytest.raises(RuntimeError, match="boom"):
        with counter:
            model(x)
            raise RuntimeError("boom")
    assert counter._entries == [] and counter._handles == []
    assert not model[1]._forward_pre_hooks and not model[1]._forward_hooks
    # saved_tensors_hooks were popped: a later forward outside the counter is not recorded
    model(x).sum().backward()
    assert counter._entries == []


def test_storage_key_is_the_storage_not_the_view():
    t = torch.randn(10, 10)
    assert storage_key(t) == storage_key(t.t()) == storage_key(t[2:5])
    assert storage_key(t) != storage_key(t.clone())

"""Binarized network: ±1 weights in the forward, clipped straight-through gradient."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

import harness.models.binary as binary_module
from harness.models import BinaryLinear, binarize, build_model, clip_binary_weights_


def test_binarize_is_exactly_plus_minus_one():
    w = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.0])
    assert binarize(w).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]


def test_ste_gradient_is_zero_where_weight_exceeds_one():
    w = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.3, 1.0, 1.0001, 2.0], requires_grad=True)
    upstream = torch.arange(1.0, 9.0)
    binarize(w).backward(upstream)
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0]


def test_forward_uses_binary_weights(monkeypatch):
    """Capture the weight F.linear receives inside BinaryLinear: it must be exactly ±1."""
    seen: list[torch.Tensor] = []

    def spy(x, weight, bias=None):
        seen.append(weight.detach().clone())
        return F.linear(x, weight, bias)

    layer = BinaryLinear(6, 4, bias=False)
    # Swap only binary.py's reference to torch.nn.functional, not the torch module itself.
    monkeypatch.setattr(binary_module, "F", SimpleNamespace(linear=spy))
    x = torch.randn(3, 6)
    out = layer(x)
    monkeypatch.undo()
    assert len(seen) == 1 and set(seen[0].unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(out, x @ torch.where(layer.weight >= 0, 1.0, -1.0).T)


def test_architecture_binary_hidden_layers_real_ends(counting_act):
    model = build_model("bnn", input_shape=(1, 28, 28), num_classes=10, act=counting_act,
                        depth=3, width=32)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [type(m) is BinaryLinear for m in linears] == [False, True, True, False]
    # Linear -> BatchNorm -> act, for every hidden layer.
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Linear", "BatchNorm1d", "TaggedAct"] + ["BinaryLinear", "BatchNorm1d",
                                                              "TaggedAct"] * 2
    assert len(counting_act.calls) == 3


def test_trains_with_sign_activations_and_clips(simple_act, train_step):
    """With a straight-through sign act the hidden activations are ±1 and gradients still flow."""
    sign_act = lambda forward=None: simple_act("sign")  # noqa: E731 - the config's sign forward
    model = build_model("bnn", input_shape=(20,), num_classes=3, act=sign_act, width=16)
    hidden = model.features(torch.randn(5, 20))
    assert set(hidden.unique().tolist()) <= {-1.0, 1.0}
    loss, change, _ = train_step(model, torch.randn(8, 20), torch.arange(8) % 3)
    assert change["features.0.weight"] > 0 and change["features.3.weight"] > 0
    with torch.no_grad():
        model.features[0].weight.add_(5)
        model.features[3].weight.mul_(10)
    real_before = model.features[0].weight.detach().clone()
    clip_binary_weights_(model)
    assert model.features[3].weight.abs().max() <= 1.0
    assert torch.equal(model.features[0].weight, real_before)  # real layers are not clipped

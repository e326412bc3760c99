"""MLP: reference size and the residual form."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models import build_model, count_parameters


def test_reference_mnist1d_mlp_size(simple_act):
    model = build_model("mlp", input_shape=(40,), num_classes=10, act=simple_act)
    widths = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [(40, 100), (100, 100), (100, 10)]
    assert count_parameters(model) == 4100 + 10100 + 1010 == 15210


def test_residual_skips_hidden_layers_only(simple_act):
    """residual=True: h1 = act(W1 x), h2 = h1 + act(W2 h1), the published MLPBase form."""
    model = build_model("mlp", input_shape=(6,), num_classes=3, act=simple_act, width=6,
                        residual=True)
    x = torch.randn(4, 6)
    l1, l2 = model.layers
    h1 = torch.relu(l1(x))  # no skip from the input even though it is also 6 wide
    expected = model.head(h1 + torch.relu(l2(h1)))
    torch.testing.assert_close(model(x), expected)


def test_depth_zero_is_a_linear_probe_and_bias_flag(simple_act, counting_act):
    model = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, act=counting_act, depth=0)
    assert counting_act.calls == [] and count_parameters(model) == 16 * 3 + 3
    no_bias = build_model("mlp", input_shape=(5,), num_classes=2, act=simple_act, width=4,
                          bias=False)
    assert count_parameters(no_bias) == 5 * 4 + 4 * 4 + 4 * 2


def test_xavier_init_is_glorot_uniform_with_zero_biases(simple_act):
    """init=xavier: every weight inside +-sqrt(6 / (fan_in + fan_out)) and spread like that uniform
    (std = bound / sqrt(3)), biases zero; the default keeps torch's init; a typo is a ParameterError."""
    import math

    import pytest

    from harness.errors import ParameterError

    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(64,), num_classes=10, act=simple_act, depth=3, width=256, init="xavier")
    for layer in [*model.layers, model.head]:
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound and torch.count_nonzero(layer.bias) == 0
        assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.05 * bound
    torch.manual_seed(0)
    default = build_model("mlp", input_shape=(64,), num_classes=10, act=simple_act, depth=3, width=256)
    fan_in = 256
    assert abs(default.layers[1].weight.std().item() - 1 / math.sqrt(3 * fan_in)) < 0.05 / math.sqrt(3 * fan_in)
    assert torch.count_nonzero(default.layers[1].bias) > 0
    with pytest.raises(ParameterError, match="init must be one of torch, xavier"):
        build_model("mlp", input_shape=(64,), num_classes=10, act=simple_act, init="glorot")

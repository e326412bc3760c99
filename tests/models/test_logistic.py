"""Logistic regression: one Linear on the flattened input, no activation slot."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models import MODELS, build_model, count_parameters


def test_logistic_is_one_linear_and_never_calls_act(counting_act):
    model = build_model("logistic", input_shape=(40,), num_classes=10, act=counting_act)
    assert counting_act.calls == []
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(40, 10)]
    assert count_parameters(model) == 40 * 10 + 10 == 410


def test_logistic_equals_its_affine_map_on_images(simple_act):
    model = build_model("logistic", input_shape=(1, 4, 4), num_classes=3, act=simple_act,
                        bias=False)
    x = torch.randn(5, 1, 4, 4)
    (linear,) = [m for m in model.modules() if isinstance(m, nn.Linear)]
    torch.testing.assert_close(model(x), x.reshape(5, 16) @ linear.weight.T)
    assert count_parameters(model) == 48 and MODELS["logistic"].params == {"bias": True}

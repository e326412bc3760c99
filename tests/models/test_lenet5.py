"""LeNet-5: sizes on MNIST and CIFAR, pooling choice."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from harness.models import build_model, count_parameters


@pytest.mark.parametrize(
    "shape, padding, params",
    [
        # conv1 C*6*25+6, conv2 6*16*25+16, fc 400*120+120, 120*84+84, 84*10+10
        ((1, 28, 28), 2, 156 + 2416 + 48120 + 10164 + 850),
        ((1, 32, 32), 0, 156 + 2416 + 48120 + 10164 + 850),
        ((3, 32, 32), 0, 456 + 2416 + 48120 + 10164 + 850),
    ],
)
def test_reaches_16x5x5_features(shape, padding, params, simple_act):
    model = build_model("lenet5", input_shape=shape, num_classes=10, act=simple_act)
    assert model.features[0].padding == (padding, padding)
    assert model.features(torch.zeros(1, *shape)).shape == (1, 16, 5, 5)
    assert count_parameters(model) == params


def test_reference_mnist_size(simple_act):
    model = build_model("lenet5", input_shape=(1, 28, 28), num_classes=10, act=simple_act)
    assert count_parameters(model) == 61706


@pytest.mark.parametrize("pool, cls", [("avg", nn.AvgPool2d), ("max", nn.MaxPool2d)])
def test_pooling_choice(pool, cls, simple_act):
    model = build_model("lenet5", input_shape=(1, 28, 28), num_classes=10, act=simple_act,
                        pool=pool)
    pools = [m for m in model.modules() if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]
    assert len(pools) == 2 and all(type(p) is cls for p in pools)

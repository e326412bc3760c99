"""The MNIST-1D CNN matches the published ConvBase."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models import build_model, count_parameters


def test_parameter_count_matches_published_convbase(simple_act):
    model = build_model("cnn1d", input_shape=(40,), num_classes=10, act=simple_act)
    # conv1 25*1*5+25, conv2/conv3 25*25*3+25 each, linear 25*5*10+10
    assert count_parameters(model) == 150 + 1900 + 1900 + 1260 == 5210


def test_layers_and_feature_lengths(simple_act):
    model = build_model("cnn1d", input_shape=(40,), num_classes=10, act=simple_act)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (5, 2, 1), (3, 2, 1), (3, 2, 1)
    ]
    assert model.features(torch.zeros(1, 1, 40)).shape == (1, 25, 5)  # 40 -> 19 -> 10 -> 5
    assert model.head.in_features == 125


def test_sequence_features_become_channels(simple_act):
    model = build_model("cnn1d", input_shape=(40, 3), num_classes=10, act=simple_act)
    assert model.features[0].in_channels == 3
    assert model(torch.randn(2, 40, 3)).shape == (2, 10)

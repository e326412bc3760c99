"""ResNet-18: stems, channel adaptation, activation swap (forward/step is in test_models)."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models import build_model, count_parameters


def test_cifar_stem(counting_act, find_foreign):
    model = build_model("resnet18", input_shape=(3, 32, 32), num_classes=10, act=counting_act)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert count_parameters(model) == 11_173_962
    # stem + 8 BasicBlocks; each block's single module is applied twice (torchvision's design)
    assert len(counting_act.calls) == 9
    assert find_foreign(model, counting_act.modules) == []
    assert all(block.relu in counting_act.modules
               for layer in (model.layer1, model.layer2, model.layer3, model.layer4)
               for block in layer)


def test_imagenet_stem_on_one_channel(simple_act):
    model = build_model("resnet18", input_shape=(1, 28, 28), num_classes=10, act=simple_act,
                        cifar_stem=False)
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_cifar_stem_on_one_channel(simple_act):
    model = build_model("resnet18", input_shape=(1, 28, 28), num_classes=10, act=simple_act)
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (3, 3)

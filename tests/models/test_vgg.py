"""VGG: layouts, batch norm switch, sizes (vgg16's forward/step is in test_models)."""

from __future__ import annotations

import pytest
import torch.nn as nn

from harness.models import build_model, count_parameters


@pytest.mark.parametrize(
    "variant, convs, params",
    [("small", 3, 24346), ("vgg11", 8, 9_228_362), ("vgg16", 13, 14_724_042)],
)
def test_variants(variant, convs, params, counting_act):
    model = build_model("vgg", input_shape=(3, 32, 32), num_classes=10, act=counting_act,
                        variant=variant)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs
    assert len(counting_act.calls) == convs  # one act per conv
    assert count_parameters(model) == params


def test_batch_norm_switch(simple_act):
    plain = build_model("vgg", input_shape=(3, 32, 32), num_classes=10, act=simple_act,
                        batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert all(c.bias is not None for c in plain.modules() if isinstance(c, nn.Conv2d))
    bn = build_model("vgg", input_shape=(3, 32, 32), num_classes=10, act=simple_act)
    # conv -> BN -> act order, conv bias dropped under BN
    kinds = [type(m).__name__ for m in bn.features][:3]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert all(c.bias is None for c in bn.modules() if isinstance(c, nn.Conv2d))


def test_one_channel_input(simple_act):
    model = build_model("vgg", input_shape=(1, 28, 28), num_classes=10, act=simple_act)
    assert model.features[0].in_channels == 1

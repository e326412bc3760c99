"""LeNet-5 (LeCun et al. 1998) for small images."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models._shapes import conv_out
from harness.models.registry import ActFn, ModelDataMismatch, register_model

_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _first_padding(height: int, width: int) -> int:
    """LeNet-5 was designed for 32x32 inputs; images below that (MNIST's 28x28) get the classic
    2-pixel zero border.  Not more: padding an 8x8 image to 32 would be mostly zeros.
    """
    return 2 if min(height, width) < 32 else 0


def _feature_hw(height: int, width: int) -> tuple[int, int]:
    """Spatial size after conv5 -> pool2 -> conv5 -> pool2."""
    pad = _first_padding(height, width)
    sizes = []
    for size in (height, width):
        size = conv_out(size, 5, 1, pad) // 2
        sizes.append(conv_out(size, 5) // 2)
    return sizes[0], sizes[1]


def _check(input_shape: tuple[int, ...], *, pool: str, **_: object) -> None:
    if pool not in _POOLS:
        raise ValueError(f"lenet5 pool must be one of {sorted(_POOLS)}, got {pool!r}")
    _, height, width = input_shape
    if min(_feature_hw(height, width)) < 1:
        raise ModelDataMismatch.for_model(
            "lenet5", "an image (C, H, W) of at least 12x12", input_shape
        )


class LeNet5(nn.Module):
    """conv6 -> act -> pool -> conv16 -> act -> pool -> fc120 -> act -> fc84 -> act -> fc."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, act: ActFn, pool: str):
        super().__init__()
        channels, height, width = input_shape
        pool_cls = _POOLS[pool]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=_first_padding(height, width)), act(), pool_cls(2),
            nn.Conv2d(6, 16, 5), act(), pool_cls(2),
        )
        fh, fw = _feature_hw(height, width)
        self.classifier = nn.Sequential(
            nn.Linear(16 * fh * fw, 120), act(),
            nn.Linear(120, 84), act(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model("lenet5", kinds=("image",), check=_check)
def build_lenet5(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn, pool: str = "avg"
) -> nn.Module:
    """LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
    recognition"): conv6 -> pool -> conv16 -> pool -> fc120 -> fc84 -> fc(num_classes).

    Four activation slots (after each conv and each hidden fc).  ``pool`` is "avg" (the paper's
    subsampling, without its trainable coefficients) or "max".  C3 is fully connected to S2 (the
    paper's sparse connection table is dropped, as in all modern re-implementations).  Inputs
    smaller than 32x32 get padding 2 in the first conv, so MNIST (28x28) and CIFAR (32x32) both
    reach the paper's 16x5x5 feature map; the minimum size is 12x12.  61,706 parameters on
    1x28x28 with 10 classes.
    """
    return LeNet5(input_shape, num_classes, act, pool)

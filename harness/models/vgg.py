"""VGG networks sized for 32x32 images (CIFAR), plus a tiny variant for CPU runs."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models.registry import ActFn, register_model

# Conv widths with "M" for 2x2 max-pooling.  vgg11/vgg16 are configurations A and D of the paper.
VARIANTS: dict[str, tuple[int | str, ...]] = {
    "small": (16, "M", 32, "M", 64, "M"),
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
}


def _check(input_shape: tuple[int, ...], *, variant: str, **_: object) -> None:
    # Config errors (not data mismatches): caught before building like the shape checks.
    if variant not in VARIANTS:
        raise ValueError(f"vgg variant must be one of {sorted(VARIANTS)}, got {variant!r}")


class VGG(nn.Module):
    """[conv3x3 -> (BN) -> act]* with max-pools, global average pool, linear classifier."""

    def __init__(
        self, in_channels: int, num_classes: int, act: ActFn, layout: tuple[int | str, ...],
        batch_norm: bool,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in layout:
            if item == "M":
                # ceil_mode keeps odd sizes alive: 28 -> 14 -> 7 -> 4 -> 2 -> 1 for 1x28x28.
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            # With BN the conv bias is redundant (BN's shift replaces it).
            layers.append(nn.Conv2d(c_in, int(item), 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(act())
            c_in = int(item)
        self.features = nn.Sequential(*layers)
        # Global pooling makes the head independent of the input size (32x32 -> already 1x1).
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("vgg", kinds=("image",), check=_check)
def build_vgg(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn,
    variant: str = "small", batch_norm: bool = True,
) -> nn.Module:
    """VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image
    recognition") in the CIFAR form of github.com/kuangliu/pytorch-cifar: 3x3 convs (+BN) with an
    activation slot after each, 2x2 max-pools, a single linear classifier on the 1x1 feature map
    (the ImageNet 4096-4096 head is dropped).

    ``variant``: "small" (16-M-32-M-64-M; 24,346 params on CIFAR-10, for CPU tests), "vgg11"
    (config A; 9,228,362) or "vgg16" (config D; 14,724,042), counts for CIFAR-10.  Works on any
    channel count and on 28x28.
    """
    return VGG(input_shape[0], num_classes, act, VARIANTS[variant], batch_norm)

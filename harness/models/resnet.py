"""torchvision's ResNet-18 with activation-pair modules and an optional CIFAR stem."""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import resnet18

from harness.activations import swap_activations
from harness.models.registry import ActFn, register_model


@register_model("resnet18", kinds=("image",))
def build_resnet18(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn, cifar_stem: bool = True
) -> nn.Module:
    """ResNet-18 (He et al. 2016, "Deep residual learning for image recognition"), built by
    ``torchvision.models.resnet18(num_classes=...)`` with random init.

    ``cifar_stem=True`` replaces the ImageNet stem (7x7 stride-2 conv + max-pool) with a 3x3
    stride-1 conv and no pool, the usual CIFAR adaptation (kuangliu/pytorch-cifar); 11,173,962
    parameters on 3x32x32 with 10 classes.  conv1 takes ``input_shape[0]`` channels (1 for MNIST).
    All 9 ReLU modules (stem + one per BasicBlock, each applied twice) become ``act()`` modules.
    """
    model = resnet18(weights=None, num_classes=num_classes)
    in_channels = input_shape[0]
    if cifar_stem:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if cifar_stem or in_channels != 3:
        # torchvision's own init for conv1, which the replacement would otherwise lose.
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    # torchvision's BasicBlock calls its single `self.relu` twice, so each block gets one pair
    # module applied at two places: identical for the harness's pairs, which hold no per-slot state.
    swap_activations(model, act, kinds=(nn.ReLU,))
    return model

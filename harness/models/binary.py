"""Weight binarization with the clipped straight-through estimator of Courbariaux et al. 2016."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BinarizeSTE(torch.autograd.Function):
    """Forward: sign(w) in {-1, +1} (0 maps to +1).  Backward: grad * 1[|w| <= 1].

    The "cancel" outside [-1, 1] stops latent weights that are already saturated from drifting
    further, since their sign can no longer be changed by a small step in that direction.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102 - autograd protocol
        ctx.save_for_backward(weight)
        # torch.sign(0) == 0, which would not be a binary weight; send 0 to +1 as the paper does.
        return torch.where(weight >= 0, torch.ones_like(weight), -torch.ones_like(weight))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (weight,) = ctx.saved_tensors
        return grad_output * (weight.abs() <= 1).to(grad_output.dtype)


def binarize(weight: torch.Tensor) -> torch.Tensor:
    """sign(weight) in {-1, +1} with the clipped straight-through gradient."""
    return BinarizeSTE.apply(weight)


class BinaryLinear(nn.Linear):
    """nn.Linear whose forward uses ``binarize(weight)``; the real latent weight is what trains."""

    def binary_weight(self) -> torch.Tensor:
        """The ±1 weight matrix used in the forward pass."""
        return binarize(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.binary_weight(), self.bias)


@torch.no_grad()
def clip_binary_weights_(model: nn.Module) -> None:
    """Clip every BinaryLinear latent weight to [-1, 1] in place.

    The paper does this after each optimizer step; call it from the training loop for BNNs
    (without it the STE cancel freezes any weight that steps beyond ±1).
    """
    for module in model.modules():
        if isinstance(module, BinaryLinear):
            module.weight.clamp_(-1.0, 1.0)

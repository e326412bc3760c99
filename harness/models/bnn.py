"""Binarized MLP (Courbariaux, Hubara, Soudry, El-Yaniv & Bengio 2016)."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models._shapes import flat_size
from harness.models.binary import BinaryLinear, clip_binary_weights_
from harness.models.registry import ActFn, register_model


class BNN(nn.Module):
    """real Linear -> BN -> act -> [BinaryLinear -> BN -> act] x (depth-1) -> real Linear."""

    def after_step(self) -> None:
        """Called by the trainer after every optimizer step: clip the latent binary weights."""
        clip_binary_weights_(self)

    def __init__(
        self, in_features: int, num_classes: int, act: ActFn, depth: int, width: int
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers: list[nn.Module] = []
        for i in range(depth):
            # First layer real-valued: its input is real data, not ±1 activations.  No biases
            # before BN (its shift replaces them).
            linear_cls = nn.Linear if i == 0 else BinaryLinear
            layers += [
                linear_cls(in_features if i == 0 else width, width, bias=False),
                nn.BatchNorm1d(width),
                act(),
            ]
        self.features = nn.Sequential(*layers)
        # Last layer real-valued, as in the paper, so logits are not restricted to integers.
        self.head = nn.Linear(width if depth else in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.flatten(x)))


@register_model("bnn", kinds=("vector", "sequence", "image"))
def build_bnn(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn,
    depth: int = 3, width: int = 256,
) -> nn.Module:
    """Binarized neural network (Courbariaux et al. 2016, "Binarized Neural Networks: Training
    deep neural networks with weights and activations constrained to +1 or -1").

    MLP on the flattened input with ``depth`` hidden layers of ``width``: each is
    Linear -> BatchNorm1d -> act.  Hidden-to-hidden layers are :class:`BinaryLinear` (weights
    sign(w) = ±1 in the forward, clipped straight-through gradient); the first and last layers
    stay real-valued.  Activations come from ``act()``, so configure a step/sign forward to get
    binary activations.  The paper's MNIST MLP is 3x4096 with a final BN and square hinge loss;
    here width defaults to 256 for CPU, the head is a plain linear trained with the harness's
    loss, and the trainer clips the latent weights after each step through ``BNN.after_step``.
    """
    if depth < 0 or width < 1:
        raise ValueError(f"bnn needs depth >= 0 and width >= 1, got depth={depth}, width={width}")
    return BNN(flat_size(input_shape), num_classes, act, depth, width)

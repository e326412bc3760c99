"""Multi-layer perceptron on flattened inputs."""

from __future__ import annotations

import torch
import torch.nn as nn

from harness.models._shapes import flat_size
from harness.models.registry import ActFn, register_model


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, an activation-pair module after each.

    With ``residual=True`` every hidden layer after the first becomes ``h = h + act(W h + b)``,
    the form of MNIST-1D's reference ``MLPBase``.
    """

    def __init__(
        self, in_features: int, num_classes: int, act: ActFn, depth: int, width: int,
        residual: bool, bias: bool,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.flatten = nn.Flatten()
        self.layers = nn.ModuleList()
        self.acts = nn.ModuleList()
        fan_in = in_features
        for _ in range(depth):
            self.layers.append(nn.Linear(fan_in, width, bias=bias))
            self.acts.append(act())
            fan_in = width
        self.head = nn.Linear(fan_in, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.flatten(x)
        for i, (layer, act) in enumerate(zip(self.layers, self.acts)):
            out = act(layer(h))
            # Skips join hidden layers only: the input layer maps data to width (even when the
            # input happens to have `width` features, it is not a hidden representation).
            h = h + out if self.residual and i > 0 else out
        return self.head(h)


@register_model("mlp", kinds=("vector", "sequence", "image"))
def build_mlp(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn,
    depth: int = 2, width: int = 100, residual: bool = False, bias: bool = True, init: str = "torch",
) -> nn.Module:
    """MLP: flatten -> [Linear(width) -> act] x depth -> Linear(num_classes).

    Defaults give MNIST-1D's reference 40-100-100-10 MLP (Greydanus 2020, "Scaling down deep
    learning", github.com/greydanus/mnist1d ``MLPBase``; 15,210 parameters).  The published model
    adds a residual around its second layer: set ``residual=True`` to reproduce it exactly.
    ``init``: "torch" keeps nn.Linear's default (kaiming-uniform with a = sqrt(5), weight std
    1/sqrt(3 fan_in)); "xavier" is Glorot & Bengio's (2010) uniform init, U(+-sqrt(6 / (fan_in +
    fan_out))) with zero biases, the classic setting for deep sigmoid/tanh nets, under which the
    torch default's shrinking forward signal does not drown the backward question.
    """
    if depth < 0 or width < 1:
        raise ValueError(f"mlp needs depth >= 0 and width >= 1, got depth={depth}, width={width}")
    if init not in INITS:
        raise ValueError(f"mlp init must be one of {', '.join(INITS)}, got {init!r}")
    model = MLP(flat_size(input_shape), num_classes, act, depth, width, residual, bias)
    if init == "xavier":
        for layer in [*model.layers, model.head]:
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model


INITS = ("torch", "xavier")

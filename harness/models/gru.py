"""A hand-written GRU whose gate and candidate nonlinearities are activation pairs."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from harness.models.registry import ActFn, ModelDataMismatch, register_model

_READOUTS = ("all", "last")


def _steps(input_shape: tuple[int, ...], chunk: int) -> tuple[int, int]:
    """(time steps, features per step) for a sample; raises ModelDataMismatch if it cannot split."""
    if len(input_shape) == 1:
        length = input_shape[0]
        if length % chunk:
            raise ModelDataMismatch.for_model(
                "gru", f"a sequence (L,) with L divisible by chunk={chunk}", input_shape
            )
        return length // chunk, chunk
    if len(input_shape) == 2:
        return input_shape
    channels, height, width = input_shape
    return height, channels * width  # image rows are the steps


def _check(input_shape: tuple[int, ...], *, chunk: int, readout: str, **_: object) -> None:
    if chunk < 1:
        raise ValueError(f"gru chunk must be >= 1, got {chunk}")
    if readout not in _READOUTS:
        raise ValueError(f"gru readout must be one of {_READOUTS}, got {readout!r}")
    _steps(input_shape, chunk)


class PairGRUCell(nn.Module):
    """One GRU step with the equations (and init) of ``torch.nn.GRU``, nonlinearities from ``act``:

    r = act("sigmoid")(W_ir x + b_ir + W_hr h + b_hr)
    z = act("sigmoid")(W_iz x + b_iz + W_hz h + b_hz)
    n = act("tanh")(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
    """

    def __init__(self, input_size: int, hidden_size: int, act: ActFn) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        # Stacked [r | z | n] like torch.nn.GRU's weight_ih / weight_hh, so weights can be copied.
        self.x2h = nn.Linear(input_size, 3 * hidden_size)
        self.h2h = nn.Linear(hidden_size, 3 * hidden_size)
        self.reset_gate = act("sigmoid")
        self.update_gate = act("sigmoid")
        self.candidate = act("tanh")
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn.GRU's init for every weight and bias
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def step(self, x_proj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Advance one step; ``x_proj`` is this step's precomputed ``x2h(x_t)``."""
        xr, xz, xn = x_proj.chunk(3, dim=-1)
        hr, hz, hn = self.h2h(h).chunk(3, dim=-1)
        r = self.reset_gate(xr + hr)
        z = self.update_gate(xz + hz)
        n = self.candidate(xn + r * hn)
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run over ``x`` (B, T, F) from a zero state; return all hidden states (B, T, H)."""
        # The input projection has no recurrence, so do it for all steps in one matmul.
        x_proj = self.x2h(x)
        h = x.new_zeros(x.shape[0], self.hidden_size)
        outputs = []
        for t in range(x.shape[1]):
            h = self.step(x_proj[:, t], h)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class GRUClassifier(nn.Module):
    """(Bi)directional single-layer GRU and a linear readout of all states or the final ones."""

    def __init__(
        self, steps: int, features: int, num_classes: int, act: ActFn, hidden_size: int,
        bidirectional: bool, readout: str,
    ) -> None:
        super().__init__()
        self.steps, self.features, self.readout = steps, features, readout
        self.forward_cell = PairGRUCell(features, hidden_size, act)
        self.backward_cell = PairGRUCell(features, hidden_size, act) if bidirectional else None
        width = hidden_size * (2 if bidirectional else 1)
        self.head = nn.Linear(width * steps if readout == "all" else width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L) -> (B, L/chunk, chunk); (B, T, F) as is; (B, C, H, W) -> rows (B, H, C*W).
        if x.dim() == 4:
            x = x.permute(0, 2, 1, 3)
        x = x.reshape(x.shape[0], self.steps, self.features)
        states = [self.forward_cell(x)]
        if self.backward_cell is not None:
            # Reverse in, reverse out: state t of the backward pass has seen steps t..T-1.
            states.append(self.backward_cell(x.flip(1)).flip(1))
        if self.readout == "all":
            return self.head(torch.cat(states, dim=-1).flatten(1))
        # Final state of each direction: step T-1 forward, step 0 backward.
        finals = [states[0][:, -1]] + ([states[1][:, 0]] if len(states) > 1 else [])
        return self.head(torch.cat(finals, dim=-1))


@register_model("gru", kinds=("sequence", "image"), check=_check)
def build_gru(
    *, input_shape: tuple[int, ...], num_classes: int, act: ActFn,
    hidden_size: int = 6, bidirectional: bool = True, readout: str = "all", chunk: int = 1,
) -> nn.Module:
    """GRU classifier (Cho et al. 2014) unrolled by hand so every gate is an activation pair:
    per cell two ``act("sigmoid")`` gates (reset r, update z) and one ``act("tanh")`` candidate.

    Defaults reproduce MNIST-1D's ``GRUBase`` (Greydanus 2020, github.com/greydanus/mnist1d
    notebooks/models.py): 40 steps of 1 feature, hidden size 6, bidirectional, linear readout of
    all 40x12 hidden states (``readout="all"``); 5,134 parameters, as torch.nn.GRU's.
    ``readout="last"`` classifies from the final hidden state(s) instead.  A sequence (L,) is
    split into L/``chunk`` steps of ``chunk`` features; an (L, F) sequence gives L steps of F; an
    image (C, H, W) gives H steps (rows) of C*W features.
    """
    if hidden_size < 1:
        raise ValueError(f"gru hidden_size must be >= 1, got {hidden_size}")
    steps, features = _steps(input_shape, chunk)
    return GRUClassifier(steps, features, num_classes, act, hidden_size, bidirectional, readout)

"""The graph backend: what a pair's bit work becomes inside a torch.compile graph.

Gates are written in plain tensor ops, so Inductor fuses the compare and the bit packing into
the kernel that computes y, and the unpacking into the multiply of the backward pass (no opaque
op splits the graph). The formulation matters: a sum over a (-1, 8) uint8 view ran 40x slower
than a ReLU under Inductor, uint8 shifts 35x; OR-ing eight int32 lanes and shifting an int32
copy of the byte keep it close to a ReLU. Bounds and levels arrive as tensors
(`params.GateParams`), so pairs that differ only in parameters share one graph.

Few-bit codes and jamming call dispatcher ops: the C++ kernels' own (`harness_kernels::*`) for
float32 CPU tensors when the kernels are loaded, else this package's (`harness::*`, ops.py),
which run the eager backend for their inputs. Jam keys are drawn inside the graph from torch's
global RNG: a Python int would be baked in as a constant, repeating the same draws every step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import kernels
from . import ops, switch
from .reference import Reference, forward_value

_HALF = (torch.bfloat16, torch.float16)


def _dispatcher(t: Tensor):
    """The op namespace a graph calls for `t`'s codes and jam draws."""
    if switch.enabled() and kernels._module is not None and t.dtype == torch.float32 and t.device.type == "cpu":
        return torch.ops.harness_kernels
    return ops.namespace()


def gate_mask(x: Tensor, gate) -> Tensor:
    """1[x in gate] from the gate's tensor bounds; an end is closed where its flag is set."""
    xc = x.float() if x.dtype in _HALF else x
    lo, hi = gate.bounds
    closed_lo, closed_hi = gate.closed
    return ((xc > lo) | ((xc == lo) & closed_lo)) & ((xc < hi) | ((xc == hi) & closed_hi))


class Graph(Reference):
    """In-graph forms of the backend operations (see reference.py for the operations)."""

    name = "graph"

    def pack_bits(self, mask: Tensor) -> Tensor:
        flat = mask.reshape(-1).to(torch.int32)
        pad = (-flat.numel()) % 8
        if pad:
            flat = F.pad(flat, (0, pad))
        lanes = flat.view(-1, 8)
        out = lanes[:, 0]
        for j in range(1, 8):
            out = out | (lanes[:, j] << j)
        return out.to(torch.uint8)

    def unpack_bits(self, packed: Tensor, n: int) -> Tensor:
        shifts = torch.arange(8, dtype=torch.int32, device=packed.device)
        bits = (packed.view(-1, 1).to(torch.int32) >> shifts) & 1
        return bits.reshape(-1)[:n] != 0

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        return self.pack_bits(gate_mask(x, gate))

    def forward_pack(self, x: Tensor, op: int, gate) -> tuple[Tensor | None, Tensor]:
        return forward_value(x, op), self.pack_interval(x, gate)

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        lo, hi = gate.level_tensors
        inside = self._gate(packed, grad)
        # 0 outside a gate whose low level is 0, even for a NaN gradient (native ReLU's select).
        outside = torch.where(lo == 0, torch.zeros((), dtype=grad.dtype, device=grad.device), grad * lo)
        return torch.where(inside, grad * hi, outside)

    def jam_mul(self, grad: Tensor, packed: Tensor | None, keys) -> Tensor:
        drawn = torch.randint(0, 2**31 - 1, (2,), dtype=torch.int64)
        empty = torch.empty(0, dtype=torch.uint8, device=grad.device)
        return _dispatcher(grad).jam_mul(grad, empty if packed is None else packed, drawn)

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        y, packed = _dispatcher(x).encode_codes(x, borders, bits, op)
        return (y if op else None), packed

    def decode_mul(self, grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
        return _dispatcher(grad).decode_mul(grad, packed, levels, bits)

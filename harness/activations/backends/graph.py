"""The graph backend: what a pair's bit work becomes inside a torch.compile graph.

Gates are graph ops with tensor parameters (`harness::gate_forward_g` / `gate_mul_g`, ops.py):
bounds and levels arrive as one tensor (`params.GateParams.values`), so pairs that differ only in
parameters share one graph. AOTAutograd expands them, for static shapes, into the plain tensor
ops below, which Inductor fuses: compare and bit packing into the kernel that computes y,
unpacking into the backward's multiply (no opaque op splits the graph). The formulation
matters: a sum over a (-1, 8) uint8 view ran 40x slower than a ReLU under Inductor, uint8
shifts 35x, the backward in grad's own shape 10x; OR-ing eight int32 lanes, and shifting an
int32 copy of each byte in the (bytes, 8) layout, keep it within 1-2.5x of a ReLU's kernel.
For symbolic shapes (Dynamo's automatic dynamic shapes after a second input shape, e.g. a second
model width in one process) Inductor's loops over the same ops were 10-50x slower still, so
there they expand into one opaque op per pass that runs the eager kernels.

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


def gate_mask(x: Tensor, params: Tensor) -> Tensor:
    """1[x in [lo, hi]] from a gate's parameter tensor (`GateParams.values`); an end is closed
    where its flag is 1."""
    xc = x.float() if x.dtype in _HALF else x
    lo, hi, closed_lo, closed_hi = params[0], params[1], params[2] != 0, params[3] != 0
    return ((xc > lo) | ((xc == lo) & closed_lo)) & ((xc < hi) | ((xc == hi) & closed_hi))


def pack_lanes(mask: Tensor) -> Tensor:
    """A bool tensor packed 8 elements per byte (packing.py's layout) in plain ops."""
    flat = mask.reshape(-1).to(torch.int32)
    pad = (-flat.numel()) % 8
    if pad:
        flat = F.pad(flat, (0, pad))
    lanes = flat.view(-1, 8)
    out = lanes[:, 0]
    for j in range(1, 8):
        out = out | (lanes[:, j] << j)
    return out.to(torch.uint8)


def unpack_lanes(packed: Tensor) -> Tensor:
    """The packed bits as a (bytes, 8) bool tensor: lane j of row i is element 8 i + j."""
    shifts = torch.arange(8, dtype=torch.int32, device=packed.device)
    return ((packed.view(-1, 1).to(torch.int32) >> shifts) & 1) != 0


def plain_forward_pack(x: Tensor, op: int, params: Tensor) -> tuple[Tensor, Tensor]:
    """(y, or an empty tensor for op 0; packed gate) in plain ops."""
    y = forward_value(x, op)
    return (y if y is not None else x.new_empty((0,))), pack_lanes(gate_mask(x, params))


def plain_gate_mul(grad: Tensor, packed: Tensor, params: Tensor) -> Tensor:
    """grad * (level_hi where the bit is set, level_lo elsewhere) in plain ops; 0 outside a gate
    whose low level is 0, even for a NaN gradient (native ReLU's select)."""
    lo, hi = params[4], params[5]
    n = grad.numel()
    if n % 8 == 0:  # in the bits' (bytes, 8) layout: Inductor vectorises that loop
        g, inside = grad.reshape(-1, 8), unpack_lanes(packed)
    else:
        g, inside = grad, unpack_lanes(packed).reshape(-1)[:n].view(grad.shape)
    outside = torch.where(lo == 0, torch.zeros((), dtype=grad.dtype, device=grad.device), g * lo)
    return torch.where(inside, g * hi, outside).view(grad.shape)


class Graph(Reference):
    """In-graph forms of the backend operations (see reference.py for the operations)."""

    name = "graph"

    def pack_bits(self, mask: Tensor) -> Tensor:
        return pack_lanes(mask)

    def unpack_bits(self, packed: Tensor, n: int) -> Tensor:
        return unpack_lanes(packed).reshape(-1)[:n]

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        return self.forward_pack(x, 0, gate)[1]

    def forward_pack(self, x: Tensor, op: int, gate) -> tuple[Tensor | None, Tensor]:
        y, packed = ops.namespace().gate_forward_g(x, op, gate.values)
        return (y if op else None), packed

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        return ops.namespace().gate_mul_g(grad, packed, gate.values)

    def jam_mul(self, grad: Tensor, packed: Tensor | None, keys) -> Tensor:
        drawn = torch.randint(0, 2**31 - 1, (2,), dtype=torch.int64)
        empty = torch.empty(0, dtype=torch.uint8, device=grad.device)
        return _dispatcher(grad).jam_mul(grad, empty if packed is None else packed, drawn)

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        y, packed = _dispatcher(x).encode_codes(x, borders, bits, op)
        return (y if op else None), packed

    def decode_mul(self, grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
        return _dispatcher(grad).decode_mul(grad, packed, levels, bits)

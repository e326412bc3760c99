"""The reference backend: plain tensor ops on any device and dtype, the oracle every other
backend is tested against bit for bit (bit layout: packing.py).

Every backend implements this class's operations with the same arguments and results:

| operation                              | result                                              |
|----------------------------------------|-----------------------------------------------------|
| pack_bits(mask) / unpack_bits(p, n)    | a bool tensor <-> ceil(n/8) bytes                   |
| unpack_gate(p, n, gate)                | unpack_bits of a gate's state (graph.py: or y)      |
| forward_pack(x, op, gate)              | (y or None, packed 1[x in gate]); y = relu/step(x)  |
| gate_mul(grad, packed, gate)           | grad * (level_hi where the bit is set, else level_lo) |
| jam_mul(grad, packed or None, keys, gate) | grad * gate * u, u = the counter hash of keys.next_keys() |
| encode_codes(x, borders, bits, op)     | (y or None, b-bit codes #{borders < x}, NaN -> 0)   |
| decode_mul(grad, packed, levels, bits) | grad * levels[code]                                 |
| decode_levels(packed, n, bits, levels) | levels[code], flat                                  |

`gate` is a `params.GateParams` (jam_mul's: the one `packed` was made with, which only the
graph backend reads, or None); `op` is 0 (no forward), 1 (relu) or 2 (step), see
`packing.FORWARD_OPS`. Where the gate's low level is 0 the result is 0 outside the gate even for
a NaN or inf gradient: the select semantics of native ReLU's backward.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import packing

_HALF = (torch.bfloat16, torch.float16)


def forward_value(x: Tensor, op: int) -> Tensor | None:
    """y = relu(x) (op 1), step(x) = 1[x > 0] in x's dtype (op 2), or None (op 0)."""
    if op == packing.FORWARD_OPS["relu"]:
        return torch.relu(x)
    if op == packing.FORWARD_OPS["step"]:
        return (x > 0).to(x.dtype)
    return None


class Reference:
    """Tensor-op implementations of the backend operations (see the module docstring)."""

    name = "reference"
    gate_pair = None  # only the C++ backend runs a whole gate pair in one call (cpu.py)

    def pack_bits(self, mask: Tensor) -> Tensor:
        return packing.pack_bits_reference(mask)

    def unpack_bits(self, packed: Tensor, n: int) -> Tensor:
        return packing.unpack_bits_reference(packed, n)

    def unpack_gate(self, packed: Tensor, n: int, gate) -> Tensor:
        """The first `n` bits of a gate's state from `forward_pack` (here its packed bits; the
        graph backend's state behind relu is y, read with the gate)."""
        return self.unpack_bits(packed, n)

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        """Packed 1[x in gate] (the op-0 case of forward_pack)."""
        if x.dtype in _HALF:
            x = x.float()  # compare against the exact bounds, not bounds rounded to 8-11 bits
        return self.pack_bits(packing.interval_mask(x, *gate.kernel_args))

    def forward_pack(self, x: Tensor, op: int, gate) -> tuple[Tensor | None, Tensor]:
        return forward_value(x, op), self.pack_interval(x, gate)

    def _gate(self, packed: Tensor, like: Tensor) -> Tensor:
        return self.unpack_bits(packed, like.numel()).view(like.shape).to(like.device)

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        lo, hi = gate.levels
        inside = self._gate(packed, grad)
        if lo != 0.0:
            return torch.where(inside, grad * hi, grad * lo)
        return torch.where(inside, grad * hi, torch.zeros((), dtype=grad.dtype, device=grad.device))

    def jam_mul(self, grad: Tensor, packed: Tensor | None, keys, gate=None) -> Tensor:
        key_a, key_b = keys.next_keys()
        u = packing.hash_uniform_reference(grad.numel(), key_a, key_b, grad.device).view(grad.shape)
        g = grad * u.to(grad.dtype) if grad.dtype != torch.float32 else grad * u
        if packed is None:
            return g
        return torch.where(self._gate(packed, grad), g, torch.zeros((), dtype=g.dtype, device=g.device))

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        flat = x.reshape(-1)
        codes = torch.bucketize(flat, borders).masked_fill_(flat.isnan(), 0)
        return forward_value(x, op), packing.pack_codes(codes, bits)

    def decode_levels(self, packed: Tensor, n: int, bits: int, levels: Tensor) -> Tensor:
        return levels[packing.unpack_codes(packed, n, bits).to(levels.device)]

    def decode_mul(self, grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
        return grad * self.decode_levels(packed.to(grad.device), grad.numel(), bits, levels).view(grad.shape)

"""The C++ backend: the fused CPU kernels (csrc/, built, loaded and called by kernels.py) for
float32 CPU tensors, one pass for compare+pack or unpack+multiply. What they do not take (bool
masks, tables in another dtype) falls back to numpy (the base class)."""
from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels
from .numpy_cpu import Numpy


class CpuKernels(Numpy):
    """The compiled kernels (see reference.py for the operations)."""

    name = "cpu"
    # relu/step(x) with a 1-bit gate backward in C++ (no Python in either pass): the same kernels
    # and saved bits as forward_pack + gate_mul. `gate_pair(*args)` binds one pair's arguments
    # (PairSpec.gate_pair_args) and returns the callable `f(x)`.
    gate_pair = staticmethod(kernels.gate_pair_function)

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        return kernels.pack_interval(x, *gate.kernel_args)

    def forward_pack(self, x: Tensor, op: int, gate) -> tuple[Tensor | None, Tensor]:
        y, packed = kernels.forward_pack(x, op, *gate.kernel_args)
        return (y if op else None), packed

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        return kernels.gate_mul(grad, packed, *gate.levels)

    def jam_mul(self, grad: Tensor, packed: Tensor | None, keys, gate=None) -> Tensor:
        return kernels.jam_mul(grad, packed, *keys.next_keys())

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        if borders.dtype != torch.float32:
            return super().encode_codes(x, borders, bits, op)
        return kernels.encode_codes(x, borders.contiguous(), bits, op)

    def decode_mul(self, grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
        if levels.dtype != torch.float32:
            return super().decode_mul(grad, packed, levels, bits)
        return kernels.decode_mul(grad, packed, levels.contiguous(), bits)

"""The Triton backend: the CUDA kernels of triton_kernels.py (float16, bfloat16, float32), the
same passes and bits as the C++ ones. Arguments the kernels do not take (state on another
device, tables in another dtype, more than 8 bits) fall back to the reference."""
from __future__ import annotations

import torch
from torch import Tensor

from .. import triton_kernels
from .reference import Reference


class Triton(Reference):
    """The Triton kernels (see reference.py for the operations)."""

    name = "triton"

    def pack_bits(self, mask: Tensor) -> Tensor:
        return triton_kernels.pack_bits(mask) if mask.dtype == torch.bool else super().pack_bits(mask)

    def unpack_bits(self, packed: Tensor, n: int) -> Tensor:
        return triton_kernels.unpack_bits(packed, n)

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        return triton_kernels.pack_interval(x, *gate.kernel_args)

    def forward_pack(self, x: Tensor, op: int, gate) -> tuple[Tensor | None, Tensor]:
        y, packed = triton_kernels.forward_pack(x, op, *gate.kernel_args)
        return (y if op else None), packed

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        if packed.device != grad.device:
            return super().gate_mul(grad, packed, gate)
        return triton_kernels.gate_mul(grad, packed, *gate.levels)

    def jam_mul(self, grad: Tensor, packed: Tensor | None, keys, gate=None) -> Tensor:
        if packed is not None and packed.device != grad.device:
            return super().jam_mul(grad, packed, keys)
        return triton_kernels.jam_mul(grad, packed, *keys.next_keys())

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        if borders.dtype != x.dtype or borders.device != x.device or bits > triton_kernels.MAX_BITS:
            return super().encode_codes(x, borders, bits, op)
        return triton_kernels.encode_codes(x, borders, bits, op)

    def decode_mul(self, grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
        if levels.dtype != grad.dtype or not levels.device == packed.device == grad.device or bits > triton_kernels.MAX_BITS:
            return super().decode_mul(grad, packed, levels, bits)
        return triton_kernels.decode_mul(grad, packed, levels, bits)

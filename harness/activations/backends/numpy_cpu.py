"""The numpy backend: CPU tensors of any dtype when the C++ kernels are off or do not apply
(float64, float16, bfloat16, bool masks). numpy's packbits, unpackbits and compares are SIMD
vectorised; the same work in torch ops costs 5-30x a ReLU on CPU (docs/DESIGN.md section 5).
Dtypes numpy lacks (bfloat16) take the reference path."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import packing
from .reference import Reference, forward_value

_NUMPY_FLOATS = (torch.float32, torch.float64, torch.float16)


class Numpy(Reference):
    """numpy implementations for CPU tensors (see reference.py for the operations)."""

    name = "numpy"

    def pack_bits(self, mask: Tensor) -> Tensor:
        return torch.from_numpy(np.packbits(mask.reshape(-1).numpy(), bitorder="little"))

    def unpack_bits(self, packed: Tensor, n: int) -> Tensor:
        return torch.from_numpy(np.unpackbits(packed.numpy(), count=n, bitorder="little")).view(torch.bool)

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        if x.dtype not in _NUMPY_FLOATS:
            return super().pack_interval(x, gate)
        # numpy's compare is ~8x faster than torch's bool-output compare on CPU.
        flat = x.detach().reshape(-1).numpy()
        return torch.from_numpy(np.packbits(packing.interval_mask(flat, *gate.kernel_args), bitorder="little"))

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        lo, hi = gate.levels
        if lo != 0.0 or not torch.isfinite(grad).all():
            return super().gate_mul(grad, packed, gate)
        # float * uint8 0/1 is ~3x faster than torch.where on CPU; finite gradients only, since
        # NaN * 0 = NaN where native ReLU's backward selects 0.
        out = grad * self._gate(packed, grad).view(torch.uint8)
        return out if hi == 1.0 else out.mul_(hi)

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        if x.dtype not in _NUMPY_FLOATS:
            return super().encode_codes(x, borders, bits, op)
        flat = x.detach().reshape(-1).numpy()
        b = borders.numpy()
        if len(b) <= 15:
            codes = np.zeros(flat.shape, dtype=np.uint8)
            for border in b:
                codes += flat > border
        else:
            codes = np.searchsorted(b, flat, side="left").astype(np.uint8)
            codes[np.isnan(flat)] = 0  # code = #{borders < x}: NaN compares false everywhere
        planes = [np.packbits((codes >> j) & 1, bitorder="little") for j in range(bits)]
        return forward_value(x, op), torch.from_numpy(np.concatenate(planes) if bits > 1 else planes[0])

    def decode_levels(self, packed: Tensor, n: int, bits: int, levels: Tensor) -> Tensor:
        if levels.dtype not in _NUMPY_FLOATS or levels.device.type != "cpu":
            return super().decode_levels(packed, n, bits, levels)
        stride = packing.packed_size(n)
        p = packed.numpy()
        codes = np.unpackbits(p[:stride], count=n, bitorder="little")
        for j in range(1, bits):
            codes |= np.unpackbits(p[j * stride : (j + 1) * stride], count=n, bitorder="little") << j
        return torch.from_numpy(np.take(levels.numpy(), codes))

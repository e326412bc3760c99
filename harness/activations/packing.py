"""Bit packing of the state a backward rule saves: 1-bit gates and b-bit codes; the layout and
the reference code.

Layout (shared by every implementation, so they agree bit for bit): element `i` of the flat
tensor lives in byte `i // 8`, bit `i % 8` (little bit order, as `numpy.packbits(...,
bitorder="little")`). A b-bit code tensor is stored as b such bit planes, plane j holding bit j of
every code, concatenated: b * ceil(n / 8) bytes, i.e. at most ceil(n * b / 8) + b bytes.

The `*_reference` functions here are plain tensor ops on any device: the oracle. Which
implementation runs for a given tensor (C++ kernels, Triton, numpy, the reference, or plain ops
inside a compiled graph) is decided in one place, `backends.select`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

FORWARD_OPS = {"relu": 1, "step": 2}  # forwards a backend fuses with the gate (op 0: none)

_SHIFTS: dict[torch.device, Tensor] = {}


def packed_size(n: int, bits: int = 1) -> int:
    """Bytes used to store `n` elements at `bits` bits each (planar layout)."""
    return bits * ((n + 7) // 8)


def _shifts(device: torch.device) -> Tensor:
    if device not in _SHIFTS:
        _SHIFTS[device] = torch.arange(8, dtype=torch.uint8, device=device)
    return _SHIFTS[device]


def pack_bits_reference(mask: Tensor) -> Tensor:
    """Pack a bool tensor (any shape, read in row-major order) into uint8, 8 elements per byte."""
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = F.pad(flat, (0, pad))
    return (flat.view(-1, 8) << _shifts(flat.device)).sum(dim=1, dtype=torch.uint8)


def unpack_bits_reference(packed: Tensor, n: int) -> Tensor:
    """Inverse of `pack_bits_reference`: the first `n` bits as a flat bool tensor."""
    bits = (packed.unsqueeze(1) >> _shifts(packed.device)) & 1
    return bits.reshape(-1)[:n].bool()


def interval_mask(x, lo: float, hi: float, closed_lo: bool, closed_hi: bool):
    """Elementwise 1[x in interval] for a tensor or numpy array; infinite ends are skipped."""
    parts = []
    if lo != -math.inf:
        parts.append(x >= lo if closed_lo else x > lo)
    if hi != math.inf:
        parts.append(x <= hi if closed_hi else x < hi)
    if not parts:
        return x == x  # the whole line (NaN excluded)
    return parts[0] & parts[1] if len(parts) == 2 else parts[0]


_M32 = 0xFFFFFFFF


def _mix32(h: Tensor) -> Tensor:
    """murmur3's 32-bit finalizer on int64 tensors holding uint32 values."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def hash_uniform_reference(n: int, key_a: int, key_b: int, device=None) -> Tensor:
    """u_i = (mix(mix(i + key_a) ^ key_b) >> 8) / 2^24 for i < n: U(0,1) on a 2^-24 grid (float32).

    A counter-based generator: element i of draw (key_a, key_b) is a pure function of them, so
    the compiled kernel and this reference give identical numbers, in any order or thread count.
    """
    i = torch.arange(n, dtype=torch.int64, device=device)
    h = _mix32(_mix32((i + key_a) & _M32) ^ key_b)
    return (h >> 8).to(torch.float32) * (1.0 / 16777216.0)


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Pack integer codes in [0, 2**bits) into `bits` bit planes (bits * ceil(n/8) bytes)."""
    flat = codes.reshape(-1)
    planes = [pack_bits_reference(((flat >> j) & 1).bool()) for j in range(bits)]
    return torch.cat(planes) if bits > 1 else planes[0]


def unpack_codes(packed: Tensor, n: int, bits: int) -> Tensor:
    """Inverse of `pack_codes`: a flat int64 tensor of `n` codes."""
    stride = packed_size(n)
    codes = unpack_bits_reference(packed[:stride], n).to(torch.int64)
    for j in range(1, bits):
        codes |= unpack_bits_reference(packed[j * stride : (j + 1) * stride], n).to(torch.int64) << j
    return codes

"""Bit packing of the state a backward rule saves: 1-bit gates and b-bit codes.

Layout (shared by every implementation, so they agree bit for bit): element `i` of the flat
tensor lives in byte `i // 8`, bit `i % 8` (little bit order, as `numpy.packbits(...,
bitorder="little")`). A b-bit code tensor is stored as b such bit planes, plane j holding bit j of
every code, concatenated: b * ceil(n / 8) bytes, i.e. at most ceil(n * b / 8) + b bytes.

Implementations:
- `*_reference`: plain tensor ops, any device. The reference every fast path is tested against.
- CPU float32: the fused kernels (`kernels.py`, csrc/), one pass for compare+pack or
  unpack+multiply.
- CUDA float16/bfloat16/float32: the Triton kernels (`triton_kernels.py`), the same passes and bits.
- Other CPU dtypes, or kernels off: numpy's packbits/unpackbits, which are SIMD-vectorised (the
  tensor-op version is 5-30x slower than a ReLU on CPU, see docs/DESIGN.md section 5).
- Under torch.compile: graphs traced for float32 CPU call the kernels as dispatcher ops
  (`harness_kernels::*`); all others call the `harness::*` Python custom ops below, opaque to
  Inductor, which run the eager paths. Either way the pair traces without graph breaks.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import kernels, triton_kernels

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


def _pack_bits_numpy(mask: Tensor) -> Tensor:
    flat = mask.reshape(-1)
    return torch.from_numpy(np.packbits(flat.numpy(), bitorder="little"))


def _unpack_bits_numpy(packed: Tensor, n: int) -> Tensor:
    bits = np.unpackbits(packed.numpy(), count=n, bitorder="little")
    return torch.from_numpy(bits).view(torch.bool)


def _pack_eager(mask: Tensor) -> Tensor:
    if mask.device.type == "cpu":
        return _pack_bits_numpy(mask)
    if mask.is_cuda and mask.dtype == torch.bool and triton_kernels.available() and triton_kernels.enabled():
        return triton_kernels.pack_bits(mask)
    return pack_bits_reference(mask)


def _unpack_eager(packed: Tensor, n: int) -> Tensor:
    if packed.device.type == "cpu":
        return _unpack_bits_numpy(packed, n)
    if packed.is_cuda and triton_kernels.available() and triton_kernels.enabled():
        return triton_kernels.unpack_bits(packed, n)
    return unpack_bits_reference(packed, n)


@torch.library.custom_op("harness::pack_bits", mutates_args=())
def _pack_bits_op(mask: Tensor) -> Tensor:
    return _pack_eager(mask)


@_pack_bits_op.register_fake
def _(mask: Tensor) -> Tensor:
    return mask.new_empty((packed_size(mask.numel()),), dtype=torch.uint8)


@torch.library.custom_op("harness::unpack_bits", mutates_args=())
def _unpack_bits_op(packed: Tensor, n: int) -> Tensor:
    return _unpack_eager(packed, n)


@_unpack_bits_op.register_fake
def _(packed: Tensor, n: int) -> Tensor:
    return packed.new_empty((n,), dtype=torch.bool)


def pack_bits(mask: Tensor) -> Tensor:
    """Pack a bool tensor into ceil(n/8) bytes (fast path; same bits as the reference)."""
    if torch.compiler.is_compiling():
        return _pack_bits_op(mask)
    # Eager: call the kernel directly; the custom-op dispatcher costs ~20 us per call.
    return _pack_eager(mask)


def unpack_bits(packed: Tensor, n: int) -> Tensor:
    """Unpack the first `n` bits of `packed` into a flat bool tensor."""
    if torch.compiler.is_compiling():
        return _unpack_bits_op(packed, n)
    return _unpack_eager(packed, n)


_NUMPY_FLOATS = (torch.float32, torch.float64, torch.float16)


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


def _pack_interval_eager(x: Tensor, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> Tensor:
    if kernels.usable(x):
        # One fused compare-and-pack pass (csrc/gate_kernels.cpp). Infinite ends are passed
        # closed, so +-inf inputs fall inside exactly as `interval_mask` (which skips them) says.
        return kernels.pack_interval(x, lo, hi, closed_lo or lo == -math.inf, closed_hi or hi == math.inf)
    if triton_kernels.usable(x):  # CUDA: the same fused pass in Triton
        return triton_kernels.pack_interval(x, lo, hi, closed_lo or lo == -math.inf, closed_hi or hi == math.inf)
    if x.device.type == "cpu" and x.dtype in _NUMPY_FLOATS:
        # numpy's compare is ~8x faster than torch's bool-output compare on CPU.
        flat = x.detach().reshape(-1).numpy()
        return torch.from_numpy(np.packbits(interval_mask(flat, lo, hi, closed_lo, closed_hi), bitorder="little"))
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()  # compare against the exact bounds, not bounds rounded to 8-11 bits
    return _pack_eager(interval_mask(x, lo, hi, closed_lo, closed_hi))


def _gate_mul_eager(grad: Tensor, packed: Tensor, lo: float, hi: float) -> Tensor:
    if kernels.usable(grad):  # one fused unpack-and-multiply pass
        return kernels.gate_mul(grad, packed, lo, hi)
    if triton_kernels.usable(grad) and packed.device == grad.device:
        return triton_kernels.gate_mul(grad, packed, lo, hi)
    gate = _unpack_eager(packed, grad.numel()).view(grad.shape).to(grad.device)
    if lo != 0.0:
        return torch.where(gate, grad * hi, grad * lo)
    # float * uint8 0/1 is ~3x faster than torch.where on CPU, but NaN * 0 = NaN: keep the
    # select semantics of native ReLU's backward (0 outside the gate) for non-finite gradients.
    if not torch.isfinite(grad).all():
        return torch.where(gate, grad * hi, torch.zeros((), dtype=grad.dtype, device=grad.device))
    out = grad * gate.view(torch.uint8)
    return out if hi == 1.0 else out.mul_(hi)


# Under torch.compile the gate work runs as opaque ops: Inductor's own code for a bool compare,
# packing and unpacking was 25-48x slower than native ReLU.
@torch.library.custom_op("harness::pack_interval", mutates_args=())
def _pack_interval_op(x: Tensor, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> Tensor:
    return _pack_interval_eager(x, lo, hi, closed_lo, closed_hi)


@_pack_interval_op.register_fake
def _(x: Tensor, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> Tensor:
    return x.new_empty((packed_size(x.numel()),), dtype=torch.uint8)


@torch.library.custom_op("harness::gate_mul", mutates_args=())
def _gate_mul_op(grad: Tensor, packed: Tensor, lo: float, hi: float) -> Tensor:
    return _gate_mul_eager(grad, packed, lo, hi)


@_gate_mul_op.register_fake
def _(grad: Tensor, packed: Tensor, lo: float, hi: float) -> Tensor:
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


def pack_interval(x: Tensor, interval) -> Tensor:
    """Pack the gate 1[x in interval] (an `Interval`) into ceil(n/8) bytes."""
    args = (float(interval.lo), float(interval.hi), bool(interval.closed_lo), bool(interval.closed_hi))
    if torch.compiler.is_compiling():
        ops = kernels.graph_ops(x)
        if ops is not None:
            return ops.gate_forward(x, 0, *interval.kernel_args())[1]
        return _pack_interval_op(x, *args)
    return _pack_interval_eager(x, *args)


def gate_mul(grad: Tensor, packed: Tensor, lo: float, hi: float) -> Tensor:
    """grad * (hi where the packed bit is set, lo elsewhere), in grad's shape."""
    if torch.compiler.is_compiling():
        ops = kernels.graph_ops(grad)
        if ops is not None:
            return ops.gate_mul(grad, packed, float(lo), float(hi))
        return _gate_mul_op(grad, packed, float(lo), float(hi))
    return _gate_mul_eager(grad, packed, lo, hi)


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


def _jam_mul_eager(grad: Tensor, packed: Tensor | None, key_a: int, key_b: int) -> Tensor:
    if kernels.usable(grad):
        return kernels.jam_mul(grad, packed, key_a, key_b)
    if triton_kernels.usable(grad) and (packed is None or packed.device == grad.device):
        return triton_kernels.jam_mul(grad, packed, key_a, key_b)
    u = hash_uniform_reference(grad.numel(), key_a, key_b, grad.device).view(grad.shape)
    g = grad * u.to(grad.dtype) if grad.dtype != torch.float32 else grad * u
    if packed is None:
        return g
    gate = _unpack_eager(packed, grad.numel()).view(grad.shape).to(grad.device)
    return torch.where(gate, g, torch.zeros((), dtype=g.dtype, device=g.device))  # 0 outside, even for NaN


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Pack integer codes in [0, 2**bits) into `bits` bit planes (bits * ceil(n/8) bytes)."""
    flat = codes.reshape(-1)
    planes = [pack_bits(((flat >> j) & 1).bool()) for j in range(bits)]
    return torch.cat(planes) if bits > 1 else planes[0]


def unpack_codes(packed: Tensor, n: int, bits: int) -> Tensor:
    """Inverse of `pack_codes`: a flat int64 tensor of `n` codes."""
    stride = packed_size(n)
    codes = unpack_bits(packed[:stride], n).to(torch.int64)
    for j in range(1, bits):
        codes |= unpack_bits(packed[j * stride : (j + 1) * stride], n).to(torch.int64) << j
    return codes


def _use_numpy(t: Tensor) -> bool:
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def _encode_codes_eager(x: Tensor, borders: Tensor, bits: int) -> Tensor:
    if kernels.usable(x) and borders.dtype == torch.float32:
        return kernels.encode_codes(x, borders.contiguous(), bits)[1]
    if triton_kernels.usable(x) and borders.dtype == x.dtype and borders.device == x.device and bits <= triton_kernels.MAX_BITS:
        return triton_kernels.encode_codes(x, borders, bits)[1]
    if _use_numpy(x) and x.dtype in _NUMPY_FLOATS:
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
        return torch.from_numpy(np.concatenate(planes) if bits > 1 else planes[0])
    flat = x.reshape(-1)
    codes = torch.bucketize(flat, borders).masked_fill_(flat.isnan(), 0).to(torch.uint8)
    return pack_codes(codes, bits)


def _decode_mul_eager(grad: Tensor, packed: Tensor, bits: int, levels: Tensor) -> Tensor:
    if kernels.usable(grad) and levels.dtype == torch.float32:
        return kernels.decode_mul(grad, packed, levels.contiguous(), bits)
    if triton_kernels.usable(grad) and levels.dtype == grad.dtype and levels.device == packed.device == grad.device:
        return triton_kernels.decode_mul(grad, packed, levels, bits)
    return grad * decode_levels(packed.to(grad.device), grad.numel(), bits, levels).view(grad.shape)


def decode_levels(packed: Tensor, n: int, bits: int, levels: Tensor) -> Tensor:
    """levels[code] for each of the `n` packed codes, as a flat tensor in levels' dtype."""
    if _use_numpy(packed) and levels.dtype in _NUMPY_FLOATS:
        stride = packed_size(n)
        p = packed.numpy()
        codes = np.unpackbits(p[:stride], count=n, bitorder="little")
        for j in range(1, bits):
            codes |= np.unpackbits(p[j * stride : (j + 1) * stride], count=n, bitorder="little") << j
        return torch.from_numpy(np.take(levels.numpy(), codes))
    return levels[unpack_codes(packed, n, bits)]


# ---------------------------------------------------------------------------------------------
# Public entry points. Under torch.compile they dispatch to opaque custom ops, so the compiled
# graph calls the same fused kernels instead of Inductor's code for compares and bit packing.


@torch.library.custom_op("harness::encode_codes", mutates_args=())
def _encode_codes_op(x: Tensor, borders: Tensor, bits: int) -> Tensor:
    return _encode_codes_eager(x, borders, bits)


@_encode_codes_op.register_fake
def _(x: Tensor, borders: Tensor, bits: int) -> Tensor:
    return x.new_empty((bits * packed_size(x.numel()),), dtype=torch.uint8)


@torch.library.custom_op("harness::decode_mul", mutates_args=())
def _decode_mul_op(grad: Tensor, packed: Tensor, bits: int, levels: Tensor) -> Tensor:
    return _decode_mul_eager(grad, packed, bits, levels)


@_decode_mul_op.register_fake
def _(grad: Tensor, packed: Tensor, bits: int, levels: Tensor) -> Tensor:
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


@torch.library.custom_op("harness::jam_mul", mutates_args=())
def _jam_mul_op(grad: Tensor, packed: Tensor, keys: Tensor) -> Tensor:
    key_a, key_b = (int(k) & _M32 for k in keys.tolist())
    return _jam_mul_eager(grad, packed if packed.numel() else None, key_a, key_b)


@_jam_mul_op.register_fake
def _(grad: Tensor, packed: Tensor, keys: Tensor) -> Tensor:
    return torch.empty_like(grad, memory_format=torch.contiguous_format)


def encode_codes(x: Tensor, borders: Tensor, bits: int) -> Tensor:
    """code(x) = #{borders < x} (= bucketize(x, borders); NaN -> 0), packed into `bits` planes.

    `borders` must be sorted and in x's dtype. The fused kernel (CPU float32) counts
    comparisons for up to 15 borders and binary-searches beyond; numpy and torch paths agree.
    """
    if torch.compiler.is_compiling():
        ops = kernels.graph_ops(x)
        if ops is not None and borders.dtype == torch.float32:
            return ops.encode_codes(x, borders, bits, 0)[1]
        return _encode_codes_op(x, borders, bits)
    return _encode_codes_eager(x, borders, bits)


def decode_mul(grad: Tensor, packed: Tensor, bits: int, levels: Tensor) -> Tensor:
    """grad * levels[code] for the codes packed by `encode_codes` (fused kernel on CPU float32)."""
    if torch.compiler.is_compiling():
        ops = kernels.graph_ops(grad)
        if ops is not None and levels.dtype == torch.float32:
            return ops.decode_mul(grad, packed, levels, bits)
        return _decode_mul_op(grad, packed, bits, levels)
    return _decode_mul_eager(grad, packed, bits, levels)


def jam_mul(grad: Tensor, packed: Tensor | None, key_a: int | None, key_b: int | None) -> Tensor:
    """grad * gate * u with u from `hash_uniform_reference` (gate: packed bits, or none).

    Under torch.compile the keys are drawn inside the graph from torch's global RNG (a Python
    int would be baked into the graph as a constant, repeating the same draws every step), so
    pass None for both there.
    """
    if torch.compiler.is_compiling():
        keys = torch.randint(0, 2**31 - 1, (2,), dtype=torch.int64)
        empty = torch.empty(0, dtype=torch.uint8, device=grad.device)
        ops = kernels.graph_ops(grad)
        if ops is not None:
            return ops.jam_mul(grad, packed if packed is not None else empty, keys)
        return _jam_mul_op(grad, packed if packed is not None else empty, keys)
    return _jam_mul_eager(grad, packed, key_a, key_b)


def _forward_pack_eager(x: Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> tuple[Tensor, Tensor]:
    if kernels.usable(x):
        return kernels.forward_pack(x, op, lo, hi, closed_lo, closed_hi)
    if triton_kernels.usable(x):
        return triton_kernels.forward_pack(x, op, lo, hi, closed_lo, closed_hi)
    y = torch.relu(x) if op == kernels.FORWARD_OPS["relu"] else (x > 0).to(x.dtype)
    return y, _pack_interval_eager(x, lo, hi, closed_lo, closed_hi)


@torch.library.custom_op("harness::forward_pack", mutates_args=())
def _forward_pack_op(x: Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> tuple[Tensor, Tensor]:
    return _forward_pack_eager(x, op, lo, hi, closed_lo, closed_hi)


@_forward_pack_op.register_fake
def _(x: Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> tuple[Tensor, Tensor]:
    return torch.empty_like(x, memory_format=torch.contiguous_format), x.new_empty((packed_size(x.numel()),), dtype=torch.uint8)


def forward_pack(x: Tensor, op: int, interval) -> tuple[Tensor, Tensor]:
    """(y, packed gate) with y = relu(x) (op 1) or step(x) (op 2), fused in one pass on CPU float32."""
    args = (op, *interval.kernel_args())
    if torch.compiler.is_compiling():
        ops = kernels.graph_ops(x)
        if ops is not None:
            return ops.gate_forward(x, *args)
        return _forward_pack_op(x, *args)
    return _forward_pack_eager(x, *args)

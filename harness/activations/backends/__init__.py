"""How a pair's bit work runs: the one selector (`backend_for`) and the backends it picks from.

- reference.py: plain tensor ops, any device and dtype; the oracle every backend is tested
  against bit for bit.
- numpy_cpu.py: numpy's packbits and compares, for CPU tensors the C++ kernels do not take.
- cpu.py: the fused C++ kernels (csrc/, built by kernels.py) for float32 CPU tensors.
- triton.py: the Triton kernels (triton_kernels.py) for CUDA tensors.
- graph.py: inside torch.compile graphs: gates as plain tensor ops Inductor fuses, codes and
  jamming as dispatcher ops (ops.py holds the `harness::*` ops and every fake implementation).
- params.py: a rule's parameters as Python numbers (eager kernels) and as tensors (graphs).
- switch.py: the one enable switch of the compiled kernels (HARNESS_KERNELS=0).

The functions below are entry points with plain arguments (tests, scripts); rules call
`backend_for(t).<operation>` with their prepared parameters.
"""
from __future__ import annotations

from torch import Tensor

from .params import CodeTable, FixedKeys, GateParams
from .select import BACKENDS, CPU, GRAPH, NUMPY, REFERENCE, TRITON, backend_for, compile_model
from .switch import enabled, set_enabled


def pack_bits(mask: Tensor) -> Tensor:
    """Pack a bool tensor (read in row-major order) into ceil(n/8) bytes."""
    return backend_for(mask).pack_bits(mask)


def unpack_bits(packed: Tensor, n: int) -> Tensor:
    """The first `n` bits of `packed` as a flat bool tensor."""
    return backend_for(packed).unpack_bits(packed, n)


def pack_interval(x: Tensor, interval) -> Tensor:
    """Pack the gate 1[x in interval] (an `Interval`) into ceil(n/8) bytes."""
    return backend_for(x).pack_interval(x, GateParams.of(interval))


def encode_codes(x: Tensor, borders: Tensor, bits: int) -> Tensor:
    """code(x) = #{borders < x} (= bucketize; NaN -> 0), packed into `bits` planes; `borders`
    sorted, in x's dtype and on its device."""
    return backend_for(x).encode_codes(x, borders, bits, 0)[1]


def decode_levels(packed: Tensor, n: int, bits: int, levels: Tensor) -> Tensor:
    """levels[code] for each of the `n` packed codes, as a flat tensor in levels' dtype."""
    return backend_for(packed).decode_levels(packed, n, bits, levels)


def decode_mul(grad: Tensor, packed: Tensor, bits: int, levels: Tensor) -> Tensor:
    """grad * levels[code] for the codes packed by `encode_codes`."""
    return backend_for(grad).decode_mul(grad, packed, levels, bits)


def jam_mul(grad: Tensor, packed: Tensor | None, key_a: int, key_b: int) -> Tensor:
    """grad * gate * u, u from `packing.hash_uniform_reference(n, key_a, key_b)` (gate: the
    packed bits, or none)."""
    return backend_for(grad).jam_mul(grad, packed, FixedKeys(key_a, key_b))


__all__ = [
    "BACKENDS", "CPU", "GRAPH", "NUMPY", "REFERENCE", "TRITON", "CodeTable", "FixedKeys", "GateParams",
    "backend_for", "compile_model", "decode_levels", "decode_mul", "enabled", "encode_codes", "jam_mul",
    "pack_bits", "pack_interval", "set_enabled", "unpack_bits",
]

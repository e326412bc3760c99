"""The dispatcher ops compiled graphs call for few-bit codes and jamming, and every fake (meta)
implementation the tracer needs.

Two namespaces hold ops of the same schemas: `harness_kernels::*` is the C++ extension's
(TORCH_LIBRARY in csrc/, CPU float32, no Python on the call), `harness::*` is defined here for
every other tensor and runs the eager backend (`select.backend_for`) of its inputs. The graph
backend picks between them per tensor. Both get their fakes from `_FAKES` below.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .. import packing

NAMESPACE = "harness"


def _like(t: Tensor) -> Tensor:
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def _forward_and_state(x: Tensor, op: int, nbytes: int) -> tuple[Tensor, Tensor]:
    return (_like(x) if op else x.new_empty((0,))), x.new_empty((nbytes,), dtype=torch.uint8)


_FAKES = {
    "gate_forward": lambda x, op, lo, hi, closed_lo, closed_hi: _forward_and_state(x, op, packing.packed_size(x.numel())),
    "gate_mul": lambda grad, packed, lo, hi: _like(grad),
    "encode_codes": lambda x, borders, bits, op: _forward_and_state(x, op, packing.packed_size(x.numel(), bits)),
    "decode_mul": lambda grad, packed, levels, bits: _like(grad),
    "jam_mul": lambda grad, packed, keys: _like(grad),
}


def register_kernel_fakes() -> None:
    """Register the fakes of the C++ ops (called once, after the extension is loaded)."""
    for name in ("gate_forward", "gate_mul", "encode_codes", "decode_mul", "jam_mul"):
        torch.library.register_fake(f"harness_kernels::{name}")(_FAKES[name])


def _backend(t: Tensor):
    from .select import backend_for

    return backend_for(t)


@torch.library.custom_op(f"{NAMESPACE}::encode_codes", mutates_args=())
def _encode_codes(x: Tensor, borders: Tensor, bits: int, op: int) -> tuple[Tensor, Tensor]:
    y, packed = _backend(x).encode_codes(x, borders, bits, op)
    return (y if y is not None else x.new_empty((0,))), packed


@torch.library.custom_op(f"{NAMESPACE}::decode_mul", mutates_args=())
def _decode_mul(grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
    return _backend(grad).decode_mul(grad, packed, levels, bits)


@torch.library.custom_op(f"{NAMESPACE}::jam_mul", mutates_args=())
def _jam_mul(grad: Tensor, packed: Tensor, keys: Tensor) -> Tensor:
    from .params import FixedKeys

    return _backend(grad).jam_mul(grad, packed if packed.numel() else None, FixedKeys(*keys.tolist()))


for _op in (_encode_codes, _decode_mul, _jam_mul):
    _op.register_fake(_FAKES[_op._name])


def namespace():
    """`torch.ops.harness`, with this module's ops defined."""
    return getattr(torch.ops, NAMESPACE)

"""The dispatcher ops compiled graphs call for few-bit codes and jamming, and every fake (meta)
implementation the tracer needs.

Two namespaces hold ops of the same schemas: `harness_kernels::*` is the C++ extension's
(TORCH_LIBRARY in csrc/, CPU float32, no Python on the call), `harness::*` is defined here for
every other tensor and runs the eager backend (`select.backend_for`) of its inputs. The graph
backend picks between them per tensor. Both get their fakes from `_FAKES` below. `harness::`
also holds the gates' graph ops (`gate_forward_g`, `gate_mul_g`, parameters as tensors, and
`gate_select_g` for levels (0, 1), which reads none), which
AOTAutograd expands into plain ops for static shapes and into opaque ops that call the eager
kernels (`gate_forward_t`, `gate_mul_t`) for symbolic ones.
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
    "gate_forward_p": lambda x, op, params: _forward_and_state(x, op, packing.packed_size(x.numel())),
    "gate_mul_p": lambda grad, packed, params: _like(grad),
    "gate_forward_inplace_p": lambda x, op, params: x.new_empty((packing.packed_size(x.numel()),), dtype=torch.uint8),
    "gate_mul_inplace": lambda grad, packed, lo, hi: None,
    "gate_mul_inplace_p": lambda grad, packed, params: None,
    "encode_codes": lambda x, borders, bits, op: _forward_and_state(x, op, packing.packed_size(x.numel(), bits)),
    "decode_mul": lambda grad, packed, levels, bits: _like(grad),
    "jam_mul": lambda grad, packed, keys: _like(grad),
    # harness:: only: gates with tensor parameters (graphs with dynamic shapes, see graph.py)
    "gate_forward_t": lambda x, op, params: _forward_and_state(x, op, packing.packed_size(x.numel())),
    "gate_mul_t": lambda grad, packed, params: _like(grad),
}


def register_kernel_fakes() -> None:
    """Register the fakes of the C++ ops (called once, after the extension is loaded)."""
    for name in ("gate_forward", "gate_mul", "gate_forward_p", "gate_mul_p", "gate_forward_inplace_p", "gate_mul_inplace",
                 "gate_mul_inplace_p", "encode_codes", "decode_mul", "jam_mul"):
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


class _Gate:
    """The Python-number view of a gate's parameter tensor (`params.GateParams.values`): what
    the eager backends read (forward_pack only the interval, gate_mul only the levels)."""

    __slots__ = ("kernel_args", "levels")

    def __init__(self, kernel_args=(0.0, 0.0, True, True), levels=(0.0, 1.0)):
        self.kernel_args, self.levels = kernel_args, levels


@torch.library.custom_op(f"{NAMESPACE}::gate_forward_t", mutates_args=())
def _gate_forward_t(x: Tensor, op: int, params: Tensor) -> tuple[Tensor, Tensor]:
    lo, hi, closed_lo, closed_hi = params[:4].tolist()
    y, packed = _backend(x).forward_pack(x, op, _Gate(kernel_args=(lo, hi, bool(closed_lo), bool(closed_hi))))
    return (y if y is not None else x.new_empty((0,))), packed


@torch.library.custom_op(f"{NAMESPACE}::gate_mul_t", mutates_args=())
def _gate_mul_t(grad: Tensor, packed: Tensor, params: Tensor) -> Tensor:
    return _backend(grad).gate_mul(grad, packed, _Gate(levels=tuple(params[4:6].tolist())))


for _op in (_encode_codes, _decode_mul, _jam_mul, _gate_forward_t, _gate_mul_t):
    _op.register_fake(_FAKES[_op._name])


# The gate ops compiled graphs call (graph.py). Implemented CompositeImplicitAutograd, so
# AOTAutograd replaces them while it traces, when the sizes are known to be concrete or
# symbolic (Dynamo shows user code symbolic sizes as plain ints): with concrete sizes by the
# plain-op forms Inductor fuses, with symbolic ones by the opaque tensor-parameter ops above.
_LIB = torch.library.Library(NAMESPACE, "FRAGMENT")
_LIB.define("gate_forward_g(Tensor x, int op, Tensor params) -> (Tensor, Tensor)")
_LIB.define("gate_mul_g(Tensor grad, Tensor packed, Tensor params) -> Tensor")
_LIB.define("gate_select_g(Tensor grad, Tensor packed) -> Tensor")  # gate_mul_g for levels (0, 1)


def _symbolic(t: Tensor) -> bool:
    return isinstance(t.numel(), torch.SymInt)


#: From this many elements on, a float32 CPU gate in a graph with static shapes calls the C++
#: kernels (packing.py's byte layout) instead of expanding into plain ops. Per call: Inductor's
#: fused pack costs ~1.8x a ReLU's kernel (4.5 against 2.6 us at 32768 elements, 183 against
#: ~100 us at 262144), the extern call a fixed few us more. Whole compiled steps could not tell
#: the two apart at 256x128 (1.036x vs 1.072x compiled native ReLU in one run, 1.045x vs 1.017x in
#: the next: within the noise), so the switch sits where the per-call figures clearly favour C++.
EXTERN_MIN_ELEMENTS = 1 << 16
#: Those calls work in place, as Inductor's own ReLU kernels do: the gate writes y over its input
#: (`gate_forward_inplace_p`) and the backward its result over the incoming gradient
#: (`gate_mul_inplace`), each on a clone that Inductor's reinplacing removes where the input has
#: no other use (a matmul's output). Out of place, each wrote a new buffer: at 256x1024 the eager
#: forward took 93 us against 34 us in place (torch.relu 92 us, relu_ 21 us).
INPLACE = True


def _extern(t: Tensor) -> bool:
    """Whether a gate on `t` (static shape) runs the C++ kernels in its graph."""
    from .. import kernels
    from . import switch

    return (t.numel() >= EXTERN_MIN_ELEMENTS and t.dtype == torch.float32 and t.device.type == "cpu"
            and switch.enabled() and kernels._module is not None)


def _on_clone(kernel, t: Tensor, *args):
    """(t', kernel(t', *args)) for a clone t' of `t` that the in-place `kernel` overwrites: the
    clone is what Inductor's reinplacing removes where `t` has no other use (see INPLACE)."""
    out = t.clone()
    return out, kernel(out, *args)


def _gate_forward_g(x, op, params):
    if _symbolic(x):
        return namespace().gate_forward_t(x, op, params)
    if _extern(x):
        if op and INPLACE and x.is_contiguous():
            return _on_clone(torch.ops.harness_kernels.gate_forward_inplace_p, x, op, params)
        return torch.ops.harness_kernels.gate_forward_p(x, op, params)
    from .graph import plain_forward_pack

    return plain_forward_pack(x, op, params)


# The backward follows the forward's choice by the state's dtype: uint8 bytes (the C++ kernels'
# or the opaque ops' layout) or int32 words (graph.py's word blocks).
def _gate_mul_g(grad, packed, params):
    if _symbolic(grad):
        return namespace().gate_mul_t(grad, packed, params)
    if packed.dtype == torch.uint8:
        if INPLACE and grad.is_contiguous():
            return _on_clone(torch.ops.harness_kernels.gate_mul_inplace_p, grad, packed, params)[0]
        return torch.ops.harness_kernels.gate_mul_p(grad, packed, params)
    from .graph import plain_gate_mul

    return plain_gate_mul(grad, packed, params)


def _gate_select_g(grad, packed):
    if _symbolic(grad):  # gate_mul_t reads only the levels of its parameters: (0, 1)
        unit = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64, device=grad.device)
        return namespace().gate_mul_t(grad, packed, unit)
    if packed.dtype == torch.uint8:
        if INPLACE and grad.is_contiguous():
            return _on_clone(torch.ops.harness_kernels.gate_mul_inplace, grad, packed, 0.0, 1.0)[0]
        return torch.ops.harness_kernels.gate_mul(grad, packed, 0.0, 1.0)
    from .graph import plain_gate_select

    return plain_gate_select(grad, packed)


_LIB.impl("gate_forward_g", _gate_forward_g, "CompositeImplicitAutograd")
_LIB.impl("gate_select_g", _gate_select_g, "CompositeImplicitAutograd")
_LIB.impl("gate_mul_g", _gate_mul_g, "CompositeImplicitAutograd")


def namespace():
    """`torch.ops.harness`, with this module's ops defined."""
    return getattr(torch.ops, NAMESPACE)

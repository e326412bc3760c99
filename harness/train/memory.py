"""What a model keeps for backward in one training step, as the run record stores it.

The counting itself is harness.measure's (one counter for the trainer, the benchmark and the
tests): exact, device-independent saved-tensor bytes, deduplicated by storage, so they are the
figure to compare rules by (docs/DESIGN.md section 2: store the least that g needs). This module
puts them in the record's shape (metrics.memory.saved_bytes_per_step, metrics.memory.model) and
measures the same model with torch's native ops for the comparison.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from harness.activations import ActivationPair
from harness.measure import PeakMemory, count_saved  # PeakMemory: the trainer imports it from here


def saved_bytes_by_activation(model: nn.Module, fn: Callable[[], Any]) -> dict:
    """Saved-tensor bytes of `fn()` split into what the ActivationPair modules add and the rest.

    Returns {"activations", "other", "total", "shared"} (the record's
    metrics.memory.saved_bytes_per_step): "activations" = bytes saved only by the pairs (their
    marginal cost), "other" = everything else, "total" = activations + other, "shared" = the part
    of "other" that the pairs saved too (a tanh pair's y is also the next Linear's input). See
    harness.measure.SavedBytesCounter for the deduplication.
    """
    saved = count_saved(fn, model)
    return {"activations": saved.pair, "other": saved.other, "total": saved.total, "shared": saved.shared}


# ---------------------------------------------------------------------------- the model against native ops

# torch's own module for each forward (parameters by the forward's names). Step and sign have no
# native op with a gradient (their derivative is zero), SiLU with beta != 1 has none either.
_NATIVE: dict[str, Callable[..., nn.Module | None]] = {
    "identity": lambda: nn.Identity(),
    "relu": lambda: nn.ReLU(),
    "relu6": lambda: nn.ReLU6(),
    "leaky_relu": lambda slope: nn.LeakyReLU(slope),
    "elu": lambda alpha: nn.ELU(alpha),
    "selu": lambda: nn.SELU(),
    "celu": lambda alpha: nn.CELU(alpha),
    "gelu": lambda approximate: nn.GELU(approximate=approximate),
    "silu": lambda beta: nn.SiLU() if beta == 1.0 else None,
    "mish": lambda: nn.Mish(),
    "softplus": lambda beta: nn.Softplus(beta=beta),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "hardtanh": lambda min_val, max_val: nn.Hardtanh(min_val, max_val),
    "hardsigmoid": lambda: nn.Hardsigmoid(),
    "hardswish": lambda: nn.Hardswish(),
}


def native_module(forward: str, params: dict[str, Any] | None = None) -> nn.Module | None:
    """torch's own activation module computing `forward` with `params`, or None where torch has none
    (step, sign; silu with beta != 1)."""
    make = _NATIVE.get(forward)
    return make(**(params or {})) if make is not None else None


def _pair_slots(model: nn.Module) -> list[tuple[nn.Module, str, ActivationPair]]:
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, ActivationPair)]


def non_parameter_saved_bytes(model: nn.Module, fn: Callable[[], Any]) -> int:
    """Deduplicated bytes autograd saves while `fn()` runs, minus the storage of `model`'s parameters
    (weights saved for backward exist anyway): the memory a training step keeps for backward."""
    saved = count_saved(fn)
    return saved.total - saved.bytes_of(model.parameters())


def model_saved_memory(model: nn.Module, fn: Callable[[], Any]) -> dict:
    """What the whole model keeps for backward with its pairs, and with torch's native op instead.

    `fn()` runs a forward (and loss) of `model`. Both figures are `non_parameter_saved_bytes`:
    deduplicated by storage, so native ReLU's saved output, which is the same storage as the next
    Linear's saved input, costs nothing extra, while a 1-bit mask costs 1/32 of it extra; GELU and
    SiLU save their input, which nothing else shares, so few-bit rules do save there
    (docs/DESIGN.md section 6). For the native figure every ActivationPair is swapped in place for
    `native_module` of its forward, measured, and put back (also when `fn` raises).

    Returns {"saved_bytes", "native_saved_bytes", "vs_native" (= saved / native), "native_op"
    (module class names, or None), "note", "method"}; the native entries are None where a pair's
    forward has no native op (step, sign), and "note" says why.
    """
    saved = non_parameter_saved_bytes(model, fn)
    out = {"saved_bytes": saved, "native_saved_bytes": None, "vs_native": None, "native_op": None, "note": None,
           "method": "saved_tensors_hooks, deduplicated by storage, parameters excluded, one training forward"}
    slots = _pair_slots(model)
    if not slots:
        out["note"] = "no activation pair in the model"
        return out
    natives: dict[int, nn.Module] = {}
    for _, _, pair in slots:
        if id(pair) not in natives:
            forward = pair.spec.forward
            native = native_module(forward.name, dict(forward.params))
            if native is None:
                out["note"] = f"torch has no native op with a gradient for forward {forward.name!r}"
                return out
            natives[id(pair)] = native.to(next(model.parameters(), torch.empty(0)).device)
    try:
        for parent, name, pair in slots:
            setattr(parent, name, natives[id(pair)])
        native_bytes = non_parameter_saved_bytes(model, fn)
    finally:
        for parent, name, pair in slots:
            setattr(parent, name, pair)
    out.update(native_saved_bytes=native_bytes, vs_native=saved / native_bytes if native_bytes else None,
               native_op=", ".join(sorted({type(m).__name__ for m in natives.values()})))
    return out


__all__ = ["PeakMemory", "model_saved_memory", "native_module", "non_parameter_saved_bytes", "saved_bytes_by_activation"]

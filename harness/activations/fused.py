"""Fused backward for smooth rules: g(x) * dL/dy compiled into one elementwise kernel.

A smooth rule written in tensor ops (b_silu: sigmoid, add, mul, ...) runs as 5-8 separate
passes over memory in eager mode, 3-4x the cost of torch's single-kernel SiLU backward. Any
registered rule is compiled here with torch.compile (Inductor emits one vectorised loop), once
per (rule, parameters): first for the shape it sees (a static kernel, ~8 us less per call than a
dynamic one), then once more with dynamic shapes if another shape comes (torch.compile's
default), for tensors of at least `FUSE_MIN_NUMEL` elements:
below that the pass count does not matter and compile time would. HARNESS_FUSE=0 disables it;
a failed compile falls back to the eager formula (warned once).
"""
from __future__ import annotations

import logging
import os
import types
from typing import Any, Callable

import torch
from torch import Tensor

log = logging.getLogger(__name__)
FUSE_MIN_NUMEL = 1 << 16
_compiled: dict[tuple, Callable[[Tensor, Tensor], Tensor] | None] = {}


def enabled() -> bool:
    """Whether smooth-rule backward passes may be compiled (HARNESS_FUSE != '0')."""
    return os.environ.get("HARNESS_FUSE", "1") != "0"


def fused_grad(fn: Callable[..., Tensor], params: dict[str, Any], saved: Tensor, grad_output: Tensor) -> Tensor | None:
    """dL/dy * fn(saved, **params) as one compiled kernel, or None where it does not apply."""
    if (not enabled() or torch.compiler.is_compiling() or saved.numel() < FUSE_MIN_NUMEL
            or saved.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16)):
        return None
    key = (fn, tuple(sorted(params.items())), saved.device.type, saved.dtype)
    if key not in _compiled:
        def grad(s: Tensor, g: Tensor) -> Tensor:
            return g * fn(s, **params)

        # Dynamo caches compiled code per code object, with a small recompile limit: one shared
        # `grad` code object for every rule would stop fusing after 8 (rule, dtype) variants.
        # A fresh code object per key gives each its own cache entry.
        name = f"fused_grad_{len(_compiled)}"
        unique = types.FunctionType(grad.__code__.replace(co_name=name), grad.__globals__, name, None, grad.__closure__)
        _compiled[key] = torch.compile(unique, dynamic=None, fullgraph=True)
    compiled = _compiled[key]
    if compiled is None:
        return None
    try:
        return compiled(saved, grad_output)
    except Exception as exc:  # no C++ compiler, unsupported op, ...: stay correct, warn once
        _compiled[key] = None
        log.warning("harness: could not fuse the backward of %s (%s: %s); using the eager formula",
                    getattr(fn, "__qualname__", fn), type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None

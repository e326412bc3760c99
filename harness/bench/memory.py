"""Bytes saved for backward, measured with torch.autograd.graph.saved_tensors_hooks.

Every tensor autograd keeps for the backward pass goes through the pack hook (torch's own ops
and `ctx.save_for_backward` in custom Functions alike), so the sum of their sizes is what the
graph holds. Expected values per element (docs/DESIGN.md section 2): 0 for constant rules, 1/8 for
1-bit rules, b/8 for b-bit codes, the element size for rules that keep x or y. Native ReLU keeps
its output: 4 bytes per float32 element.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from harness.activations import Saves


@dataclass(frozen=True)
class SavedState:
    """What one forward call saved: total bytes, and the bytes that are new tensors.

    `new_bytes` excludes tensors that alias the input or the output (saving x or y costs no
    extra write, only the memory of keeping them alive); `bytes` counts everything kept.
    """

    bytes: int
    new_bytes: int
    numel: int

    @property
    def per_element(self) -> float:
        """Saved bytes per element of the activation."""
        return self.bytes / self.numel

    @property
    def new_per_element(self) -> float:
        """Newly written saved bytes per element."""
        return self.new_bytes / self.numel


def _storage_key(t: Tensor) -> tuple:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel(), t.dtype)


def measure_saved(fn: Callable[[Tensor], Tensor], x: Tensor) -> SavedState:
    """Run `y = fn(x)` under saved-tensor hooks and sum the distinct tensors saved for backward."""
    seen: set[tuple] = set()
    saved: list[Tensor] = []

    def pack(t: Tensor) -> Tensor:
        """Record each distinct saved tensor; keep the tensor itself (no offloading)."""
        key = _storage_key(t)
        if key not in seen:  # a tensor saved twice is held once
            seen.add(key)
            saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    aliases = {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
    total = sum(t.numel() * t.element_size() for t in saved)
    new = sum(t.numel() * t.element_size() for t in saved if t.untyped_storage().data_ptr() not in aliases)
    return SavedState(bytes=total, new_bytes=new, numel=x.numel())


def expected_bytes_per_element(saves: Saves, bits: int, element_size: int) -> float:
    """What the rule should store per element: 0, bits/8, or the element size (x or y)."""
    if saves is Saves.NOTHING:
        return 0.0
    if saves in (Saves.BITS, Saves.CODES):
        return max(bits, 1) / 8.0
    return float(element_size)

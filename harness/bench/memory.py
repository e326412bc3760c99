"""Bytes saved for backward per element of one activation call (the benchmark's memory column).

Counted with harness.measure's saved-bytes counter (the one the trainer and the tests use), so a
benchmark row and a run record agree. Expected values per element (docs/DESIGN.md section 2): 0 for
constant rules, 1/8 for 1-bit rules, b/8 for b-bit codes, the element size for rules that keep x or
y. Native ReLU keeps its output: 4 bytes per float32 element.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from harness.activations import Saves
from harness.measure import SavedBytesCounter


@dataclass(frozen=True)
class SavedState:
    """What one forward call saved: total bytes, and the bytes that are new tensors.

    `new_bytes` excludes storages of the input or the output (saving x or y costs no extra write,
    only the memory of keeping them alive); `bytes` counts everything kept, each storage once.
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


def measure_saved(fn: Callable[[Tensor], Tensor], x: Tensor) -> SavedState:
    """Run `y = fn(x)` and count what autograd saved for backward (deduplicated by storage)."""
    with SavedBytesCounter() as counter:
        y = fn(x)
    saved = counter.result
    return SavedState(bytes=saved.total, new_bytes=saved.total - saved.bytes_of((x, y)), numel=x.numel())


def expected_bytes_per_element(saves: Saves, bits: int, element_size: int) -> float:
    """What the rule should store per element: 0, bits/8, or the element size (x or y)."""
    if saves is Saves.NOTHING:
        return 0.0
    if saves in (Saves.BITS, Saves.CODES):
        return max(bits, 1) / 8.0
    return float(element_size)

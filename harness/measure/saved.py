"""The one saved-bytes counter: what autograd keeps for the backward pass, each storage once.

Every tensor autograd saves goes through the pack hook of `torch.autograd.graph.saved_tensors_hooks`
(torch's own ops and `ctx.save_for_backward` in custom Functions alike). The counter keys each
saved tensor by the storage it keeps alive, (device, storage address, storage bytes), and counts a
storage once however often it is saved: autograd often saves one storage twice (a pair's output y,
saved by an OUTPUT rule, is also the next Linear's saved input) and it is held once. A view keeps
its whole storage alive (a Linear saves its weight as a transposed view), so the storage's bytes
are what is counted, not the view's.

Saves are also split by where they happen: inside an ActivationPair module ("pair", our
activation) or anywhere else ("other"). A storage saved in both places is "other", because the
pair adds no memory for it (docs/DESIGN.md section 6).

The benchmark (per element of one activation), the trainer (a whole model step) and the tests all
count through `SavedBytesCounter`, so their numbers agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor, nn

from harness.activations import ActivationPair

Key = tuple  # (device, storage address, storage bytes), or ("nostorage", index)


def storage_key(t: Tensor) -> tuple | None:
    """(device, storage address, storage bytes): the memory `t` keeps alive; None without storage."""
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # tensors without storage (some subclasses)
        return None
    return (str(t.device), storage.data_ptr(), storage.nbytes())


@dataclass(frozen=True)
class SavedBytes:
    """What autograd saved in one region, in bytes, each distinct storage counted once.

    - total / count: distinct storages saved, and their bytes (the memory the graph holds).
    - total_with_duplicates / count_with_duplicates: every save counted (the naive sum).
    - by_dtype: `total` split by dtype name ("torch.float32", "torch.uint8", ...).
    - pair: bytes of storages saved only inside ActivationPair modules (our activation's cost).
    - other: bytes of every other storage (total = pair + other).
    - shared: the part of `other` that a pair saved too (e.g. a tanh pair's y, the next Linear's input).
    """

    total: int
    count: int
    total_with_duplicates: int
    count_with_duplicates: int
    by_dtype: dict[str, int]
    pair: int
    other: int
    shared: int
    sizes: Mapping[Key, int] = field(default_factory=dict, repr=False)  # bytes per distinct storage

    def bytes_of(self, tensors: Iterable[Tensor]) -> int:
        """Bytes of the saved storages that back `tensors` (parameters, the input, the output),
        each storage once: the part of `total` that exists anyway."""
        keys = {storage_key(t) for t in tensors} - {None}
        return sum(self.sizes[k] for k in keys if k in self.sizes)

    def per_element(self, numel: int) -> float:
        """Saved bytes per element of an activation with `numel` elements."""
        if numel <= 0:
            raise ValueError(f"per_element needs a positive element count, got {numel}")
        return self.total / numel


class SavedBytesCounter:
    """Count the bytes autograd saves while the `with` block runs; the result is `.result`.

    Use as::

        with SavedBytesCounter(model) as counter:
            loss = loss_fn(model(xb), yb)
        counter.result.total, counter.result.pair, counter.result.bytes_of(model.parameters())

    `model` (optional) is searched for ActivationPair modules, whose forward calls mark their saves
    as "pair"; without it everything is "other". Saved tensors are held until the block ends: a
    temporary that autograd saved and released could otherwise have its address reused by another
    storage of the same size, and the two would be merged by the deduplication. Hooks are removed
    on exit, also when the block raises.
    """

    def __init__(self, model: nn.Module | None = None):
        self.model = model
        self.result: SavedBytes | None = None
        self._entries: list[tuple[Key | None, Tensor, bool]] = []
        self._depth = 0  # a counter, not a flag, so nested pair calls cannot clear it early
        self._handles: list[Any] = []
        self._hooks: Any = None

    def _pack(self, t: Tensor) -> Tensor:
        self._entries.append((storage_key(t), t, self._depth > 0))
        return t

    def _enter_pair(self, module, args) -> None:
        self._depth += 1

    def _leave_pair(self, module, args, output) -> None:
        self._depth -= 1

    def __enter__(self) -> "SavedBytesCounter":
        self.result, self._entries, self._depth = None, [], 0
        for module in self.model.modules() if self.model is not None else ():
            if isinstance(module, ActivationPair):
                self._handles.append(module.register_forward_pre_hook(self._enter_pair))
                self._handles.append(module.register_forward_hook(self._leave_pair))
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.result = _tally(self._entries)
        self._entries = []  # release the saved tensors


def _tally(entries: list[tuple[Key | None, Tensor, bool]]) -> SavedBytes:
    """Deduplicate `(key, tensor, in_pair)` saves by storage and add them up."""
    sizes: dict[Key, int] = {}
    dtypes: dict[Key, str] = {}
    places: dict[Key, set[bool]] = {}
    dup_total = 0
    for i, (key, tensor, in_pair) in enumerate(entries):
        nbytes = key[2] if key is not None else tensor.numel() * tensor.element_size()
        key = key if key is not None else ("nostorage", i)  # cannot be deduplicated: counted each time
        dup_total += nbytes
        sizes[key] = nbytes
        dtypes.setdefault(key, str(tensor.dtype))
        places.setdefault(key, set()).add(in_pair)
    by_dtype: dict[str, int] = {}
    for key, nbytes in sizes.items():
        by_dtype[dtypes[key]] = by_dtype.get(dtypes[key], 0) + nbytes
    pair = sum(sizes[k] for k, p in places.items() if p == {True})
    shared = sum(sizes[k] for k, p in places.items() if p == {True, False})
    total = sum(sizes.values())
    return SavedBytes(
        total=total, count=len(sizes), total_with_duplicates=dup_total, count_with_duplicates=len(entries),
        by_dtype=by_dtype, pair=pair, other=total - pair, shared=shared, sizes=sizes,
    )


def count_saved(fn, model: nn.Module | None = None) -> SavedBytes:
    """Run `fn()` (e.g. a forward and the loss) and return what autograd saved (see SavedBytesCounter)."""
    with SavedBytesCounter(model) as counter:
        fn()
    return counter.result


__all__ = ["SavedBytes", "SavedBytesCounter", "count_saved", "storage_key"]

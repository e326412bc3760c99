"""The one thread-setting context manager for measurements that pin torch's intra-op threads."""
from __future__ import annotations

import contextlib
import operator
from typing import Iterator

import torch


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the block with torch.set_num_threads(n), restoring the previous count afterwards
    (also when the block raises)."""
    if isinstance(n, bool) or not hasattr(n, "__index__") or operator.index(n) < 1:
        raise ValueError(f"num_threads needs a positive integer, got {n!r}")
    n = operator.index(n)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["num_threads"]

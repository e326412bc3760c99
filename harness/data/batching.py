"""Batches by index from tensors that already live on the device (no DataLoader, no workers).

For the small datasets here a DataLoader's per-sample collation costs more than the model step;
indexing a device tensor with a permutation is one gather per batch.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


class BatchIterator:
    """Iterate (xb, yb) mini-batches over aligned tensors `x`, `y` (first dim = samples).

    Each pass over the iterator is one epoch with a fresh permutation drawn from `generator`
    (so a seeded generator gives a reproducible sequence of epochs). With shuffle=False batches
    are contiguous slices (views, no copy). drop_last=True skips the final short batch, keeping
    every step the same size.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, shuffle: bool = True, drop_last: bool = True,
                 generator: torch.Generator | None = None):
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same number of samples, got {x.shape[0]} and {y.shape[0]}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        if len(self) == 0:
            raise ValueError(f"{x.shape[0]} samples with batch_size={batch_size} and drop_last={drop_last} "
                             f"give no batches; use a smaller batch_size or drop_last=False.")

    @property
    def num_samples(self) -> int:
        """Number of samples in the underlying tensors."""
        return int(self.x.shape[0])

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _permutation(self) -> Tensor:
        n, device = self.num_samples, self.x.device
        if self.generator is None:
            return torch.randperm(n, device=device)
        # randperm needs the generator on the device it runs on; draw where the generator lives
        # (e.g. a CPU generator for CUDA data) and move the indices, so either combination works.
        gen_device = self.generator.device
        if gen_device.type == device.type:
            return torch.randperm(n, generator=self.generator, device=device)
        return torch.randperm(n, generator=self.generator, device=gen_device).to(device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield one epoch of (xb, yb) batches."""
        n, b = self.num_samples, self.batch_size
        stop = (n // b) * b if self.drop_last else n
        if not self.shuffle:
            for i in range(0, stop, b):
                yield self.x[i:i + b], self.y[i:i + b]
            return
        perm = self._permutation()
        for i in range(0, stop, b):
            idx = perm[i:i + b]
            yield self.x[idx], self.y[idx]

    def forever(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield batches endlessly, epoch after epoch (reshuffled each epoch), for step-based training."""
        while True:
            yield from self

"""BatchIterator: epoch coverage, drop_last, determinism, forever(), device handling."""
from __future__ import annotations

import itertools

import pytest
import torch

from harness.data import BatchIterator


def _data(n: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    # x row i holds i, so every batch can be checked for x/y alignment and identity.
    idx = torch.arange(n, device=device)
    return idx.float().unsqueeze(1).repeat(1, 3), idx


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_epoch_covers_every_index_once_without_drop_last():
    x, y = _data(103)
    it = BatchIterator(x, y, 10, shuffle=True, drop_last=False, generator=_gen(0))
    batches = list(it)
    assert len(it) == 11 and len(batches) == 11
    assert [len(b[1]) for b in batches] == [10] * 10 + [3]
    seen = torch.cat([yb for _, yb in batches])
    assert torch.equal(seen.sort().values, torch.arange(103))
    assert not torch.equal(seen, torch.arange(103)), "shuffle=True returned the identity order"
    for xb, yb in batches:  # inputs and labels stay paired
        assert torch.equal(xb[:, 0].long(), yb)


def test_drop_last_skips_the_short_batch():
    x, y = _data(103)
    it = BatchIterator(x, y, 10, drop_last=True, generator=_gen(1))
    assert len(it) == 10
    epochs = [torch.cat([yb for _, yb in it]) for _ in range(5)]
    for e in epochs:
        assert e.numel() == 100 and e.unique().numel() == 100
    # Each epoch drops a different random 3, so over several epochs every sample is used.
    assert torch.cat(epochs).unique().numel() == 103


def test_exact_multiple_same_length_either_way():
    x, y = _data(40)
    assert len(BatchIterator(x, y, 8, drop_last=True)) == len(BatchIterator(x, y, 8, drop_last=False)) == 5


def test_same_generator_seed_same_order_and_epochs_reshuffle():
    x, y = _data(64)
    a = BatchIterator(x, y, 16, generator=_gen(7))
    b = BatchIterator(x, y, 16, generator=_gen(7))
    c = BatchIterator(x, y, 16, generator=_gen(8))
    order = lambda it: torch.cat([yb for _, yb in it])  # noqa: E731
    a1, b1, c1 = order(a), order(b), order(c)
    assert torch.equal(a1, b1)
    assert not torch.equal(a1, c1)
    a2, b2 = order(a), order(b)
    assert torch.equal(a2, b2)  # the generator stream stays in lockstep across epochs
    assert not torch.equal(a1, a2)  # and each epoch draws a new permutation


def test_no_shuffle_gives_sequential_views():
    x, y = _data(25)
    it = BatchIterator(x, y, 10, shuffle=False, drop_last=False)
    batches = list(it)
    assert torch.equal(torch.cat([yb for _, yb in batches]), torch.arange(25))
    # contiguous slices share storage with x: no copy per batch
    assert batches[1][0].untyped_storage().data_ptr() == x.untyped_storage().data_ptr()


def test_forever_crosses_epochs_and_reshuffles():
    x, y = _data(50)
    it = BatchIterator(x, y, 10, generator=_gen(3))
    stream = list(itertools.islice(it.forever(), 15))
    assert all(len(yb) == 10 for _, yb in stream)
    first = torch.cat([yb for _, yb in stream[:5]])
    second = torch.cat([yb for _, yb in stream[5:10]])
    assert torch.equal(first.sort().values, torch.arange(50))
    assert torch.equal(second.sort().values, torch.arange(50))
    assert not torch.equal(first, second)


def test_invalid_arguments_raise():
    x, y = _data(10)
    with pytest.raises(ValueError, match="same number of samples"):
        BatchIterator(x, y[:5], 2)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(x, y, 0)
    with pytest.raises(ValueError, match="no batches"):
        BatchIterator(x, y, 11, drop_last=True)
    assert len(BatchIterator(x, y, 11, drop_last=False)) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("gen_device", ["cpu", "cuda"])
def test_cuda_data_with_cpu_or_cuda_generator(gen_device):
    x, y = _data(100, "cuda")
    g = torch.Generator(device=gen_device).manual_seed(0)
    batches = list(BatchIterator(x, y, 32, drop_last=False, generator=g))
    assert all(xb.is_cuda and yb.is_cuda for xb, yb in batches)
    seen = torch.cat([yb for _, yb in batches]).cpu()
    assert torch.equal(seen.sort().values, torch.arange(100))

"""Seeded index splits: the train/test split of datasets that ship as one pool, and the val carve."""
from __future__ import annotations

import numpy as np

from harness.errors import ParameterError

# Distinct stream ids so the val carve never reuses the random numbers that generated the data
# (synthetic sets draw from `seed` too).
_STREAM_TEST = 1
_STREAM_VAL = 2


def split_counts(n: int, fraction: float, what: str) -> tuple[int, int]:
    """Return (n_keep, n_held) with n_held = round(fraction * n), at least 1 when fraction > 0.

    Raises ParameterError when the split would leave either side empty.
    """
    held = int(round(fraction * n))
    if fraction > 0 and held == 0:
        held = 1
    if held >= n or (fraction > 0 and n - held < 1):
        raise ParameterError(f"{what}={fraction} of {n} samples leaves no samples on one side; "
                         f"use a smaller fraction or more data.")
    return n - held, held


def random_split(n: int, n_held: int, seed: int, *, stream: str) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (keep_idx, held_idx): a seeded random subset of size `n_held` out of range(n).

    `stream` ("test" or "val") selects an independent random stream for the same seed.
    Indices are sorted so the kept samples stay in their original order.
    """
    stream_id = {"test": _STREAM_TEST, "val": _STREAM_VAL}[stream]
    rng = np.random.default_rng([int(seed), stream_id])
    perm = rng.permutation(n)
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train_idx, test_idx) with class proportions preserved (sklearn's splitter)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=fraction, random_state=int(seed), stratify=y)
    return np.sort(tr), np.sort(te)

"""sklearn's 8x8 handwritten digits (1797 samples, bundled with sklearn, no download)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .holdout import random_split, split_counts, stratified_split
from .registry import register_dataset
from .splits import RawData
from .validate import check_fraction


@register_dataset("digits")
def load_digits(*, root: Path, seed: int, download: bool, test_fraction: float = 0.2,
                stratify: bool = True, as_image: bool = False) -> RawData:
    """sklearn `load_digits`: 10 classes, pixel counts 0..16, seeded train/test split by `seed`.

    Default normalisation "scale16" divides by 16 into [0, 1], as Troiano et al. do.
    `as_image=True` gives (1, 8, 8) images (kind "image") instead of 64 features (kind "vector").
    `root` and `download` are unused (the data ships with sklearn).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    test_fraction = check_fraction("test_fraction", test_fraction, allow_zero=False)
    bunch = sk_load_digits()
    x = bunch.data.astype(np.float32)  # (1797, 64), integer values 0..16
    y = bunch.target.astype(np.int64)
    if stratify:
        tr, te = stratified_split(y, test_fraction, seed)
    else:
        _, n_test = split_counts(len(y), test_fraction, "test_fraction")
        tr, te = random_split(len(y), n_test, seed, stream="test")
    shape = (1, 8, 8) if as_image else (64,)
    x = x.reshape((-1,) + shape)
    return RawData(
        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        num_classes=10, input_shape=shape, kind="image" if as_image else "vector",
        default_normalize="scale16",
        meta={"source": "sklearn.datasets.load_digits"},
    )

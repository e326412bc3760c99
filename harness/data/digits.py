"""sklearn's 8x8 handwritten digits (1797 samples, bundled with sklearn, no download)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import ParameterError

from .holdout import random_split, split_counts, stratified_split
from .registry import register_dataset
from .splits import RawData

from .validate import check_fraction


@register_dataset("digits")
def load_digits(*, root: Path, seed: int, download: bool, test_fraction: float = 0.2,
                stratify: bool = True, as_image: bool = False, image_size: int = 8) -> RawData:
    """sklearn `load_digits`: 10 classes, pixel counts 0..16, seeded train/test split by `seed`.

    Default normalisation "scale16" divides by 16 into [0, 1], as Troiano et al. do.
    `as_image=True` gives (1, 8, 8) images (kind "image") instead of 64 features (kind "vector").
    `image_size=s` (8..64, images only) resizes them bilinearly to (1, s, s), e.g. 28 for an
    MNIST-shaped stand-in that LeNet-5 takes unchanged; the values stay in 0..16.
    `root` and `download` are unused (the data ships with sklearn).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    test_fraction = check_fraction("test_fraction", test_fraction, allow_zero=False)
    image_size = _check_image_size(image_size, as_image)
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
    if image_size != 8:
        x = _resize(x, image_size)
        shape = (1, image_size, image_size)
    return RawData(
        x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
        num_classes=10, input_shape=shape, kind="image" if as_image else "vector",
        default_normalize="scale16",
        meta={"source": "sklearn.datasets.load_digits", "image_size": image_size if as_image else None},
    )


def _check_image_size(image_size, as_image: bool) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 64:
        raise ParameterError(f"digits: image_size must be an integer in [8, 64] (the images are 8x8), got {image_size!r}")
    if image_size != 8 and not as_image:
        raise ParameterError(f"digits: image_size={image_size} needs as_image=true (vectors have no size to change)")
    return image_size


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, 1, 8, 8) images to (N, 1, size, size) (align_corners=False, as
    torchvision's Resize on tensors), float32."""
    import torch
    import torch.nn.functional as F

    out = F.interpolate(torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False)
    return out.numpy().astype(np.float32)

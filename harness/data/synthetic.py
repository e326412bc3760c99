"""Synthetic classification sets, generated from `seed` alone (same seed -> identical tensors)."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from harness.errors import ParameterTypeError

from .holdout import split_counts
from .registry import register_dataset
from .splits import RawData
from .validate import check_fraction, check_positive_float, check_positive_int


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@register_dataset("hamming")
def load_hamming(*, root: Path, seed: int, download: bool, num_samples: int = 2000, dim: int = 10,
                 threshold: float | None = None, test_fraction: float = 0.2) -> RawData:
    """Binary vectors in {0,1}^dim, label 1 iff Hamming weight (number of ones) > threshold.

    The single-unit-classifier task of the FreeGrad examples: linearly separable, so one unit
    with a good gradient can solve it. threshold defaults to dim / 2. Inputs are float 0/1.
    """
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    dim = check_positive_int("dim", dim)
    test_fraction = check_fraction("test_fraction", test_fraction, allow_zero=False)
    if threshold is None:
        threshold = dim / 2
    elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ParameterTypeError(f"threshold must be a number or None (= dim / 2), got {threshold!r}.")
    threshold = float(threshold)
    n_train, n_test = split_counts(num_samples, test_fraction, "test_fraction")
    g = _generator(seed)
    x = torch.randint(0, 2, (num_samples, dim), generator=g).to(torch.float32)
    y = (x.sum(dim=1) > threshold).to(torch.int64)
    return RawData(
        x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:],
        num_classes=2, input_shape=(dim,), kind="vector", default_normalize="none",
        meta={"source": "synthetic", "threshold": threshold},
    )


@register_dataset("teacher_student")
def load_teacher_student(*, root: Path, seed: int, download: bool, num_train: int = 4000,
                         num_test: int = 1000, dim: int = 20, hidden: int = 32,
                         num_classes: int = 4) -> RawData:
    """x ~ N(0, I_dim); label = argmax of a fixed random teacher MLP dim -> hidden (tanh) -> num_classes.

    Teacher weights use 1/sqrt(fan_in) Gaussian init so pre-activations are O(1) and tanh is
    neither linear nor saturated; the teacher is drawn from `seed` before the inputs.
    """
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    dim = check_positive_int("dim", dim)
    hidden = check_positive_int("hidden", hidden)
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    g = _generator(seed)
    w1 = torch.randn(dim, hidden, generator=g) / math.sqrt(dim)
    b1 = torch.randn(hidden, generator=g) * 0.1
    w2 = torch.randn(hidden, num_classes, generator=g) / math.sqrt(hidden)
    b2 = torch.randn(num_classes, generator=g) * 0.1
    x = torch.randn(num_train + num_test, dim, generator=g)
    y = (torch.tanh(x @ w1 + b1) @ w2 + b2).argmax(dim=1)
    return RawData(
        x_train=x[:num_train], y_train=y[:num_train], x_test=x[num_train:], y_test=y[num_train:],
        num_classes=num_classes, input_shape=(dim,), kind="vector", default_normalize="none",
        meta={"source": "synthetic"},
    )


def _spirals(n: int, noise: float, turns: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # Equal class sizes (up to one), then shuffled so batches are not sorted by class.
    y = torch.arange(n) % 2
    y = y[torch.randperm(n, generator=g)]
    # sqrt spreads points evenly along the arm (arc length grows with radius).
    t = torch.rand(n, generator=g).sqrt()
    theta = t * turns * 2 * math.pi + y * math.pi  # class 1 is class 0 rotated by half a turn
    r = t  # radius in [0, 1]
    x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)
    x = x + noise * torch.randn(n, 2, generator=g)
    return x, y


@register_dataset("spirals")
def load_spirals(*, root: Path, seed: int, download: bool, num_train: int = 1000, num_test: int = 1000,
                 noise: float = 0.1, turns: float = 1.5) -> RawData:
    """Two interleaved 2-D spirals (radius 0..1, `turns` revolutions) plus Gaussian noise of std `noise`."""
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    noise = check_positive_float("noise", noise, allow_zero=True)
    turns = check_positive_float("turns", turns)
    g = _generator(seed)
    x_tr, y_tr = _spirals(num_train, noise, turns, g)
    x_te, y_te = _spirals(num_test, noise, turns, g)
    return RawData(
        x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te,
        num_classes=2, input_shape=(2,), kind="vector", default_normalize="none",
        meta={"source": "synthetic"},
    )

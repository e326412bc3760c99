"""MNIST-1D (Greydanus & Steinbach), generated with the `mnist1d` package and cached as .npz.

The package builds the set procedurally from 10 templates, so nothing is downloaded: we call
`mnist1d.data.make_dataset(args)` with the package's own `seed` arg and cache the result under
`<root>/mnist1d/<key>.npz`, key = hash of the generation args (and package version).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from harness.errors import ParameterError

from .registry import register_dataset
from .splits import RawData
from .validate import check_positive_int

SEQ_LEN = 40  # the package's final_seq_length
NUM_CLASSES = 10
# The published MNIST-1D is the package default generated with seed 42.
PUBLISHED_SEED = 42


def generation_args(num_train: int, num_test: int, data_seed: int) -> dict[str, Any]:
    """Return the package's dataset-args dict for a num_train/num_test split generated with `data_seed`.

    The package makes `num_samples // 10` samples per class, so num_samples is rounded up to a
    multiple of 10; `load_mnist1d` trims the surplus.
    """
    from mnist1d import data as m1d

    total = num_train + num_test
    num_samples = -(-total // NUM_CLASSES) * NUM_CLASSES
    args = m1d.get_dataset_args(as_dict=True)
    args.pop("url", None)  # where the published pickle lives; irrelevant to generation
    args.update(num_samples=num_samples, train_split=num_train / num_samples, seed=int(data_seed))
    return args


def cache_key(args: dict[str, Any]) -> str:
    """Return a short stable hash of the generation args and the mnist1d package version."""
    blob = json.dumps({"args": args, "mnist1d": metadata.version("mnist1d")}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def _preserve_global_rng() -> Iterator[None]:
    # make_dataset calls np.random.seed/random.seed on the global generators; restore them so
    # loading data does not silently reseed the caller's numpy/random streams.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _generate(args: dict[str, Any]) -> dict[str, np.ndarray]:
    from mnist1d import data as m1d  # looked up at call time so tests can monkeypatch it
    from mnist1d.utils import ObjectView

    with _preserve_global_rng():
        d = m1d.make_dataset(ObjectView(dict(args)))
    # Re-join the package's split; load_mnist1d splits exactly at num_train, since the package's
    # int(len * train_split) can be off by one through float rounding.
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)
    return {"x": x, "y": y}


def _write_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Parallel sweep workers may generate the same set at once: write to a temp file and
    # rename, so a reader never sees a half-written cache.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_or_generate(args: dict[str, Any], cache_dir: Path) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Return (arrays, cache_path, cache_hit): read `<cache_dir>/<key>.npz` or generate and write it."""
    path = cache_dir / f"{cache_key(args)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {"x": z["x"], "y": z["y"]}, path, True
        except Exception as e:  # truncated/corrupt file: regenerate rather than fail the run
            warnings.warn(f"Ignoring unreadable mnist1d cache {path} ({e!r}); regenerating.", stacklevel=2)
    arrays = _generate(args)
    try:
        _write_atomic(path, arrays)
    except OSError as e:  # read-only root: the data is still usable, only slower next time
        warnings.warn(f"Could not write mnist1d cache {path} ({e!r}).", stacklevel=2)
    return arrays, path, False


def _load(root: Path, num_train: int, num_test: int, data_seed: int | None, seed: int) -> RawData:
    num_train = check_positive_int("num_train", num_train)
    num_test = check_positive_int("num_test", num_test)
    data_seed = seed if data_seed is None else data_seed
    if isinstance(data_seed, bool) or not isinstance(data_seed, int) or data_seed < 0:
        raise ParameterError(f"data_seed must be a non-negative int or None (use `seed`), got {data_seed!r}.")
    args = generation_args(num_train, num_test, data_seed)
    arrays, path, hit = load_or_generate(args, Path(root) / "mnist1d")
    x, y = arrays["x"], arrays["y"]
    return RawData(
        x_train=x[:num_train], y_train=y[:num_train],
        x_test=x[num_train:num_train + num_test], y_test=y[num_train:num_train + num_test],
        num_classes=NUM_CLASSES, input_shape=(SEQ_LEN,), kind="sequence",
        # The package already centres the whole set and scales it to unit std; the published
        # baselines train on these values as they are.
        default_normalize="none",
        meta={"source": "mnist1d.data.make_dataset", "cache_file": str(path), "cache_hit": hit,
              "data_seed": data_seed},
    )


@register_dataset("mnist1d")
def load_mnist1d(*, root: Path, seed: int, download: bool, num_train: int = 4000, num_test: int = 1000,
                 data_seed: int | None = PUBLISHED_SEED) -> RawData:
    """MNIST-1D: 10 classes of length-40 signals (kind "sequence"), 4000 train / 1000 test.

    `data_seed` is the package's generation seed; the default 42 reproduces the published set, so
    `seed` only drives the val carve. `data_seed=None` generates from `seed` instead.
    `download` is ignored: the set is generated locally.
    """
    return _load(root, num_train, num_test, data_seed, seed)


@register_dataset("mnist1d_large")
def load_mnist1d_large(*, root: Path, seed: int, download: bool, num_train: int = 40000, num_test: int = 10000,
                       data_seed: int | None = PUBLISHED_SEED) -> RawData:
    """MNIST-1D with 10x the data (40000 train / 10000 test); otherwise identical to "mnist1d".

    A separate name (not just bigger params) so reports never pool the two sizes under one label.
    """
    return _load(root, num_train, num_test, data_seed, seed)

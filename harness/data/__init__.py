"""Datasets as tensors on the device, and a fast in-memory batch iterator.

    splits = load_dataset("mnist1d", device="cuda", seed=0, val_fraction=0.1)
    for xb, yb in BatchIterator(splits.x_train, splits.y_train, 128, generator=g): ...

Importing this package registers every loader in DATASETS.
"""
from .batching import BatchIterator
from .errors import DatasetUnavailableError
from .registry import DATASETS, dataset_params, load_dataset, register_dataset
from .splits import DataSplits, RawData

# Imported for their @register_dataset side effect.
from . import digits, mnist1d, synthetic, torchvision_sets  # noqa: E402,F401  isort: skip

__all__ = [
    "DATASETS",
    "BatchIterator",
    "DataSplits",
    "DatasetUnavailableError",
    "RawData",
    "dataset_params",
    "load_dataset",
    "register_dataset",
]

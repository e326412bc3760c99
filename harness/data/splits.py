"""The containers a dataset loader produces: `RawData` (loader output) and `DataSplits` (final)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

KINDS = ("vector", "sequence", "image")


@dataclass
class RawData:
    """What a registered loader returns: un-normalised train/test arrays plus metadata.

    `load_dataset` turns this into `DataSplits` (validation carve, normalisation, dtype and
    device). Loaders may return numpy arrays or CPU tensors.
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    num_classes: int
    input_shape: tuple[int, ...]
    kind: str
    default_normalize: str
    meta: dict[str, Any] = field(default_factory=dict)


def _class_counts(y: Tensor | None, num_classes: int) -> list[int] | None:
    if y is None:
        return None
    return torch.bincount(y.detach().cpu(), minlength=num_classes).tolist()


@dataclass
class DataSplits:
    """A dataset held as tensors on one device, ready to be batched by index.

    Inputs are float32, labels int64 class indices in [0, num_classes). `input_shape` is the
    per-sample shape; `kind` tells models how to read it: "vector" (flat features),
    "sequence" (a 1-D signal of length L, fed to cnn1d/gru as one channel), "image" (C, H, W).
    `meta` records how the data was made (loader params, normalisation statistics, source).
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor | None
    y_val: Tensor | None
    num_classes: int
    input_shape: tuple[int, ...]
    kind: str
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Sizes, shapes, class counts and provenance as a JSON-serialisable dict for the run record."""
        return {
            "name": self.name,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "num_classes": int(self.num_classes),
            "num_train": int(self.x_train.shape[0]),
            "num_val": 0 if self.x_val is None else int(self.x_val.shape[0]),
            "num_test": int(self.x_test.shape[0]),
            "device": str(self.x_train.device),
            "x_dtype": str(self.x_train.dtype).removeprefix("torch."),
            "train_class_counts": _class_counts(self.y_train, self.num_classes),
            "val_class_counts": _class_counts(self.y_val, self.num_classes),
            "test_class_counts": _class_counts(self.y_test, self.num_classes),
            **_jsonable(self.meta),
        }


def _jsonable(obj: Any) -> Any:
    """Convert tensors/arrays/numpy scalars/tuples/paths in `obj` to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)

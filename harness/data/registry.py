"""The dataset registry and `load_dataset`, the one entry point the rest of the harness uses.

A loader is a function `loader(*, root, seed, download, **params) -> RawData` registered under a
name with `@register_dataset(name)` in DATASETS (a `harness.registry.Registry`). Its keyword
parameters (beyond root/seed/download) are the dataset's configurable params; `load_dataset`
checks user params against them so a typo in a config fails with the list of valid names. Bad
input raises the harness error family: UnknownNameError, ParameterError (harness.errors).
"""
from __future__ import annotations

import inspect
import numbers
from pathlib import Path
from typing import Any, Callable

import torch

from harness.errors import ParameterError, ParameterTypeError
from harness.registry import Registry
from harness.suggest import describe_unknown_keys

from .holdout import random_split, split_counts
from .normalize import apply_normalizer, check_normalize, fit_normalizer
from .splits import KINDS, DataSplits, RawData
from .validate import check_fraction

Loader = Callable[..., RawData]

#: name -> loader function. Filled by `@register_dataset` when `harness.data` is imported.
DATASETS: Registry[Loader] = Registry("dataset")

# Passed by load_dataset to every loader; not user params of a particular dataset.
_COMMON = ("root", "seed", "download")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering `loader` under `name` in DATASETS; a duplicate name is an error."""

    def deco(loader: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"Dataset {name!r} is already registered (by {DATASETS[name].__module__}).")
        params = inspect.signature(loader).parameters
        missing = [p for p in _COMMON if p not in params]
        if missing:
            raise TypeError(f"Loader for {name!r} must accept keyword args {_COMMON}; missing {missing}.")
        return DATASETS.add(name, loader)

    return deco


def dataset_params(name: str) -> dict[str, Any]:
    """Return the configurable params of dataset `name` with their defaults."""
    loader = DATASETS.get(name)
    return {
        p.name: p.default
        for p in inspect.signature(loader).parameters.values()
        if p.name not in _COMMON and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _check_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    allowed = dataset_params(name)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ParameterTypeError(
            f"Unknown parameter(s) for dataset {name!r}: {describe_unknown_keys(unknown, allowed)}. "
            f"Allowed: {', '.join(allowed) or '(none)'}, plus root, device, seed, val_fraction, "
            f"normalize, download."
        )
    return {**allowed, **params}


def load_dataset(
    name: str,
    *,
    root: str | Path = "data",
    device: str | torch.device = "cpu",
    seed: int = 0,
    val_fraction: float = 0.0,
    normalize: str | None = None,
    download: bool = True,
    **params: Any,
) -> DataSplits:
    """Load dataset `name` as float32 inputs / int64 labels on `device`.

    Args:
        name: a key of DATASETS (e.g. "mnist1d", "digits", "cifar10").
        root: folder for downloaded files and caches (e.g. `<root>/MNIST/raw`, `<root>/mnist1d`).
        device: where the returned tensors live.
        seed: seeds everything random here: synthetic data, train/test splits, the val carve.
        val_fraction: fraction in [0, 1) of the train split carved off (seeded) as validation.
        normalize: "none", "standard", "minmax" or "scale16"; None means the dataset's default.
            Statistics are fitted on the (post-carve) train split only.
        download: allow downloading missing files (torchvision sets only).
        **params: dataset-specific params, e.g. num_train/num_test; see `dataset_params(name)`.

    Raises:
        UnknownNameError: unknown name (with close matches).
        ParameterError: invalid params (what was wrong and what is allowed).
        DatasetUnavailableError: files missing and not downloadable.
    """
    loader = DATASETS.get(name)
    full_params = _check_params(name, params)
    val_fraction = check_fraction("val_fraction", val_fraction, allow_zero=True)
    if normalize is not None:
        check_normalize(normalize)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ParameterError(f"seed must be a non-negative int, got {seed!r}.")
    seed = int(seed)
    device = torch.device(device)

    raw = loader(root=Path(root), seed=seed, download=bool(download), **params)
    if raw.kind not in KINDS:
        raise ValueError(f"Loader {name!r} returned kind {raw.kind!r}; expected one of {KINDS}.")
    x_tr, y_tr = _as_x(raw.x_train), _as_y(raw.y_train)
    x_te, y_te = _as_x(raw.x_test), _as_y(raw.y_test)
    _check_raw(name, raw, x_tr, y_tr, x_te, y_te)

    x_va = y_va = None
    if val_fraction > 0:
        _, n_val = split_counts(len(y_tr), val_fraction, "val_fraction")
        keep, held = random_split(len(y_tr), n_val, seed, stream="val")
        keep_t, held_t = torch.from_numpy(keep), torch.from_numpy(held)
        x_va, y_va = x_tr[held_t], y_tr[held_t]
        x_tr, y_tr = x_tr[keep_t], y_tr[keep_t]

    method = raw.default_normalize if normalize is None else normalize
    shift, scale, stats = fit_normalizer(method, x_tr, raw.kind)
    if method != "none":
        x_tr, x_te = apply_normalizer(x_tr, shift, scale), apply_normalizer(x_te, shift, scale)
        if x_va is not None:
            x_va = apply_normalizer(x_va, shift, scale)

    meta = {
        "params": full_params,
        "seed": seed,
        "val_fraction": val_fraction,
        "normalize": stats,
        **raw.meta,
    }
    to = lambda t: None if t is None else t.to(device)  # noqa: E731
    return DataSplits(
        name=name,
        x_train=to(x_tr), y_train=to(y_tr),
        x_test=to(x_te), y_test=to(y_te),
        x_val=to(x_va), y_val=to(y_va),
        num_classes=int(raw.num_classes),
        input_shape=tuple(int(s) for s in raw.input_shape),
        kind=raw.kind,
        meta=meta,
    )


def _check_raw(name: str, raw: RawData, *tensors: torch.Tensor) -> None:
    """Catch loader bugs (wrong shape, labels out of range) before they surface as bad training."""
    x_tr, y_tr, x_te, y_te = tensors
    for split, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
        if tuple(x.shape[1:]) != tuple(raw.input_shape) or x.shape[0] != y.shape[0] or y.dim() != 1:
            raise ValueError(f"Loader {name!r} {split} split has x {tuple(x.shape)}, y {tuple(y.shape)}; "
                             f"expected (N, *{tuple(raw.input_shape)}) and (N,).")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= raw.num_classes):
            raise ValueError(f"Loader {name!r} {split} labels span [{int(y.min())}, {int(y.max())}], "
                             f"outside [0, {raw.num_classes}).")


def _as_x(x: Any) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.float32).contiguous()


def _as_y(y: Any) -> torch.Tensor:
    return torch.as_tensor(y).to(torch.int64).contiguous()

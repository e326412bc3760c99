"""Input normalisation whose statistics are fitted on the train split only.

Which axes share one statistic depends on the data kind:
  * "vector"   (N, D):       per feature; features are unrelated quantities with their own scales.
  * "sequence" (N, L):       one global value; a 1-D signal is a single channel, and per-position
                             statistics would erase where in the signal things happen.
  * "image"    (N, C, H, W): per channel, the usual convention for natural images.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from harness.errors import ParameterError

NORMALIZERS = ("none", "standard", "minmax", "scale16")


def _reduce_dims(x: Tensor, kind: str) -> tuple[int, ...]:
    if kind == "vector":
        return (0,)
    if kind == "sequence":
        return tuple(range(x.dim()))
    if kind == "image":
        return (0,) + tuple(range(2, x.dim()))
    raise ValueError(f"Unknown data kind {kind!r}; expected 'vector', 'sequence' or 'image'.")


def check_normalize(method: object) -> str:
    """Return `method` if it is a known normalisation name, else raise ParameterError listing the options."""
    if method not in NORMALIZERS:
        raise ParameterError(f"Unknown normalize={method!r}. Allowed: {', '.join(NORMALIZERS)}.")
    return str(method)


def fit_normalizer(method: str, x_train: Tensor, kind: str) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Fit `method` on `x_train`; return (shift, scale, stats) so that x_norm = (x - shift) / scale.

    shift/scale broadcast against a batch (leading dim 1). `stats` is a JSON-friendly record of
    the fitted values for the run record.
    """
    check_normalize(method)
    if method == "none":
        shift, scale = torch.zeros(()), torch.ones(())
        return shift, scale, {"method": method}
    if method == "scale16":
        # sklearn digits pixels are counts 0..16; Troiano et al. divide by 16 to land in [0, 1].
        shift, scale = torch.zeros(()), torch.full((), 16.0)
        return shift, scale, {"method": method, "scale": 16.0}
    if x_train.shape[0] == 0:
        raise ValueError(f"normalize={method!r} needs at least one training sample to fit statistics.")
    dims = _reduce_dims(x_train, kind)
    # float32 is accurate enough here (torch's CPU reductions sum pairwise) and avoids a
    # float64 copy of CIFAR-sized data (1.2 GB).
    xd = x_train.float()
    if method == "standard":
        std, mean = torch.std_mean(xd, dim=dims, keepdim=True, correction=0)
        shift, scale = mean, std
        labels = ("mean", "std")
    else:  # minmax
        lo = xd.amin(dim=dims, keepdim=True)
        hi = xd.amax(dim=dims, keepdim=True)
        shift, scale = lo, hi - lo
        labels = ("min", "range")
    # A constant feature (e.g. the always-blank corner pixels of digits) would divide by zero;
    # dividing by 1 instead leaves it as a harmless constant.
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    shift, scale = shift.float(), scale.float()
    stats = {
        "method": method,
        "per": {"vector": "feature", "sequence": "global", "image": "channel"}[kind],
        labels[0]: shift.reshape(-1).tolist(),
        labels[1]: scale.reshape(-1).tolist(),
    }
    return shift, scale, stats


def apply_normalizer(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """Return (x - shift) / scale as float32 (a new tensor; `x` is not modified)."""
    return ((x - shift.to(x.device)) / scale.to(x.device)).float()

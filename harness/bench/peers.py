"""Optional peer implementations, measured side by side when their packages are installed.

Neither is a dependency of the harness (do not add them to pyproject.toml); install them to
compare: `pip install freegrad snntorch`.

- PyPI `freegrad` (Troiano et al. 2025): `freegrad.Activation("ReLU")` called inside
  `freegrad.use("rectangular", params={"a": -0.5, "b": 0.5}, scope="activations")`; the rule is
  snapshotted at forward time, and the full float32 input is saved for backward.
  Equivalent harness pair: relu/rectangular.
- snnTorch: `snntorch.surrogate.fast_sigmoid(slope=25)` returns a function applying
  Heaviside forward, 1 / (1 + k|x|)^2 backward; it also saves the full input.
  Equivalent harness pair: step/fast_sigmoid.

docs/DESIGN.md section 3 measured them at 3.2x and 6x native ReLU (one thread, 256x4096 float32).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Callable

from torch import Tensor


@dataclass(frozen=True)
class Peer:
    """A peer implementation: `build()` returns fn(x) -> y whose autograd backward is the peer's rule."""

    name: str
    package: str
    equivalent: str  # the harness pair computing the same forward and g
    reference: str  # native op the peer is held to (same choice as for `equivalent`)
    build: Callable[[], Callable[[Tensor], Tensor]]

    def available(self) -> bool:
        """True when the peer's package can be imported."""
        return importlib.util.find_spec(self.package) is not None

    def version(self) -> str | None:
        """The installed package version, or None."""
        try:
            return importlib.metadata.version(self.package)
        except Exception:  # not installed, or installed without metadata
            return None


def _build_freegrad() -> Callable[[Tensor], Tensor]:
    freegrad = importlib.import_module("freegrad")
    act = freegrad.Activation("ReLU")

    def fn(x: Tensor) -> Tensor:
        """FreeGrad ReLU whose backward is the rectangular rule on [-0.5, 0.5]."""
        # The context is entered per call, as a user would; its cost is part of the peer's cost.
        with freegrad.use("rectangular", params={"a": -0.5, "b": 0.5}, scope="activations"):
            return act(x)

    return fn


def _build_snntorch() -> Callable[[Tensor], Tensor]:
    surrogate = importlib.import_module("snntorch.surrogate")
    return surrogate.fast_sigmoid(slope=25)


PEERS: tuple[Peer, ...] = (
    Peer("peer:freegrad/relu-rectangular", "freegrad", "relu/rectangular", "relu", _build_freegrad),
    Peer("peer:snntorch/step-fast_sigmoid", "snntorch", "step/fast_sigmoid", "silu", _build_snntorch),
)


def available_peers() -> list[Peer]:
    """The peers whose packages are installed."""
    return [p for p in PEERS if p.available()]

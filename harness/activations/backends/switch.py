"""The one switch for the compiled kernels (C++ on CPU, Triton on CUDA).

HARNESS_KERNELS=0 at start, or `set_enabled(False)`, keeps every tensor on the numpy (CPU) and
reference (other devices) paths: same bits, slower. Read once: the selector runs several times
per pair call, and an environment lookup there was 5 % of a small pair call's time.
"""
from __future__ import annotations

import os

_enabled = os.environ.get("HARNESS_KERNELS", "1") != "0"


def enabled() -> bool:
    """Whether the compiled kernels may be used."""
    return _enabled


def set_enabled(flag: bool) -> bool:
    """Allow (True) or forbid (False) the compiled kernels from now on; returns the previous setting."""
    global _enabled
    previous, _enabled = _enabled, bool(flag)
    return previous

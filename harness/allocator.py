"""Keep freed tensor memory in the process (glibc malloc settings), for benchmarks and runs.

glibc serves large blocks (a 4-8 MB activation tensor) with mmap and gives them back on free,
or trims the heap top; the next call then page-faults fresh, zeroed pages. How often that
happens depended on the random order of the candidates in a round: interleaved, native ReLU
fwd+bwd on 32x64x32x32 took 180 page faults per call and our pair 300, back to back 0, and the
faults cost a third of the call. With both thresholds raised, every candidate reuses its
memory (0 faults per call in any order), so the ratios measure the kernels, not the allocator.
Training pays the same tax: b_silu's eager backward formula (6 temporaries) on 1M elements took
14.6 ms with glibc's defaults and 2.0 ms with these settings. `harness-run` applies them too
(config `malloc: keep_freed`, the default; `malloc: system` leaves glibc alone).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

M_TRIM_THRESHOLD = -1   # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 1 << 30   # give memory back to the OS only beyond 1 GiB of free heap top


_status: dict[str, Any] = {"tuned": False, "reason": "not requested"}


def status() -> dict[str, Any]:
    """What `keep_freed_memory` did in this process (for run records and benchmark JSON)."""
    return dict(_status)


def keep_freed_memory() -> dict[str, Any]:
    """Raise glibc's mmap and trim thresholds for this process; returns what was done."""
    global _status
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:  # musl, macOS, Windows: no mallopt; measure as is
        _status = {"tuned": False, "reason": f"no glibc mallopt ({type(exc).__name__})"}
        return status()
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    set_mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    set_trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1  # tried even if the first one failed
    _status = {"tuned": set_mmap and set_trim, "mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
    if not _status["tuned"]:
        _status["reason"] = f"mallopt refused: mmap threshold {'set' if set_mmap else 'not set'}, trim threshold {'set' if set_trim else 'not set'}"
    return status()

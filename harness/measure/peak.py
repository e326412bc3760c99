"""Peak memory over a region, with the measuring method named in the result.

Saved-tensor bytes (harness.measure.saved) are exact and device-independent, so they are the figure
to compare rules by; peak memory is what the process really used, measured with a method that is
named in the result.
"""
from __future__ import annotations

import resource
import sys

import torch

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_bytes(field: str) -> int | None:
    """A 'VmXXX:  1234 kB' line of /proc/self/status in bytes; None where unavailable."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS. False where not permitted."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes() -> int:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Peak memory over a region, with the measuring method named in the result.

    Use as `with PeakMemory(device) as pm: ...` then `pm.result`, or `pm.start()` ... `pm.stop()`.
    The result is {"peak_bytes", "baseline_bytes", "delta_bytes", "method"}:

    - CUDA: the allocator's peak (reset at start) -> method "cuda.max_memory_allocated";
      baseline = memory allocated at start.
    - CPU on Linux: the kernel's peak resident set size, reset at start by writing 5 to
      /proc/self/clear_refs, read from VmHWM at stop -> method "linux VmHWM (peak RSS, reset at
      start)"; baseline = RSS at start.
    - Otherwise: getrusage ru_maxrss -> method "ru_maxrss (process lifetime peak)"; it cannot be
      reset, so in a reused process (Hydra's joblib launcher) it may reflect an earlier run.

    The reset at start matters because the joblib launcher reuses worker processes (docs/DESIGN.md
    section 4): without it a run would report the peak of whichever run came before.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.result: dict | None = None
        self._baseline: int | None = None
        self._method: str | None = None

    def start(self) -> "PeakMemory":
        """Reset the peak counter and record the baseline."""
        self.result = None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._method = "cuda.max_memory_allocated"
            self._baseline = torch.cuda.memory_allocated(self.device)
        elif _reset_peak_rss() and _status_bytes("VmHWM") is not None:
            self._method = "linux VmHWM (peak RSS, reset at start)"
            self._baseline = _status_bytes("VmRSS")
        else:
            self._method = "ru_maxrss (process lifetime peak)"
            rss = _status_bytes("VmRSS")
            self._baseline = rss if rss is not None else _ru_maxrss_bytes()
        return self

    def stop(self) -> dict:
        """Read the peak since `start()`; returns (and stores in `.result`) the result dict."""
        if self._method is None:
            raise RuntimeError("PeakMemory.stop() called before start()")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._method.startswith("linux"):
            peak = _status_bytes("VmHWM")
        else:
            peak = _ru_maxrss_bytes()
        baseline = int(self._baseline or 0)
        self.result = {
            "peak_bytes": int(peak),
            "baseline_bytes": baseline,
            "delta_bytes": int(peak) - baseline,
            "method": self._method,
        }
        return self.result

    def __enter__(self) -> "PeakMemory":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["PeakMemory"]

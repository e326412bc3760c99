"""Optional compiled CPU kernels for 1-bit gate rules (csrc/gate_kernels.cpp).

They fuse what the numpy path does in several passes: compare + pack in forward, unpack +
multiply in backward (docs/DESIGN.md section 5: parity with native ReLU needs this). Built on first
use with torch.utils.cpp_extension (about a minute once; cached in
~/.cache/torch_extensions), with AVX2 when the CPU has it. If the build fails, or
HARNESS_KERNELS=0, the numpy path is used: same bits, a bit slower.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)
_SOURCE = Path(__file__).parent / "csrc" / "gate_kernels.cpp"
_lock = threading.Lock()
_module = None
_failed: str | None = None


def _cpu_has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def enabled() -> bool:
    """Whether the compiled kernels may be used (HARNESS_KERNELS != '0')."""
    return os.environ.get("HARNESS_KERNELS", "1") != "0"


def load():
    """The compiled extension module, building it on first call; None if unavailable."""
    global _module, _failed
    if _module is not None or _failed is not None or not enabled():
        return _module
    with _lock:
        if _module is None and _failed is None:
            try:
                from torch.utils.cpp_extension import load as load_extension

                # -fopenmp: at::parallel_for is an OpenMP pragma in torch's headers; without the
                # flag the kernels silently run on one thread.
                flags = ["-O3", "-fopenmp"] + (["-mavx2", "-mfma"] if _cpu_has_avx2() else [])
                _module = load_extension(name="harness_gate_kernels", sources=[str(_SOURCE)], extra_cflags=flags,
                                         extra_ldflags=["-fopenmp"], verbose=False)
            except Exception as exc:  # no compiler, no ninja, ...: fall back, say why once
                _failed = f"{type(exc).__name__}: {exc}"
                log.warning("harness: compiled gate kernels unavailable, using the numpy path (%s)", _failed.splitlines()[0])
    return _module


def status() -> dict:
    """For run records and benchmarks: are the kernels in use, and if not, why."""
    return {"enabled": enabled(), "loaded": _module is not None, "error": _failed, "avx2": _cpu_has_avx2()}


def usable(t: torch.Tensor) -> bool:
    """True when `t` can go through the kernels (float32 on CPU, eager mode, kernels built)."""
    return (
        t.dtype == torch.float32 and t.device.type == "cpu" and not torch.compiler.is_compiling()
        and enabled() and load() is not None
    )


def pack_interval(x: torch.Tensor, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> torch.Tensor:
    """Packed 1[x in interval] (see csrc). Infinite ends must be passed as closed."""
    return _module.pack_interval(x.contiguous(), lo, hi, closed_lo, closed_hi)


FORWARD_OPS = {"relu": 1, "step": 2}  # forwards fused with the gate in `forward_pack`


def forward_pack(x: torch.Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool):
    """(y, packed gate) in one pass: y = relu(x) (op 1) or step(x) (op 2), flat."""
    return _module.forward_pack(x.contiguous(), op, lo, hi, closed_lo, closed_hi)


def jam_mul(grad: torch.Tensor, packed: torch.Tensor | None, key_a: int, key_b: int) -> torch.Tensor:
    """grad * gate * u, u = hash_uniform(i; key_a, key_b) (see packing.hash_uniform_reference)."""
    empty = torch.empty(0, dtype=torch.uint8)
    return _module.jam_mul(grad.contiguous(), empty if packed is None else packed, key_a, key_b)


def encode_codes(x: torch.Tensor, borders: torch.Tensor, bits: int, op: int = 0):
    """(y or None, planar-packed b-bit codes #{borders < x}); y = relu/step(x) for op 1/2, flat."""
    y, packed = _module.encode_codes(x.contiguous(), borders, bits, op)
    return (y if op else None), packed


def decode_mul(grad: torch.Tensor, packed: torch.Tensor, levels: torch.Tensor, bits: int) -> torch.Tensor:
    """grad * levels[code] for codes stored by `encode_codes`."""
    return _module.decode_mul(grad.contiguous(), packed, levels, bits)


def gate_mul(grad: torch.Tensor, packed: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """grad * (hi where the bit is set, lo elsewhere), in grad's shape."""
    return _module.gate_mul(grad.contiguous(), packed, lo, hi)

"""Optional compiled CPU kernels for gate, code and jamming rules (csrc/gate_kernels.cpp).

They fuse what the numpy path does in several passes: compare + pack in forward, unpack +
multiply in backward (docs/DESIGN.md section 5: parity with native ReLU needs this). Built on first
use with torch.utils.cpp_extension (40 to 60 s once), CPU-only, into a build folder named after
a hash of the sources, the compiler flags, torch and python (`build_dir`), so two checkouts or
two environments never rebuild each other's kernels. Building and loading happen under one file
lock, so no process loads a half-written library. One build holds AVX-512, AVX2 and scalar
bodies; the best one the CPU supports is picked at run time (`set_isa` or
HARNESS_KERNEL_ISA=avx2|scalar force a lower one, for tests and benchmarks). If the build fails,
or HARNESS_KERNELS=0 (`backends.set_enabled`), the numpy path is used: same bits, slower. Which
tensors run here is decided in one place, `backends.select`; this module builds, loads and calls.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path

import torch

from .packing import FORWARD_OPS  # noqa: F401  (the op codes `forward_pack` and `gate_pair` take)

log = logging.getLogger(__name__)
_CSRC = Path(__file__).parent / "csrc"
_SOURCE = _CSRC / "gate_kernels.cpp"
_SOURCE_SUFFIXES = (".cpp", ".h")  # keep in step with [tool.setuptools.package-data] in pyproject.toml
_NAME = "harness_gate_kernels"
# -fopenmp: at::parallel_for is an OpenMP pragma in torch's headers; without the flag the
# kernels silently run on one thread. No -m flags: the SIMD bodies carry their own target
# attributes and are chosen at run time.
_CFLAGS = ("-O3", "-fopenmp")
_LDFLAGS = ("-fopenmp",)
_COMPLETE = "complete.json"  # written after a build loaded fine: its absence means "build again"
_lock = threading.Lock()
_module = None
_failed: str | None = None
_build: dict | None = None  # where the kernels came from in this process (see `status`)
_isa_limit = 0  # highest ISAS index usable: the CPU's best, or lower with HARNESS_KERNEL_ISA


ISAS = ("scalar", "avx2", "avx512")  # instruction-set levels of the kernel bodies, lowest first


def build_key() -> str:
    """Hash of everything the compiled library depends on: the C++ sources, the compiler and its
    flags, torch's version and build, the python ABI and the machine architecture."""
    digest = hashlib.sha256()
    # Only what the compiler reads (and what a wheel ships): a checkout and an install of the
    # same sources share one build.
    for path in sorted(p for p in _CSRC.rglob("*") if p.suffix in _SOURCE_SUFFIXES):
        if path.is_file():
            digest.update(path.relative_to(_CSRC).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps({
        "cflags": _CFLAGS, "ldflags": _LDFLAGS, "cxx": os.environ.get("CXX", "c++"),
        "torch": torch.__version__, "torch_git": torch.version.git_version,
        "python": sys.implementation.cache_tag, "abiflags": getattr(sys, "abiflags", ""),
        "machine": platform.machine(),
    }, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    """The folder the kernels are built in and loaded from: `<root>/harness_gate_kernels-<build_key>`,
    root = $TORCH_EXTENSIONS_DIR or ~/.cache/torch_extensions (torch's own convention)."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch_extensions")
    return Path(root) / f"{_NAME}-{build_key()}"


class _DropCudaHomeWarning(logging.Filter):
    """Importing torch.utils.cpp_extension on a CUDA build of torch without a GPU logs
    "No CUDA runtime is found, using CUDA_HOME=...": irrelevant for a CPU-only build."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


# Installed at import: torch.compile's CPU code generator imports cpp_extension too.
logging.getLogger("torch.utils.cpp_extension").addFilter(_DropCudaHomeWarning())


def _build_here(directory: Path):
    """Compile the sources into `directory` (CPU only) and import the result. Caller holds the lock."""
    for stale in directory.glob(f"{_NAME}*.so"):  # a build killed half-way: never load or keep it
        stale.unlink()
    print("harness: building the fused CPU kernels (first use in this environment, about a minute) in "
          f"{directory} ...", file=sys.stderr, flush=True)
    from torch.utils.cpp_extension import load as load_extension

    return load_extension(name=_NAME, sources=[str(_SOURCE)], extra_cflags=list(_CFLAGS),
                          extra_ldflags=list(_LDFLAGS), build_directory=str(directory),
                          with_cuda=False, verbose=False)


def _import_built(directory: Path):
    """Import the library a finished build left in `directory`. Caller holds the lock."""
    spec = importlib.util.spec_from_file_location(_NAME, directory / f"{_NAME}.so")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_or_import():
    """(module, build facts): import the finished build of these sources, or build it first.

    Both happen under a file lock in the build folder, so a second process waits for a build
    under way instead of loading a half-written library or starting its own.
    """
    from filelock import FileLock  # a dependency of torch

    directory = build_dir()
    directory.mkdir(parents=True, exist_ok=True)
    complete = directory / _COMPLETE
    # Not torch's own `lock` file: torch takes that one inside `load`, and flock is per open file.
    with FileLock(str(directory / "harness.lock")):
        started = time.perf_counter()
        built = not complete.exists()
        module = _build_here(directory) if built else _import_built(directory)
        seconds = round(time.perf_counter() - started, 3)
        if built:
            complete.write_text(json.dumps({"key": build_key(), "build_seconds": seconds, "torch": torch.__version__}))
    return module, {"build_dir": str(directory), "built_in_process": built, "build_seconds": seconds if built else None}


def load():
    """The compiled extension module, building it on first use in this environment; None if unavailable."""
    global _module, _failed, _isa_limit, _build
    from .backends import switch

    if _module is not None or _failed is not None or not switch.enabled():
        return _module
    isa_cap = os.environ.get("HARNESS_KERNEL_ISA")
    if isa_cap and isa_cap not in ISAS:  # a typo must not silently change what is measured
        raise ValueError(f"HARNESS_KERNEL_ISA={isa_cap!r} is not an instruction set; choose one of {', '.join(ISAS)}")
    with _lock:
        if _module is None and _failed is None:
            try:
                module, _build = _build_or_import()
                from .backends.ops import register_kernel_fakes

                register_kernel_fakes()
                _isa_limit = min(module.best_isa(), ISAS.index(isa_cap) if isa_cap else len(ISAS) - 1)
                module.set_isa(_isa_limit)  # e.g. HARNESS_KERNEL_ISA=avx2: a machine without AVX-512
                _module = module  # published last: other threads see it fully set up
            except Exception as exc:  # no compiler, no ninja, ...: fall back, say why once
                _failed = f"{type(exc).__name__}: {exc}"
                log.warning("harness: compiled gate kernels unavailable, using the numpy path (%s)", _failed.splitlines()[0])
    return _module


def status() -> dict:
    """For run records and benchmarks: are the kernels in use, and if not, why; where they were
    loaded from, and whether this process built them (`built_in_process`, `build_seconds`)."""
    loaded = _module is not None
    build = _build or {"build_dir": None, "built_in_process": False, "build_seconds": None}
    from .backends import switch

    return {"enabled": switch.enabled(), "loaded": loaded, "error": _failed,
            "isa": ISAS[_module.isa()] if loaded else None, "best_isa": ISAS[_module.best_isa()] if loaded else None,
            **build}


def isa() -> str | None:
    """The instruction set the kernels use now ('avx512', 'avx2' or 'scalar'); None if not built."""
    return ISAS[_module.isa()] if load() is not None else None


def available_isas() -> tuple[str, ...]:
    """Every instruction set this CPU can run the kernels with (empty if they are not built)."""
    return ISAS[: _isa_limit + 1] if load() is not None else ()


def set_isa(name: str) -> str:
    """Use at most instruction set `name` (capped at what the CPU supports and HARNESS_KERNEL_ISA);
    returns the one in use."""
    if name not in ISAS:
        raise ValueError(f"unknown instruction set {name!r}; choose one of {', '.join(ISAS)}")
    if load() is None:
        raise RuntimeError(f"compiled kernels unavailable: {_failed or 'HARNESS_KERNELS=0'}")
    return ISAS[_module.set_isa(min(ISAS.index(name), _isa_limit))]


def pack_interval(x: torch.Tensor, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> torch.Tensor:
    """Packed 1[x in interval] (see csrc). Infinite ends must be passed as closed."""
    return _module.gate_forward(x, 0, lo, hi, closed_lo, closed_hi)[1]


_NO_GATE = torch.empty(0, dtype=torch.uint8)


def forward_pack(x: torch.Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool):
    """(y, packed gate) in one pass: y = relu(x) (op 1) or step(x) (op 2), in x's shape."""
    return _module.gate_forward(x, op, lo, hi, closed_lo, closed_hi)


def gate_pair(x: torch.Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool,
              level_lo: float, level_hi: float) -> torch.Tensor:
    """relu/step(x) with a 1-bit gate backward (levels lo/hi) in one C++ call: `GatePair`'s
    hand-written autograd node (see gate_pair_function)."""
    return _module.gate_pair(x, op, lo, hi, closed_lo, closed_hi, level_lo, level_hi)


def gate_pair_function(op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool, level_lo: float,
                       level_hi: float):
    """The same pair as `gate_pair` bound to its arguments: a C++ callable `f(x)` (a call converts
    one tensor instead of eight arguments)."""
    return _module.GatePair(op, lo, hi, closed_lo, closed_hi, level_lo, level_hi)


def count_correct(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """#{i: logits[i].argmax() == labels[i]} for float32 (N, C) logits and int64 labels, with
    torch.argmax's rule for ties (first maximum) and NaNs (a NaN is the maximum)."""
    return _module.count_correct(logits, labels)


def fold_steps(losses: list, logits: list, labels: list) -> tuple[float, int]:
    """(sum of the losses in float64, correct predictions) over a run of steps: one CPU value,
    float32 (N, C) logits and int64 labels per step (count_correct's rule)."""
    return _module.fold_steps(losses, logits, labels)


def jam_mul(grad: torch.Tensor, packed: torch.Tensor | None, key_a: int, key_b: int) -> torch.Tensor:
    """grad * gate * u, u = hash_uniform(i; key_a, key_b) (see packing.hash_uniform_reference)."""
    return _module.jam_mul(grad, _NO_GATE if packed is None else packed, key_a, key_b)


def encode_codes(x: torch.Tensor, borders: torch.Tensor, bits: int, op: int = 0):
    """(y or None, planar-packed b-bit codes #{borders < x}); y = relu/step(x) for op 1/2, in x's shape."""
    y, packed = _module.encode_codes(x, borders, bits, op)
    return (y if op else None), packed


def decode_mul(grad: torch.Tensor, packed: torch.Tensor, levels: torch.Tensor, bits: int) -> torch.Tensor:
    """grad * levels[code] for codes stored by `encode_codes`."""
    return _module.decode_mul(grad, packed, levels, bits)


def gate_mul(grad: torch.Tensor, packed: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """grad * (hi where the bit is set, lo elsewhere), in grad's shape."""
    return _module.gate_mul(grad, packed, lo, hi)

"""Triton kernels for gate, code and jamming rules on CUDA tensors (the GPU twin of kernels.py).

The same five fused passes as the CPU kernels (csrc/gate_kernels.cpp), on the same layout, so a
CUDA run and a CPU run save the same bytes and compute the same gradients:

- `forward_pack`: y = relu(x) or step(x) and the packed gate 1[x in I] in one pass (`pack_interval`
  without y);
- `gate_mul`: grad * (bit ? hi : lo), with select semantics (0 outside a gate whose lo level is 0,
  even for a NaN/inf gradient, as native ReLU's backward);
- `jam_mul`: grad * gate * u, u_i = (mix(mix(i + key_a) ^ key_b) >> 8) / 2^24 with murmur3's
  finalizer `mix` (packing.hash_uniform_reference): the same stream as the CPU kernels for the
  same keys, so a seeded run draws the same numbers on either backend;
- `encode_codes` / `decode_mul`: b-bit codes #{borders < x} (NaN -> 0) in b bit planes, and
  grad * levels[code];
- `pack_bits` / `unpack_bits`: a bool mask to packed bytes and back.

Layout (packing.py): element i of the flat row-major tensor is bit i % 8 of byte i // 8; a b-bit
code tensor is b such planes of ceil(n / 8) bytes each. Each Triton program handles BYTES whole
bytes (8 * BYTES elements) as a (BYTES, 8) block, so no two programs write the same byte.

Arithmetic: half and bfloat16 inputs are widened to float32, computed there and rounded once, as
torch's own elementwise kernels do (float "opmath"); float32 is computed in float32. Compares
use float32 bounds, as torch does for a float tensor against a Python number.

Which tensors run here is decided by `backends.select` (float16/bfloat16/float32 CUDA tensors,
kernels enabled); this module only launches. Called with CPU tensors,
every function here runs the kernels in Triton's interpreter (TRITON_INTERPRET semantics, on
numpy): that is how the conformance tests check them bit for bit without a GPU. Each kernel is
decorated twice, lazily: once compiled (CUDA) and once interpreted (CPU), so the interpreter
never has to be switched on for the whole process. HARNESS_KERNELS=0 (`backends.set_enabled`)
keeps CUDA tensors on the torch reference path.
"""
from __future__ import annotations

import threading
from pathlib import Path

import torch
from torch import Tensor

DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # what the kernels compute exactly
# Bytes per program: 256 bytes = 2048 elements on the GPU; small in the interpreter, so small test
# tensors still span several programs (block edges are exercised).
BLOCK_BYTES = 256
INTERPRETER_BLOCK_BYTES = 8
MAX_BITS = 8

_lock = threading.Lock()
_kernel_sets: dict = {}  # interpret flag -> the triton_bodies module decorated that way
_BODIES = Path(__file__).with_name("triton_bodies.py")
_import_error: str | None = None
_launched = False  # whether a compiled (CUDA) kernel ran in this process, for `status`


def _triton():
    """The triton module, or None (and the reason kept for `status`) when it cannot be imported."""
    global _import_error
    try:
        import triton

        return triton
    except Exception as exc:  # not installed, or a broken install: the reference path stays
        _import_error = f"{type(exc).__name__}: {exc}"
        return None


def available() -> bool:
    """True when triton can be imported (it ships with CUDA builds of torch)."""
    return _triton() is not None


def status() -> dict:
    """For run records and benchmarks: is the Triton backend importable and enabled, which
    version, whether a compiled kernel ran in this process, and the CUDA device if any."""
    from .backends import switch

    triton = _triton()
    cuda = torch.cuda.is_available()
    return {
        "available": triton is not None,
        "enabled": switch.enabled(),
        "version": getattr(triton, "__version__", None),
        "cuda_device": torch.cuda.get_device_name() if cuda else None,
        "used": _launched,
        "error": _import_error if triton is None else (None if cuda else "no CUDA device"),
    }


# ---------------------------------------------------------------------------------------------
# Decoration and launch


def _kernels(interpret: bool):
    """triton_bodies executed as a module of its own, its kernels compiled (False) or interpreted (True).

    triton.jit reads the interpreter switch when it decorates, so each copy is executed under a
    scoped setting of it: the process-wide TRITON_INTERPRET is never changed, and a process can
    hold both copies (the interpreted one runs CPU tensors, the compiled one CUDA tensors).
    """
    module = _kernel_sets.get(interpret)
    if module is None:
        with _lock:
            if interpret not in _kernel_sets:
                import importlib.util

                from triton import knobs

                name = f"{__package__}._triton_bodies_{'interpreted' if interpret else 'compiled'}"
                spec = importlib.util.spec_from_file_location(name, _BODIES)
                loaded = importlib.util.module_from_spec(spec)
                with knobs.runtime.scope():
                    knobs.runtime.interpret = interpret
                    spec.loader.exec_module(loaded)
                _kernel_sets[interpret] = loaded
            module = _kernel_sets[interpret]
    return module


def _launch(name: str, device: torch.device, n: int, *args, **constexprs) -> None:
    """Run kernel `name` over the ceil(n / 8) bytes of an n-element tensor on `device`:
    compiled on CUDA, in Triton's interpreter on the CPU."""
    global _launched
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"Triton kernels run on CUDA (or, interpreted, on CPU) tensors, not on {device.type}")
    interpret = device.type == "cpu"
    block = INTERPRETER_BLOCK_BYTES if interpret else BLOCK_BYTES
    nbytes = (n + 7) // 8
    grid = ((nbytes + block - 1) // block,)
    if interpret:
        getattr(_kernels(True), name)[grid](*args, BYTES=block, **constexprs)
    else:
        with torch.cuda.device(device):  # launch on the tensors' device, not the current one
            getattr(_kernels(False), name)[grid](*args, BYTES=block, **constexprs)
        _launched = True


def _out_view(out: Tensor) -> Tensor:
    """bfloat16 outputs are written as int16 bit patterns (triton_bodies rounds them itself)."""
    return out.view(torch.int16) if out.dtype == torch.bfloat16 else out


def _check_float(t: Tensor, what: str) -> None:
    if t.dtype not in DTYPES:
        raise ValueError(f"{what}: the Triton kernels take float16, bfloat16 or float32 tensors, got {t.dtype}")


def _check_packed(packed: Tensor, like: Tensor, nbytes: int, what: str) -> Tensor:
    """`packed` as a contiguous uint8 tensor on `like`'s device with at least `nbytes` bytes."""
    if packed.dtype != torch.uint8:
        raise ValueError(f"{what}: packed state must be uint8, got {packed.dtype}")
    if packed.numel() < nbytes:
        raise ValueError(f"{what}: packed state has {packed.numel()} bytes, {nbytes} needed")
    if packed.device != like.device:
        raise ValueError(f"{what}: packed state is on {packed.device}, the tensor on {like.device}")
    return packed.contiguous()


def _check_op(op: int, what: str) -> None:
    if op not in (0, 1, 2):
        raise ValueError(f"{what}: op must be 0 (no forward), 1 (relu) or 2 (step), got {op}")


def _check_bits(bits: int, what: str) -> None:
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"{what}: bits must be in 1..{MAX_BITS}, got {bits}")


def forward_pack(x: Tensor, op: int, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> tuple[Tensor, Tensor]:
    """(y, packed gate 1[x in interval]) in one pass; y = relu(x) (op 1), step(x) (op 2), or an
    empty tensor (op 0). Infinite ends must be passed closed (as `Interval.kernel_args` does)."""
    _check_float(x, "forward_pack")
    _check_op(op, "forward_pack")
    x = x.contiguous()
    n = x.numel()
    y = torch.empty_like(x) if op else x.new_empty((0,))
    packed = torch.empty(((n + 7) // 8,), dtype=torch.uint8, device=x.device)
    if n:
        _launch("gate_forward", x.device, n, x, y if op else x, packed, n, packed.numel(), float(lo), float(hi),
                OP=op, CLOSED_LO=bool(closed_lo), CLOSED_HI=bool(closed_hi))
    return y, packed


def pack_interval(x: Tensor, lo: float, hi: float, closed_lo: bool, closed_hi: bool) -> Tensor:
    """Packed 1[x in interval], ceil(n/8) bytes. Infinite ends must be passed closed."""
    return forward_pack(x, 0, lo, hi, closed_lo, closed_hi)[1]


def _gate_kind(lo: float, hi: float) -> int:
    """0: levels (0, 1), a plain select; 1: (0, hi); 2: (lo, hi) with lo != 0 (csrc: gate_kind)."""
    return 2 if lo != 0.0 else (0 if hi == 1.0 else 1)


def gate_mul(grad: Tensor, packed: Tensor, lo: float, hi: float) -> Tensor:
    """grad * (hi where the packed bit is set, lo elsewhere), in grad's shape (contiguous).
    With lo == 0 the result is 0 outside the gate even where grad is NaN or inf."""
    _check_float(grad, "gate_mul")
    n = grad.numel()
    packed = _check_packed(packed, grad, (n + 7) // 8, "gate_mul")
    grad = grad.contiguous()
    out = torch.empty_like(grad)
    if n:
        _launch("gate_mul", grad.device, n, grad, packed, _out_view(out), n, (n + 7) // 8, float(lo), float(hi),
                KIND=_gate_kind(float(lo), float(hi)), BF16=out.dtype == torch.bfloat16)
    return out


def jam_mul(grad: Tensor, packed: Tensor | None, key_a: int, key_b: int) -> Tensor:
    """grad * gate * u, u_i = hash_uniform(i; key_a, key_b) (packing.hash_uniform_reference), the
    gate from `packed` bits (0 outside, even for NaN gradients), or no gate when packed is None."""
    _check_float(grad, "jam_mul")
    n = grad.numel()
    if n >= 1 << 32:
        raise ValueError(f"jam_mul: at most 2^32 elements per call (the counter is 32-bit), got {n}")
    gated = packed is not None and packed.numel() > 0
    if gated:
        packed = _check_packed(packed, grad, (n + 7) // 8, "jam_mul")
    grad = grad.contiguous()
    out = torch.empty_like(grad)
    if n:
        _launch("jam_mul", grad.device, n, grad, packed if gated else grad, _out_view(out), n, (n + 7) // 8,
                int(key_a) & 0xFFFFFFFF, int(key_b) & 0xFFFFFFFF, GATED=gated, BF16=out.dtype == torch.bfloat16)
    return out


def encode_codes(x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
    """(y or None, codes #{borders < x} in `bits` planes of ceil(n/8) bytes); NaN -> code 0.
    `borders`: sorted, at most 2^bits - 1, on x's device; y = relu/step(x) for op 1/2."""
    _check_float(x, "encode_codes")
    _check_bits(bits, "encode_codes")
    _check_op(op, "encode_codes")
    if borders.numel() > (1 << bits) - 1:
        raise ValueError(f"encode_codes: at most 2^bits - 1 = {(1 << bits) - 1} borders for bits={bits}, got {borders.numel()}")
    if borders.device != x.device:
        raise ValueError(f"encode_codes: borders are on {borders.device}, x on {x.device}")
    _check_float(borders, "encode_codes (borders)")
    x, borders = x.contiguous(), borders.contiguous()
    n = x.numel()
    nbytes = (n + 7) // 8
    y = torch.empty_like(x) if op else None
    packed = torch.empty((bits * nbytes,), dtype=torch.uint8, device=x.device)
    if n:
        _launch("encode", x.device, n, x, borders, y if op else x, packed, n, nbytes, borders.numel(), OP=op, BITS=bits)
    return y, packed


def decode_mul(grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
    """grad * levels[code] for the codes `encode_codes` packed; levels: 2^bits values on grad's device."""
    _check_float(grad, "decode_mul")
    _check_float(levels, "decode_mul (levels)")
    _check_bits(bits, "decode_mul")
    n = grad.numel()
    nbytes = (n + 7) // 8
    packed = _check_packed(packed, grad, bits * nbytes, "decode_mul")
    if levels.numel() < 1 << bits:
        raise ValueError(f"decode_mul: {1 << bits} levels needed for bits={bits}, got {levels.numel()}")
    if levels.device != grad.device:
        raise ValueError(f"decode_mul: levels are on {levels.device}, grad on {grad.device}")
    grad, levels = grad.contiguous(), levels.contiguous()
    out = torch.empty_like(grad)
    if n:
        _launch("decode_mul", grad.device, n, grad, packed, levels, _out_view(out), n, nbytes, BITS=bits,
                BF16=out.dtype == torch.bfloat16)
    return out


def pack_bits(mask: Tensor) -> Tensor:
    """A bool tensor (row-major) packed into ceil(n/8) bytes (packing.pack_bits_reference)."""
    if mask.dtype != torch.bool:
        raise ValueError(f"pack_bits: a bool mask is packed, got {mask.dtype}")
    mask = mask.contiguous()
    n = mask.numel()
    packed = torch.empty(((n + 7) // 8,), dtype=torch.uint8, device=mask.device)
    if n:
        _launch("pack_bits", mask.device, n, mask.view(torch.uint8), packed, n, packed.numel())
    return packed


def unpack_bits(packed: Tensor, n: int) -> Tensor:
    """The first `n` bits of `packed` as a flat bool tensor (packing.unpack_bits_reference)."""
    packed = _check_packed(packed, packed, (n + 7) // 8, "unpack_bits")
    out = torch.empty((n,), dtype=torch.uint8, device=packed.device)
    if n:
        _launch("unpack_bits", packed.device, n, packed, out, n, (n + 7) // 8)
    return out.view(torch.bool)

"""Conformance of the Triton kernels (harness/activations/triton_kernels.py) without a GPU.

Called with CPU tensors, the kernels run in Triton's interpreter (the interpreted copy of
triton_bodies; the process-wide TRITON_INTERPRET is not touched, so other tests are unaffected).
Each kernel is held to the torch reference path that CUDA tensors took before (packing.py with
the CPU kernels off): packed bytes equal, float results equal value for value with NaN where the
reference has NaN; float32 results also bit for bit against the compiled CPU kernels. The
interpreter runs about 30-60 ms per program of 64 elements, so tensors are small: sizes 1, 13
and 150 (several programs, a partial last byte) and a transposed (non-contiguous) 7 x 11.
A slow test compiles every kernel variant for sm_90 with Triton's real compiler (no GPU needed).

HARNESS_TRITON_TEST_DEVICE=cuda runs the same comparisons with the compiled kernels on a GPU
(scripts/gpu_check.sh): inputs are moved there, results back, references stay on the CPU.
"""
import math
import os

import pytest
import torch

pytest.importorskip("triton")
# The interpreter computes with numpy, which warns about inf * 0 (the NaN results are checked).
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

from harness.activations import backends, kernels, packing, triton_kernels as tk  # noqa: E402
from harness.activations.backends import FixedKeys, GateParams, select, switch  # noqa: E402
from harness.activations.saved_state import Interval  # noqa: E402

DEVICE = torch.device(os.environ.get("HARNESS_TRITON_TEST_DEVICE", "cpu"))
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, -1.0, 0.5, -0.5, 0.3, 2.0, -3.0]


def sample(shape, dtype, seed, transposed=False):
    """randn * 2 with the special values (NaN, +-inf, +-0, the interval ends) at the front;
    `transposed`: a non-contiguous view of the same kind."""
    gen = torch.Generator().manual_seed(seed)
    full = tuple(reversed(shape)) if transposed else tuple(shape)
    x = torch.randn(full, generator=gen) * 2
    flat = x.view(-1)
    k = min(len(SPECIAL), flat.numel())
    flat[:k] = torch.tensor(SPECIAL[:k])
    x = x.to(dtype)
    return x.t() if transposed else x


CASES = [((1,), False), ((13,), False), ((150,), False), ((7, 11), True)]
CASE_IDS = ["n1", "n13", "n150", "transposed7x11"]


def run(fn, *args):
    """Call a Triton launcher with its tensors on DEVICE (strides kept); results back on the CPU."""
    out = fn(*(a.to(DEVICE) if isinstance(a, torch.Tensor) else a for a in args))
    back = lambda t: t.cpu() if isinstance(t, torch.Tensor) else t  # noqa: E731
    return tuple(map(back, out)) if isinstance(out, tuple) else back(out)


def assert_same_values(got, want):
    """Same dtype and shape, NaN exactly where `want` has NaN, equal values elsewhere (+0 == -0)."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    got, want = got.reshape(-1), want.reshape(-1)
    assert torch.equal(got.isnan(), want.isnan())
    ok = ~want.isnan()
    mismatch = (got[ok] != want[ok]).nonzero().flatten()
    assert mismatch.numel() == 0, f"{mismatch.numel()} values differ, first at {mismatch[:5].tolist()}: " \
                                  f"{got[ok][mismatch[:5]].tolist()} vs {want[ok][mismatch[:5]].tolist()}"


def assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.contiguous().view(INT_VIEW[got.dtype]), want.contiguous().view(INT_VIEW[want.dtype]))


@pytest.fixture
def cpu_kernels():
    """The compiled CPU kernels (the float32 bit-for-bit oracle), or skip."""
    if kernels.load() is None:
        pytest.skip(f"compiled CPU kernels unavailable: {kernels.status()['error']}")
    return kernels


@pytest.fixture
def reference_path():
    """The reference backend: the tensor-op path CUDA tensors take without the Triton kernels."""
    return backends.REFERENCE


def reference_gate(x, interval):
    """The reference 1-bit gate of x (a CUDA tensor's path: half types compared in float32)."""
    return packing.pack_bits_reference(interval.contains(x.float()))


def reference_codes(x, borders, bits):
    """code = bucketize(x, borders), NaN -> 0, in `bits` planes (pack_codes' layout)."""
    flat = x.reshape(-1)
    codes = torch.bucketize(flat, borders).masked_fill_(flat.isnan(), 0)
    stride = packing.packed_size(flat.numel())
    planes = [packing.pack_bits_reference(((codes >> j) & 1).bool()) for j in range(bits)]
    packed = torch.cat(planes)
    assert packed.numel() == bits * stride
    return packed


# --- forward + 1-bit gate -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", [0, 1, 2], ids=["gate_only", "relu", "step"])
@pytest.mark.parametrize("shape,transposed", CASES, ids=CASE_IDS)
def test_forward_pack_is_the_reference(dtype, op, shape, transposed):
    x = sample(shape, dtype, seed=op + 3 * len(shape), transposed=transposed)
    interval = Interval(0.0, math.inf, True, True)  # relu's exact gate: x >= 0
    y, packed = run(tk.forward_pack, x, op, *interval.kernel_args())
    assert packed.dtype == torch.uint8 and torch.equal(packed, reference_gate(x, interval))
    if op == 0:
        assert y.numel() == 0
    else:
        want = torch.relu(x) if op == 1 else (x > 0).to(dtype)
        assert_same_bits(y, want.contiguous())  # NaN and -0.0 kept by relu, as torch's


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("interval", [
    Interval(-1.0, 1.0, True, True),
    Interval(-0.5, 0.3, False, False),  # 0.3 is not a half: compared in float32, as torch does
    Interval(-math.inf, 0.0, True, False),
    Interval(0.3, 0.3, True, True),  # a single point
    Interval(),  # the whole line: everything but NaN
], ids=["closed", "open", "neg_inf", "point", "all"])
def test_pack_interval_every_kind_of_end(dtype, interval):
    for seed, transposed, shape in [(1, False, (150,)), (2, True, (7, 11))]:
        x = sample(shape, dtype, seed, transposed)
        assert torch.equal(run(tk.pack_interval, x, *interval.kernel_args()), reference_gate(x, interval))


def test_forward_pack_float32_bit_for_bit_with_the_cpu_kernels(cpu_kernels):
    x = sample((150,), torch.float32, seed=9)
    for op in (1, 2):
        args = Interval(-1.0, 0.5, True, False).kernel_args()
        y, packed = run(tk.forward_pack, x, op, *args)
        y_cpu, packed_cpu = cpu_kernels.forward_pack(x, op, *args)
        assert torch.equal(packed, packed_cpu)
        assert_same_bits(y, y_cpu)


# --- gate backward ------------------------------------------------------------------------

LEVELS = [(0.0, 1.0), (0.0, 2.5), (0.1, 1.3), (-1.0, 0.5)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("levels", LEVELS, ids=["select", "scaled", "two_levels", "negative"])
def test_gate_mul_is_the_reference(dtype, levels, reference_path):
    lo, hi = levels
    for seed, transposed, shape in [(4, False, (150,)), (5, True, (7, 11))]:
        x = sample(shape, torch.float32, seed)
        grad = sample(shape, dtype, seed + 100, transposed)  # NaN/inf in and outside the gate
        packed = packing.pack_bits_reference(x.reshape(grad.shape) > 0.2)
        got = run(tk.gate_mul, grad, packed, lo, hi)
        want = reference_path.gate_mul(grad, packed, GateParams(-math.inf, math.inf, True, True, (lo, hi)))
        assert_same_values(got, want.contiguous())
        if lo == 0.0:  # select semantics: exactly 0 outside the gate, even for NaN/inf gradients
            off = ~packing.unpack_bits_reference(packed, grad.numel())
            assert (got.reshape(-1)[off] == 0).all()


@pytest.mark.parametrize("levels", LEVELS, ids=["select", "scaled", "two_levels", "negative"])
def test_gate_mul_float32_bit_for_bit_with_the_cpu_kernels(levels, cpu_kernels):
    grad = sample((150,), torch.float32, seed=11)
    packed = packing.pack_bits_reference(sample((150,), torch.float32, seed=12) > 0)
    assert_same_bits(run(tk.gate_mul, grad, packed, *levels), cpu_kernels.gate_mul(grad, packed, *levels))


# --- jamming ------------------------------------------------------------------------------

KEYS = [(1, 0xFFFFFFFF), (123456789, 3000000000)]  # a key equal to 1 (no specialisation), keys >= 2^31


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("gated", [True, False], ids=["gated", "no_gate"])
def test_jam_mul_draws_the_reference_stream(dtype, gated, reference_path):
    for (key_a, key_b), (seed, transposed, shape) in zip(KEYS, [(6, False, (150,)), (7, True, (7, 11))]):
        grad = sample(shape, dtype, seed, transposed)
        packed = packing.pack_bits_reference(sample(shape, torch.float32, seed + 1) > -0.5) if gated else None
        got = run(tk.jam_mul, grad, packed, key_a, key_b)
        assert_same_values(got, reference_path.jam_mul(grad, packed, FixedKeys(key_a, key_b)).contiguous())


def test_jam_mul_uniforms_are_the_hash_stream():
    """With a gradient of ones the kernel returns u itself: hash_uniform_reference's numbers."""
    ones = torch.ones(150)
    u = run(tk.jam_mul, ones, None, 987654321, 42)
    assert torch.equal(u, packing.hash_uniform_reference(150, 987654321, 42))
    assert 0.0 <= u.min() and u.max() < 1.0 and u.unique().numel() == 150


@pytest.mark.parametrize("gated", [True, False], ids=["gated", "no_gate"])
def test_jam_mul_float32_bit_for_bit_with_the_cpu_kernels(gated, cpu_kernels):
    grad = sample((150,), torch.float32, seed=13)
    packed = packing.pack_bits_reference(sample((150,), torch.float32, seed=14) > 0) if gated else None
    for key_a, key_b in KEYS:
        assert_same_bits(run(tk.jam_mul, grad, packed, key_a, key_b), cpu_kernels.jam_mul(grad, packed, key_a, key_b))


# --- few-bit codes ------------------------------------------------------------------------


def borders_for(bits, count, dtype):
    """`count` sorted borders in `dtype`, including values that occur in `sample` (0, 1, -1)."""
    base = torch.tensor([-1.0, 0.0, 1.0, -2.5, 0.4, 1.7, -0.7, 3.1, -3.0, 0.05, 2.2, -1.6, 0.9, -0.2, 2.8])
    return base[:count].sort().values.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_encode_codes_is_bucketize(dtype, bits):
    full = (1 << bits) - 1
    for count, (seed, transposed, shape) in [(full, (20 + bits, False, (150,))), (max(1, full // 2), (30 + bits, True, (7, 11)))]:
        x = sample(shape, dtype, seed, transposed)
        borders = borders_for(bits, count, dtype)
        y, packed = run(tk.encode_codes, x, borders, bits)
        assert y is None
        assert torch.equal(packed, reference_codes(x, borders, bits))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_encode_codes_fused_with_relu_and_step(dtype):
    x = sample((7, 11), dtype, seed=40, transposed=True)
    borders = borders_for(2, 3, dtype)
    for op, want in [(1, torch.relu(x)), (2, (x > 0).to(dtype))]:
        y, packed = run(tk.encode_codes, x, borders, 2, op)
        assert torch.equal(packed, reference_codes(x, borders, 2))
        assert_same_bits(y, want.contiguous())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_decode_mul_is_levels_at_the_codes(dtype, bits):
    for seed, transposed, shape in [(50 + bits, False, (150,)), (60 + bits, True, (7, 11))]:
        n = math.prod(shape)
        grad = sample(shape, dtype, seed, transposed)
        gen = torch.Generator().manual_seed(seed)
        packed = torch.randint(0, 256, (bits * packing.packed_size(n),), dtype=torch.uint8, generator=gen)
        levels = (torch.randn(1 << bits, generator=gen) * 3).to(dtype)
        levels[0] = 0.0  # a zero level: NaN * 0 stays NaN, as in the reference product
        got = run(tk.decode_mul, grad, packed, levels, bits)
        want = grad * levels[packing.unpack_codes(packed, n, bits)].view(grad.shape)
        assert_same_values(got, want.contiguous())


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_codes_float32_bit_for_bit_with_the_cpu_kernels(bits, cpu_kernels):
    x = sample((150,), torch.float32, seed=70)
    borders = borders_for(bits, (1 << bits) - 1, torch.float32)
    packed = run(tk.encode_codes, x, borders, bits)[1]
    assert torch.equal(packed, cpu_kernels.encode_codes(x, borders, bits)[1])
    levels = torch.linspace(-1.5, 2.0, 1 << bits)
    grad = sample((150,), torch.float32, seed=71)
    assert_same_bits(run(tk.decode_mul, grad, packed, levels, bits), cpu_kernels.decode_mul(grad, packed, levels, bits))


# --- plain bit packing --------------------------------------------------------------------


@pytest.mark.parametrize("shape,transposed", CASES, ids=CASE_IDS)
def test_pack_and_unpack_bits(shape, transposed):
    mask = sample(shape, torch.float32, seed=80, transposed=transposed) > 0.1
    packed = run(tk.pack_bits, mask)
    assert torch.equal(packed, packing.pack_bits_reference(mask))
    assert torch.equal(run(tk.unpack_bits, packed, mask.numel()), packing.unpack_bits_reference(packed, mask.numel()))


def test_empty_tensors():
    x = torch.empty(0)
    y, packed = run(tk.forward_pack, x, 1, 0.0, math.inf, True, True)
    assert y.numel() == 0 and packed.numel() == 0
    assert run(tk.gate_mul, x, packed, 0.0, 1.0).numel() == 0
    assert run(tk.encode_codes, x, torch.tensor([0.0]), 1)[1].numel() == 0


# --- bad input ----------------------------------------------------------------------------


def test_bad_input_is_refused_with_what_was_wrong():
    x = torch.randn(20)
    with pytest.raises(ValueError, match="float16, bfloat16 or float32"):
        tk.forward_pack(x.double(), 1, 0.0, 1.0, True, True)
    with pytest.raises(ValueError, match="op must be 0"):
        tk.forward_pack(x, 3, 0.0, 1.0, True, True)
    with pytest.raises(ValueError, match="2 bytes, 3 needed"):
        tk.gate_mul(x, torch.zeros(2, dtype=torch.uint8), 0.0, 1.0)
    with pytest.raises(ValueError, match="must be uint8"):
        tk.gate_mul(x, torch.zeros(3, dtype=torch.int32), 0.0, 1.0)
    with pytest.raises(ValueError, match="bits must be in 1..8"):
        tk.encode_codes(x, torch.tensor([0.0]), 9)
    with pytest.raises(ValueError, match="at most 2\\^bits - 1 = 3 borders"):
        tk.encode_codes(x, torch.zeros(4), 2)
    with pytest.raises(ValueError, match="4 levels needed"):
        tk.decode_mul(x, torch.zeros(6, dtype=torch.uint8), torch.zeros(3), 2)
    with pytest.raises(ValueError, match="a bool mask"):
        tk.pack_bits(x)


# --- routing: CUDA tensors to Triton, CPU tensors to the CPU kernels --------------------------


def test_cpu_tensors_stay_on_the_cpu_kernels():
    for dtype in DTYPES:
        assert backends.backend_for(torch.zeros(4, dtype=dtype)) is not backends.TRITON
    st = tk.status()
    assert st["available"] and st["version"] and set(st) >= {"enabled", "used", "cuda_device", "error"}
    if not torch.cuda.is_available():
        assert st["error"] == "no CUDA device" and st["used"] is False


class _TritonDtypesRouted:
    """Stands in for the numpy backend: CPU tensors of the Triton dtypes go to the (interpreted)
    Triton backend, others (the float64 of few-bit fitting) stay on numpy."""

    gate_pair = None

    def __getattr__(self, name):
        def op(t, *args):
            return getattr(backends.TRITON if t.dtype in tk.DTYPES else backends.NUMPY, name)(t, *args)
        return op


@pytest.mark.parametrize("backward,params,expected", [
    ("exact", {}, {"forward_pack", "gate_mul"}),
    ("rectangular", {}, {"forward_pack", "gate_mul"}),
    ("positive_jam", {}, {"forward_pack", "jam_mul"}),
    ("quantized", {"bits": 2}, {"encode_codes", "decode_mul"}),
], ids=["relu_exact", "rectangular", "positive_jam", "quantized2"])
def test_a_pair_routed_to_triton_matches_the_reference_path(backward, params, expected, monkeypatch):
    """Pretend CPU bfloat16 tensors are CUDA ones (the selector's numpy choice patched) and run a relu pair forward
    and backward: every state and gradient pass goes through the (interpreted) Triton kernels,
    and the result equals the reference path's."""
    from harness.activations.pair import make_pair, apply_pair

    calls = []
    for name in ("forward_pack", "pack_interval", "gate_mul", "jam_mul", "encode_codes", "decode_mul"):
        original = getattr(tk, name)
        monkeypatch.setattr(tk, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))

    def run_pair(routed):
        if DEVICE.type == "cpu":
            monkeypatch.setattr(select, "NUMPY", _TritonDtypesRouted() if routed else backends.NUMPY)
        else:  # a real GPU: the reference path is the one with the Triton backend off
            monkeypatch.setattr(switch, "_enabled", routed)
        spec = make_pair("relu", backward, **params)
        spec.rng.seed(3)
        x = sample((7, 11), torch.bfloat16, seed=90, transposed=True).nan_to_num().to(DEVICE).requires_grad_()
        y = apply_pair(x, spec)
        (y * sample((7, 11), torch.bfloat16, seed=91).nan_to_num(posinf=5.0, neginf=-5.0).to(DEVICE)).sum().backward()
        return y.detach().cpu(), x.grad.cpu()

    y_ref, grad_ref = run_pair(routed=False)
    assert not calls
    y, grad = run_pair(routed=True)
    assert set(calls) == expected, calls  # forward fused with the state, backward one pass
    assert_same_values(y.contiguous(), y_ref.contiguous())
    assert_same_values(grad.contiguous(), grad_ref.contiguous())


# --- the compiled copy: every variant through Triton's real compiler (no GPU needed) ---------


def _signatures():
    """(kernel name, signature, constexprs) for every variant the launchers can ask for."""
    f = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
    out = []
    for dt in DTYPES:
        t, o = f[dt], ("i16" if dt == torch.bfloat16 else f[dt])
        bf16 = dt == torch.bfloat16
        for op in (0, 1, 2):
            for closed in ((True, True), (False, False)):
                out.append(("gate_forward", {"x_ptr": f"*{t}", "y_ptr": f"*{t}", "out_ptr": "*u8", "n": "i32", "nbytes": "i32",
                                             "lo": "fp32", "hi": "fp32"},
                            {"OP": op, "CLOSED_LO": closed[0], "CLOSED_HI": closed[1]}))
        for kind in (0, 1, 2):
            out.append(("gate_mul", {"g_ptr": f"*{t}", "bits_ptr": "*u8", "out_ptr": f"*{o}", "n": "i64", "nbytes": "i64",
                                     "lo": "fp32", "hi": "fp32"}, {"KIND": kind, "BF16": bf16}))
        for gated in (True, False):
            out.append(("jam_mul", {"g_ptr": f"*{t}", "bits_ptr": "*u8", "out_ptr": f"*{o}", "n": "i32", "nbytes": "i32",
                                    "key_a": "u32", "key_b": "i32"}, {"GATED": gated, "BF16": bf16}))
        for bits in (1, 2, 3, 4):
            out.append(("encode", {"x_ptr": f"*{t}", "borders_ptr": f"*{t}", "y_ptr": f"*{t}", "out_ptr": "*u8", "n": "i32",
                                   "nbytes": "i32", "nb": "i32"}, {"OP": bits % 3, "BITS": bits}))
            out.append(("decode_mul", {"g_ptr": f"*{t}", "packed_ptr": "*u8", "levels_ptr": f"*{t}", "out_ptr": f"*{o}",
                                       "n": "i32", "nbytes": "i32"}, {"BITS": bits, "BF16": bf16}))
    for name in ("pack_bits", "unpack_bits"):
        out.append((name, {"mask_ptr" if name == "pack_bits" else "packed_ptr": "*u8", "out_ptr": "*u8", "n": "i32",
                           "nbytes": "i32"}, {}))
    return out


def _compile_for_sm90(name, signature, constexprs):
    import triton
    from triton.backends.compiler import GPUTarget

    fn = getattr(tk._kernels(False), name)
    constexprs = {**constexprs, "BYTES": tk.BLOCK_BYTES}
    signature = {**signature, **{k: "constexpr" for k in constexprs}}
    return triton.compile(triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                          target=GPUTarget("cuda", 90, 32))


def test_the_bfloat16_jam_kernel_compiles_for_sm90():
    """One variant through the real compiler in the fast suite: helpers, tuple returns, bitcasts."""
    name, signature, constexprs = next(v for v in _signatures() if v[0] == "jam_mul" and v[2] == {"GATED": True, "BF16": True})
    assert "cubin" in _compile_for_sm90(name, signature, constexprs).asm


@pytest.mark.slow
def test_every_kernel_variant_compiles_for_sm90():
    """The compiled copy goes through Triton's front end, optimiser, LLVM and ptxas for an H100
    (sm_90): catches what the interpreter lets pass (types, constexpr use, tuple returns)."""
    for name, signature, constexprs in _signatures():
        assert "cubin" in _compile_for_sm90(name, signature, constexprs).asm, (name, constexprs)

"""Bit packing: every fast path agrees bit for bit with the tensor-op reference."""
import numpy as np
import pytest
import torch

from harness.activations.backends import decode_levels, encode_codes, pack_bits, pack_interval, unpack_bits
from harness.activations.packing import pack_bits_reference, pack_codes, packed_size, unpack_bits_reference, unpack_codes
from harness.activations.saved_state import Interval


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 1000, 4097])
def test_pack_fast_path_equals_reference_and_round_trips(n):
    mask = torch.rand(n, generator=torch.Generator().manual_seed(n)) > 0.5
    ref = pack_bits_reference(mask)
    fast = pack_bits(mask)
    assert ref.dtype == fast.dtype == torch.uint8 and ref.numel() == packed_size(n) == (n + 7) // 8
    assert torch.equal(ref, fast)
    assert torch.equal(unpack_bits(fast, n), mask) and torch.equal(unpack_bits_reference(ref, n), mask)


def test_bit_layout_is_little_endian_within_each_byte():
    mask = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], dtype=torch.bool)
    assert pack_bits(mask).tolist() == [1, 6]


def test_pack_reads_non_contiguous_input_in_logical_order():
    base = torch.randn(10, 12)
    view = base.t()[:, ::2]
    assert not view.is_contiguous()
    assert torch.equal(pack_bits(view > 0), pack_bits_reference(view.contiguous() > 0))


@pytest.mark.parametrize("interval", [Interval(0, float("inf"), closed_lo=False), Interval(-0.5, 0.5), Interval(-1, 1, False, False)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_interval_gate_fast_path_equals_torch_compare(interval, dtype):
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0] + torch.randn(995).tolist(), dtype=dtype)
    x_t = x.reshape(20, 50).t()  # non-contiguous
    assert torch.equal(pack_interval(x_t, interval), pack_bits_reference(interval.contains(x_t)))


@pytest.mark.parametrize("bits", range(1, 9))
def test_codes_round_trip_and_match_bucketize(bits):
    gen = torch.Generator().manual_seed(bits)
    borders = torch.sort(torch.randn(2**bits - 1, generator=gen, dtype=torch.float64)).values.float()
    x = torch.randn(1001, generator=gen)
    packed = encode_codes(x, borders, bits)
    codes = torch.bucketize(x, borders)
    assert packed.numel() == bits * packed_size(1001)
    assert torch.equal(packed, pack_codes(codes.to(torch.uint8), bits))
    assert torch.equal(unpack_codes(packed, 1001, bits), codes)
    levels = torch.randn(2**bits, generator=gen)
    assert torch.equal(decode_levels(packed, 1001, bits, levels), levels[codes])


def test_numpy_packbits_matches_our_layout():
    mask = np.random.default_rng(0).random(100) > 0.3
    assert torch.equal(pack_bits_reference(torch.from_numpy(mask)), torch.from_numpy(np.packbits(mask, bitorder="little")))


def test_set_isa_rejects_unknown_names_and_caps_at_the_cpu():
    from harness.activations import kernels

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    with pytest.raises(ValueError, match="unknown instruction set 'sse9'; choose one of scalar, avx2, avx512"):
        kernels.set_isa("sse9")
    best, previous = kernels.available_isas()[-1], kernels.isa()
    try:
        assert kernels.set_isa("scalar") == "scalar" and kernels.isa() == "scalar"
        assert kernels.set_isa("avx512") == best  # never above what the CPU supports
    finally:
        kernels.set_isa(previous)


SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 0.5, -0.5, 1.0, -1.0]


# 196653 = 3072 full 64-element units + a 45-element tail: more than one parallel task at two
# threads (the grain is 1024 units), and the tail.
PARALLEL_N = 3 * 65536 + 45


@pytest.mark.parametrize("n", [5, 8, 1003, 65539, PARALLEL_N])
@pytest.mark.parametrize("interval", [Interval(0, float("inf"), closed_lo=False), Interval(-0.5, 0.5), Interval(-1, 1, False, False),
                                      Interval(0, float("inf")), Interval(-float("inf"), 0.5)])
def test_fast_gate_packing_is_bit_identical_to_the_reference(cpu_path, n, interval):
    x = torch.cat([torch.tensor(SPECIAL), torch.randn(n)])
    assert torch.equal(pack_interval(x, interval), pack_bits_reference(interval.contains(x)))


@pytest.mark.parametrize("forward,rule", [("relu", "exact"), ("relu", "rectangular"), ("leaky_relu", "exact"), ("hardsigmoid", "exact")])
def test_fast_gate_backward_equals_the_reference_gradient(cpu_path, forward, rule):
    from harness.activations import ActivationPair

    x = torch.cat([torch.tensor(SPECIAL[1:]), torch.randn(10001)]).requires_grad_()
    upstream = torch.randn(x.shape)
    module = ActivationPair(forward, rule)
    (grad,) = torch.autograd.grad(module(x), x, upstream)
    interval_gate = module.spec.rule.interval.contains(x.detach())
    lo, hi = module.spec.rule.levels
    assert torch.equal(grad, upstream * torch.where(interval_gate, torch.tensor(hi), torch.tensor(lo)))


@pytest.mark.parametrize("forward", ["relu", "step"])
@pytest.mark.parametrize("rule", ["exact", "rectangular", "clipped_ste", "positive_jam"])
def test_fused_forward_and_gate_match_the_unfused_path(cpu_path, forward, rule):
    from harness.activations import make_pair
    from harness.activations.packing import pack_bits_reference

    x = torch.cat([torch.tensor(SPECIAL), torch.randn(4099)]).reshape(-1, 1)[:, 0]  # odd length
    spec = make_pair(forward, rule)
    if spec.rule.bits != 1:
        pytest.skip(f"{forward}/{rule} is not a 1-bit rule")
    y, saved = spec.rule.forward_and_encode(x, spec.forward)
    assert torch.equal(y, spec.forward(x)) or torch.equal(torch.nan_to_num(y, nan=7.0), torch.nan_to_num(spec.forward(x), nan=7.0))
    base = getattr(spec.rule, "base", spec.rule)
    assert torch.equal(saved[0], pack_bits_reference(base.interval.contains(x)))


@pytest.mark.parametrize("n", [10007, PARALLEL_N])
@pytest.mark.parametrize("gated", [True, False])
def test_jam_kernel_matches_the_hash_reference(cpu_path, gated, n):
    from harness.activations.backends import jam_mul
    from harness.activations.packing import hash_uniform_reference

    grad = torch.randn(n)
    mask = torch.rand(n) > 0.3
    packed = pack_bits_reference(mask) if gated else None
    out = jam_mul(grad, packed, 12345, 0xDEADBEEF)
    u = hash_uniform_reference(n, 12345, 0xDEADBEEF)
    expected = grad * u * (mask if gated else torch.ones_like(mask))
    assert torch.equal(out, expected)


def test_hash_uniform_is_uniform_and_keyed():
    from scipy import stats

    from harness.activations.packing import hash_uniform_reference

    u = hash_uniform_reference(200_000, 1, 2)
    assert 0 <= u.min() and u.max() < 1
    counts = torch.histc(u, bins=64, min=0, max=1)
    assert stats.chisquare(counts.numpy()).pvalue > 1e-4  # fails for a biased generator
    lag = torch.corrcoef(torch.stack([u[:-1], u[1:]]))[0, 1]
    assert abs(lag) < 0.01
    assert not torch.equal(u, hash_uniform_reference(200_000, 1, 3))
    assert torch.equal(u, hash_uniform_reference(200_000, 1, 2))


def test_random_source_state_round_trip():
    from harness.activations import RandomSource

    rng = RandomSource(5)
    rng.generator(torch.device("cpu"))
    state = rng.get_state()
    first = (rng.next_keys(), torch.rand(3, generator=rng.generator(torch.device("cpu"))))
    rng.set_state(state)
    again = (rng.next_keys(), torch.rand(3, generator=rng.generator(torch.device("cpu"))))
    assert first[0] == again[0] and torch.equal(first[1], again[1])
    assert RandomSource(6).next_keys() != RandomSource(5).next_keys()


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("n", [7, 8, 1003, PARALLEL_N])
def test_code_kernels_match_bucketize_and_the_level_lookup(cpu_path, bits, n):
    from harness.activations.backends import decode_mul

    gen = torch.Generator().manual_seed(bits * 1000 + n)
    borders = torch.sort(torch.randn(2**bits - 1, generator=gen)).values
    x = torch.cat([torch.tensor([float("nan"), float("inf"), -float("inf")]), torch.randn(n, generator=gen), borders])
    packed = encode_codes(x, borders, bits)
    codes = torch.bucketize(x, borders)
    codes[0] = 0  # NaN: every comparison is false, so code 0 (bucketize puts NaN last)
    assert torch.equal(packed, pack_codes(codes.to(torch.uint8), bits))
    levels = torch.randn(2**bits, generator=gen)
    grad = torch.randn(x.shape, generator=gen)
    assert torch.equal(decode_mul(grad, packed, bits, levels), grad * levels[codes])


@pytest.mark.parametrize("n", [8, 11])
@pytest.mark.parametrize("forward,rule", [("relu", "exact"), ("hardsigmoid", "exact"), ("relu", "positive_jam")])
def test_non_finite_gradients_outside_the_gate_become_zero_like_native_relu(cpu_path, n, forward, rule):
    from harness.activations import ActivationPair

    x = -torch.rand(n) - 4  # every element outside the gate (hardsigmoid's gate is (-3, 3))
    x.requires_grad_()
    upstream = torch.full((n,), float("nan"))
    upstream[::2] = float("inf")
    (grad,) = torch.autograd.grad(ActivationPair(forward, rule)(x), x, upstream)
    assert torch.equal(grad, torch.zeros(n))


@pytest.mark.parametrize("forward", ["relu", "step"])
@pytest.mark.parametrize("bits", [2, 4])
def test_fused_forward_and_codes_match_the_unfused_path(cpu_path, forward, bits):
    from harness.activations import make_pair

    x = torch.cat([torch.tensor(SPECIAL), torch.randn(4099)])
    spec = make_pair(forward, "quantized", bits=bits, of="b_silu")
    y, saved = spec.rule.forward_and_encode(x, spec.forward)
    assert torch.equal(torch.nan_to_num(y, nan=7.0), torch.nan_to_num(spec.forward(x), nan=7.0))
    borders = spec.rule.borders.float()
    codes = torch.bucketize(x, borders).masked_fill_(x.isnan(), 0)
    assert torch.equal(saved[0], pack_codes(codes.to(torch.uint8), bits))


ISA_CASES = [("avx2", "avx2"), ("scalar", "scalar"), ("sse9", "error")]


@pytest.fixture(scope="module")
def isa_children():
    """{HARNESS_KERNEL_ISA value: (stdout, stderr)} of a fresh process that loads the kernels with it.

    The three processes start together: each spends its time importing torch, so on two idle
    cores they take half as long as one after the other (the CPU time is the same).
    """
    import os
    import subprocess
    import sys

    from harness.activations import kernels

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    code = ("from harness.activations import kernels\n"
            "try:\n    kernels.load(); print(kernels.isa(), kernels.status()['built_in_process'])\n"
            "except ValueError as exc:\n    print('error:', exc)\n")
    children = {value: subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, "HARNESS_KERNEL_ISA": value})
                for value, expected in ISA_CASES if expected == "error" or expected in kernels.available_isas()}
    return {value: child.communicate(timeout=300) for value, child in children.items()}


@pytest.mark.parametrize("value,expected", ISA_CASES)
def test_kernel_isa_environment_variable_caps_the_instruction_set(isa_children, value, expected):
    if value not in isa_children:
        pytest.skip(f"this CPU cannot run {expected}")
    stdout, stderr = isa_children[value]
    if expected == "error":
        assert stdout.strip() == "error: HARNESS_KERNEL_ISA='sse9' is not an instruction set; choose one of scalar, avx2, avx512"
    else:  # the instruction set is chosen at run time: the build this process loaded is reused
        assert stdout.strip() == f"{expected} False"
    assert stderr == ""  # no rebuild message, no CUDA_HOME warning


@pytest.mark.parametrize("n_borders,bits", [(3, 2), (16, 5), (20, 5), (100, 8), (255, 8)])
def test_codes_for_any_border_count_up_to_two_to_the_bits(cpu_path, n_borders, bits):
    """Regression: the SIMD bodies read past their border table for 16..2^bits-2 borders."""
    from harness.activations.backends import decode_mul

    gen = torch.Generator().manual_seed(n_borders)
    borders = torch.sort(torch.randn(n_borders, generator=gen)).values
    x = torch.cat([torch.tensor([float("nan"), float("inf"), -float("inf")]), torch.randn(PARALLEL_N, generator=gen), borders])
    codes = torch.bucketize(x, borders)
    codes[0] = 0
    packed = encode_codes(x, borders, bits)
    assert torch.equal(packed, pack_codes(codes.to(torch.uint8), bits))
    levels = torch.randn(2**bits, generator=gen)
    grad = torch.randn(x.shape, generator=gen)
    assert torch.equal(decode_mul(grad, packed, bits, levels), grad * levels[codes])


def test_kernels_reject_more_borders_than_codes_and_read_strided_state():
    from harness.activations import kernels

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    with pytest.raises(RuntimeError, match="at most 2\\^bits - 1 CPU borders, got 4 for bits=2"):
        kernels.encode_codes(torch.randn(10), torch.arange(4.0), 2)
    n = 1000
    grad = torch.randn(n)
    mask = torch.rand(n) > 0.5
    packed = pack_bits_reference(mask)
    strided = torch.stack([packed, torch.zeros_like(packed)], 1).reshape(-1)[::2]  # same bytes, stride 2
    assert not strided.is_contiguous() and torch.equal(strided, packed)
    assert torch.equal(kernels.gate_mul(grad, strided, 0.0, 1.0), grad * mask)
    assert torch.equal(kernels.jam_mul(grad, strided, 1, 2), kernels.jam_mul(grad, packed, 1, 2))
    levels = torch.tensor([0.5, 2.0])
    assert torch.equal(kernels.decode_mul(grad, strided, levels, 1), grad * levels[mask.long()])

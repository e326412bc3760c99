"""Memory: each rule saves only what it needs, counted by harness.measure (saved_tensors_hooks)."""
import math

import pytest
import torch

from harness.activations import FORWARDS, RULES, ActivationPair, Saves, make_pair
from harness.measure import count_saved

SMALL_CONSTANT = 16  # bytes of slack allowed on top of the packed payload
SHAPES = [(1000,), (7, 13, 11), (64, 4096)]


def saved_bytes(module, x):
    """Bytes autograd keeps for backward during module(x), each storage once (harness.measure's counter)."""
    return count_saved(lambda: module(x)).total


def expected_bound(saves, bits, n, itemsize):
    return {
        Saves.NOTHING: 0,
        Saves.BITS: math.ceil(n / 8) + SMALL_CONSTANT,
        Saves.CODES: math.ceil(n * bits / 8) + bits + SMALL_CONSTANT,
        Saves.INPUT: n * itemsize,
        Saves.OUTPUT: n * itemsize,
    }[saves]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("rule", RULES.names())
def test_rule_saves_at_most_its_budget(rule, shape):
    x = torch.randn(shape, requires_grad=True)
    spec = make_pair("relu", rule)
    n = x.numel()
    got = saved_bytes(ActivationPair.from_spec(spec), x)
    assert got <= expected_bound(spec.saves, spec.rule.bits, n, 4), (rule, spec.saves, got)
    if spec.saves in (Saves.BITS, Saves.CODES):
        assert got >= math.ceil(n * spec.rule.bits / 8)  # it did save the bits


@pytest.mark.parametrize("forward", FORWARDS.names())
def test_exact_rule_of_every_forward_saves_at_most_its_budget(forward):
    x = torch.randn(4097, requires_grad=True)
    spec = make_pair(forward, "exact")
    assert saved_bytes(ActivationPair.from_spec(spec), x) <= expected_bound(spec.saves, spec.rule.bits, x.numel(), 4)


def test_one_bit_rules_store_one_eighth_byte_per_element():
    x = torch.randn(256, 4096, requires_grad=True)
    for rule in ["exact", "rectangular", "clipped_ste", "positive_jam", "rectangular_jam"]:
        assert saved_bytes(ActivationPair("relu", rule), x) == 256 * 4096 // 8, rule
    assert saved_bytes(ActivationPair("leaky_relu", "exact"), x) == 256 * 4096 // 8
    assert saved_bytes(ActivationPair("relu", "constant"), x) == 0
    assert saved_bytes(ActivationPair("step", "full_jam"), x) == 0


@pytest.mark.parametrize("bits", range(1, 9))
def test_few_bit_rules_store_b_bits_per_element(bits):
    x = torch.randn(1024, requires_grad=True)
    assert saved_bytes(ActivationPair("relu", "quantized", bits=bits, of="b_silu"), x) == 1024 * bits // 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_smooth_rules_store_one_tensor_in_the_input_dtype(dtype):
    x = torch.randn(1000, dtype=dtype, requires_grad=True)
    item = torch.finfo(dtype).bits // 8
    assert saved_bytes(ActivationPair("relu", "b_silu"), x) == 1000 * item
    assert saved_bytes(ActivationPair("tanh", "exact"), x) == 1000 * item

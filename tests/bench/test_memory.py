"""Bytes saved for backward per element are exact (saved_tensors_hooks), for pairs and natives."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.activations import ActivationPair
from harness.bench.memory import expected_bytes_per_element, measure_saved
from harness.bench.specs import DEFAULT_PAIRS, parse_pair, parse_pairs
from harness.measure import count_saved
from harness.train.memory import saved_bytes_by_activation


def _x(dtype=torch.float32):
    return torch.randn(16, 64, dtype=dtype, requires_grad=True)  # 1024 elements: a multiple of 8


@pytest.mark.parametrize("spec, expected", [
    ("relu/rectangular", 1 / 8), ("relu/exact", 1 / 8), ("relu/positive_jam", 1 / 8), ("relu/constant", 0.0),
    ("relu/quantized:bits=2,of=b_silu", 0.25), ("relu/quantized:bits=3,of=b_silu", 3 / 8),
    ("relu/b_silu", 4.0), ("step/fast_sigmoid", 4.0), ("tanh/exact", 4.0),
])
def test_pair_saved_bytes_per_element_are_exact(spec, expected):
    p = parse_pair(spec)
    state = measure_saved(ActivationPair.from_spec(p.spec), _x())
    assert state.per_element == expected


def test_every_default_pair_saves_what_its_rule_declares():
    x = _x()
    for p in parse_pairs(DEFAULT_PAIRS):
        measured = measure_saved(ActivationPair.from_spec(p.spec), x).per_element
        assert measured == expected_bytes_per_element(p.saves, p.spec.rule.bits, 4), p.name


def test_native_ops_save_a_full_tensor_and_aliases_are_not_new_writes():
    x = _x()
    relu = measure_saved(torch.relu, x)  # keeps its output
    silu = measure_saved(F.silu, x)  # keeps its input
    assert relu.per_element == silu.per_element == 4.0
    assert relu.new_bytes == silu.new_bytes == 0
    packed = measure_saved(ActivationPair("relu", "rectangular"), x)
    assert packed.new_bytes == packed.bytes == x.numel() // 8


def test_float64_input_state_is_eight_bytes():
    assert measure_saved(ActivationPair("relu", "b_silu"), _x(torch.float64)).per_element == 8.0


@pytest.mark.parametrize("backward", ["rectangular", "b_silu", "quantized"])
def test_benchmark_and_run_record_count_the_same_bytes(backward):
    # One counter behind both: a benchmark row and a run record cannot disagree on a pair's bytes.
    x = _x()
    pair = ActivationPair("relu", backward)
    model = nn.Sequential(pair)
    bench = measure_saved(pair, x).bytes
    record = saved_bytes_by_activation(model, lambda: model(x))["activations"]
    assert bench == record == count_saved(lambda: pair(x)).total > 0

"""Few-bit quantization: optimal piecewise-constant fits of a rule, cached."""
import math

import pytest
import torch

from harness.activations import ActivationPair, make_pair
from harness.activations import fewbit
from harness.activations.fewbit import fit_piecewise_constant, fit_rule

TARGETS = ["b_silu", "fast_sigmoid", "atan", "erf", "triangular", "nelu", "exact"]


def weighted_rmse(spec, target):
    """sqrt(E_{x~N(0,1)} (q(x) - g(x))^2), by quadrature on a fine grid independent of the fit's."""
    x = torch.linspace(-6, 6, 20001, dtype=torch.float64)
    w = torch.exp(-x * x / 2)
    q = spec.rule.values(x)
    g = target.rule.values(x)
    return math.sqrt(float((w * (q - g) ** 2).sum() / w.sum()))


# Fitting 2^8 levels is the slowest fit there is (about 3 s per rule and bit depth set on an idle
# core): one target in the fast suite, the rest with the slow tests (CI runs both).
FAST_TARGETS = ("b_silu",)


@pytest.mark.parametrize("of", [t if t in FAST_TARGETS else pytest.param(t, marks=pytest.mark.slow) for t in TARGETS])
def test_eight_bits_is_close_to_the_target_and_more_bits_never_fit_worse(of):
    forward = "silu" if of == "exact" else "relu"
    target = make_pair(forward, of)
    x = torch.linspace(-6, 6, 20001, dtype=torch.float64)
    w = torch.exp(-x * x / 2)
    scale = math.sqrt(float((w * target.rule.values(x) ** 2).sum() / w.sum()))
    # One fit per bit depth, the quantized pairs' own (cached: the saved-state tests reuse them);
    # errors on a quadrature grid independent of the fit's.
    errors = [weighted_rmse(make_pair(forward, "quantized", bits=b, of=of), target) for b in range(1, 9)]
    # Stated tolerance: at 8 bits the N(0,1)-weighted RMS error is under 2% of the rule's RMS.
    assert errors[-1] < 0.02 * scale, errors
    # 2^(b+1) levels can copy the 2^b fit, so the optimal fit never gets worse with more bits.
    assert all(a >= b * (1 - 1e-6) for a, b in zip(errors, errors[1:])), errors


def test_dynamic_program_finds_the_optimal_split_of_a_step():
    x = torch.linspace(-1, 1, 200, dtype=torch.float64)
    g = (x > 0.3).double() * 2.0
    fit = fit_piecewise_constant(g, x, torch.ones_like(x), 2)
    assert fit.rmse < 1e-12
    assert fit.levels.tolist() == [0.0, 2.0]
    assert abs(fit.borders.item() - 0.3) < 0.011


def test_levels_are_weighted_means_over_their_intervals():
    x = torch.linspace(-6, 6, 1024, dtype=torch.float64)
    w = torch.exp(-x * x / 2)
    g = torch.sigmoid(x) * (1 + (x + 1.67) * (1 - torch.sigmoid(x)))
    fit = fit_piecewise_constant(g, x, w, 4)
    codes = torch.bucketize(x, fit.borders)
    for k in range(4):
        sel = codes == k
        torch.testing.assert_close(fit.levels[k], (w[sel] * g[sel]).sum() / w[sel].sum())


def test_fit_is_cached_in_memory_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    fewbit._MEMORY.clear()
    fits = []
    real = fewbit.fit_piecewise_constant
    monkeypatch.setattr(fewbit, "fit_piecewise_constant", lambda *a: fits.append(1) or real(*a))

    first = fit_rule("cache-test", torch.tanh, 3)
    fit_rule("cache-test", torch.tanh, 3)
    assert len(fits) == 1 and len(list((tmp_path / "fewbit").glob("*.pt"))) == 1
    fewbit._MEMORY.clear()
    again = fit_rule("cache-test", torch.tanh, 3)  # from disk
    assert len(fits) == 1 and torch.equal(first.levels, again.levels)
    # Same key, different function (an edited rule): refitted, never a stale cache hit.
    edited = fit_rule("cache-test", lambda x: torch.tanh(2 * x), 3)
    assert len(fits) == 2 and not torch.equal(edited.levels, first.levels)


def test_quantized_pair_gradient_is_the_fitted_level_times_upstream():
    spec = make_pair("relu", "quantized", bits=2, of="b_silu")
    x = torch.linspace(-4, 4, 101, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(ActivationPair.from_spec(spec)(x).sum(), x)
    assert len(set(grad.tolist())) <= 4
    levels = spec.rule.levels_table
    assert set(round(v, 9) for v in grad.tolist()) <= set(round(v, 9) for v in levels.tolist())


def test_quantizing_a_stochastic_rule_is_refused():
    with pytest.raises(ValueError, match="deterministic"):
        make_pair("relu", "quantized", of="full_jam")

"""Conformance of every registered backward rule: formulas, consistency, randomness."""
import math

import pytest
import torch

from harness.activations import FORWARDS, RULES, ActivationPair, RandomSource, make_pair
from harness.activations.definitions import canonical_names
from support.probes import smooth_points

X = torch.tensor([-2.0, -1.0, -0.5, -0.2, 0.0, 0.1, 0.5, 1.0], dtype=torch.float64)


def grad_of(forward, backward, x, seed=0, **params):
    """dL/dx of sum(pair(x)) (so dL/dy = 1 and the gradient is g itself)."""
    spec = make_pair(forward, backward, rng=RandomSource(seed), **params)
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(ActivationPair.from_spec(spec)(x).sum(), x)
    return g


# Hand-computed values (calculator, from the formulas in the papers).
HAND = {
    "b_silu": ([0.0, 1.0, -2.0], [0.9175, 1.2560124403847615, 0.0845550388389604]),
    "nelu": ([1.0, 0.5, 0.0, -0.5, -1.0, -2.0], [1.0, 1.0, 0.0, -0.064, -0.05, -0.016]),
    "fast_sigmoid": ([0.0, 0.1, -0.2, 1.0], [1.0, 1 / 12.25, 1 / 36, 1 / 676]),
    "atan": ([0.0, 0.5, -1.0, 0.1], [1.0, 0.288400439142001, 0.09199966835037524, 0.9101698376462755]),
    "rectangular": ([-0.6, -0.5, 0.0, 0.5, 0.51], [0.0, 1.0, 1.0, 1.0, 0.0]),
    "triangular": ([0.0, 0.25, -0.5, 1.0, 2.0], [1.0, 0.75, 0.5, 0.0, 0.0]),
    # snnTorch 1.0.0 gives 3.3834, 9.1970, 15.1633, 25.0, 9.1970 at these points (run by hand).
    "spike_rate_escape": ([-1.0, 0.0, 0.5, 1.0, 2.0], [25 * math.exp(-2), 25 * math.exp(-1), 25 * math.exp(-0.5), 25.0, 25 * math.exp(-1)]),
    "s2nn": ([0.0, 1.0, -0.5], [1.0, 0.5, 0.41997434161402614]),
    "q_pseudo_spike": ([0.0, 0.5, -1.5], [1.0, 0.25, 0.0625]),
    "squarewave_fourier": ([0.0, 4.0, -8.0], [0.5, -0.5, 0.5]),
    "soft_sign": ([0.0, 0.5, -1.5], [1.0, 0.25, 0.0625]),
    "piecewise_exp": ([0.0, math.log(2.0), -math.log(4.0)], [0.5, 0.25, 0.125]),
    "fake_numerical_gradient": ([0.0, -0.0, 5.0, -10.0, 1.0], [0.3, 0.3, 0.2, 0.1, 0.3]),
    "log_tailed_relu": ([-1.0, 0.0, 0.5, 1.0, 4.0], [0.0, 0.0, 1.0, 1.0, 0.25]),
    # snnTorch 1.0.0's triangular gives 1, -1, -1 at -1, 0, 0.5 (run by hand).
    "snntorch_triangular": ([-1.0, -0.1, 0.0, 0.5, 2.0], [1.0, 1.0, -1.0, -1.0, -1.0]),
    "sfs": ([0.5, 1.0, 2.0, -2.0], [0.0, 0.0, 1 / 2601, 0.0]),
    "piecewise_leaky_relu": ([-1.0, -0.999, 0.0, 0.999, 1.0, 3.0], [0.01, 0.5, 0.5, 0.5, 0.01, 0.01]),
    "rect": ([-0.5, -0.499, 0.0, 0.499, 0.5], [0.0, 1.0, 1.0, 1.0, 0.0]),
    "lso": ([-1.0, 0.0, 1e-6, 3.0], [0.1, 0.1, 1.0, 1.0]),
    "leaky_k_relu": ([-1.0, -1e-6, 0.0, 3.0], [0.0, 0.0, 1.0, 1.0]),
    "heaviside": ([-1.0, 0.0, 1e-6, 3.0], [0.0, 0.0, 1.0, 1.0]),
}


@pytest.mark.parametrize("rule", sorted(HAND))
def test_rule_matches_hand_computed_values(rule):
    xs, expected = HAND[rule]
    g = grad_of("relu", rule, torch.tensor(xs, dtype=torch.float64))
    torch.testing.assert_close(g, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12)


# Independent re-implementations of the other formulas (docs/DESIGN.md table, default parameters).
FORMULAS = {
    "constant": lambda x: torch.ones_like(x),
    "ste": lambda x: torch.ones_like(x),
    "clipped_ste": lambda x: (x.abs() <= 1).double(),
    "sigmoid": lambda x: 4 * torch.sigmoid(4 * x) * (1 - torch.sigmoid(4 * x)),
    "erf": lambda x: 2 / math.sqrt(math.pi) * torch.exp(-4 * x**2),
    "piecewise_quadratic": lambda x: torch.where(x.abs() <= 1, 1 - x.abs(), torch.zeros_like(x)),
    "triangular": lambda x: torch.clamp(1 - x.abs(), min=0),
    "fast_sigmoid": lambda x: (1 + 25 * x.abs()) ** -2,
    "atan": lambda x: 1 / (1 + (math.pi * x) ** 2),
    "b_silu": lambda x: torch.sigmoid(x) * (1 + (x + 1.67) * (1 - torch.sigmoid(x))),
    "nelu": lambda x: torch.where(x > 0, torch.ones_like(x), 0.2 * x / (1 + x * x) ** 2),
    "rectangular": lambda x: ((x >= -0.5) & (x <= 0.5)).double(),
    # SpikingJelly surrogate module, default parameters.
    "piecewise_exp": lambda x: 0.5 * torch.exp(-x.abs()),
    "soft_sign": lambda x: 1 / (2 * 2 * (0.5 + x.abs()) ** 2),
    "super_spike": lambda x: 1 / (x.abs() + 1) ** 2,
    "nonzero_sign_log_abs": lambda x: 1 / (1 + x.abs()),
    "piecewise_leaky_relu": lambda x: torch.where(x.abs() < 1, 0.5, 0.01 * torch.ones_like(x)),
    "squarewave_fourier": lambda x: 4 / 8 * torch.cos(2 * math.pi / 8 * x),
    "s2nn": lambda x: torch.where(x < 0, 4 * torch.sigmoid(4 * x) * torch.sigmoid(-4 * x), 1 / (x.abs() + 1)),
    "q_pseudo_spike": lambda x: (1 + 2 * x.abs()) ** -2.0,
    "leaky_k_relu": lambda x: (x >= 0).double(),
    "log_tailed_relu": lambda x: torch.where(x <= 0, 0.0, torch.where(x <= 1, 1.0, 1 / x.abs().clamp(min=1))).double(),
    "fake_numerical_gradient": lambda x: torch.minimum(1 / x.abs(), torch.tensor(0.3, dtype=x.dtype)),
    "rect": lambda x: (x.abs() < 0.5).double(),
    # snnTorch surrogate module, default parameters.
    "heaviside": lambda x: (x > 0).double(),
    "spike_rate_escape": lambda x: 25 * torch.exp(-(x - 1).abs()),
    "lso": lambda x: torch.where(x > 0, 1.0, 0.1 * torch.ones_like(x)),
    "sfs": lambda x: (x > 1).double() / (1 + 25 * x.abs()) ** 2,
    "snntorch_triangular": lambda x: torch.where(x < 0, 1.0, -1.0).double(),
}


@pytest.mark.parametrize("rule", sorted(FORMULAS))
def test_rule_matches_independent_formula(rule):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    torch.testing.assert_close(grad_of("relu", rule, x), FORMULAS[rule](x), rtol=1e-9, atol=1e-12)


def test_every_builtin_deterministic_rule_has_a_reference():
    """New built-in formulas need a reference above; combinators and jams are tested elsewhere."""
    names = {n for n in canonical_names(RULES) if RULES.get(n).fn is not None and not RULES.get(n).jam
             and RULES.get(n).fn.__module__.startswith("harness.activations.")}
    assert len(names) >= 25
    assert names <= set(FORMULAS), f"add a reference formula for {sorted(names - set(FORMULAS))}"


@pytest.mark.parametrize("rule", RULES.names())
@pytest.mark.parametrize("forward", ["relu", "tanh", "step"])
def test_backward_equals_rule_values_times_upstream(forward, rule):
    """The packed backward path gives exactly the rule's reference: g(x) * dL/dy, with g from
    `values`, for elementwise rules; the transform of that for gradient transforms."""
    x = smooth_points(200, dtype=torch.float32, lo=-3, hi=3)
    spec = make_pair(forward, rule, rng=RandomSource(7))
    x_ = x.clone().requires_grad_()
    y = ActivationPair.from_spec(spec)(x_)
    upstream = torch.linspace(-1, 1, x.numel())
    (grad,) = torch.autograd.grad(y, x_, upstream)
    expected = spec.rule.reference_grad(x, upstream, RandomSource(7))
    assert grad.shape == x.shape and grad.dtype == x.dtype
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-7)


STOCHASTIC = [n for n in RULES.names() if make_pair("relu", n).rule.stochastic]


def test_stochastic_rules_are_the_jams_and_noise():
    assert set(STOCHASTIC) == {"full_jam", "positive_jam", "rectangular_jam", "noise", "sso"}


@pytest.mark.parametrize("rule", STOCHASTIC)
def test_stochastic_rule_same_seed_same_gradient_other_seed_differs(rule):
    x = torch.linspace(-3, 3, 1000)
    a, b, c = grad_of("relu", rule, x, seed=1), grad_of("relu", rule, x, seed=1), grad_of("relu", rule, x, seed=2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_jamming_draws_uniform_magnitudes_inside_the_gate_only():
    x = torch.linspace(-8, 8, 20001)
    g = grad_of("relu", "rectangular_jam", x)
    inside = (x >= -5) & (x <= 5)
    assert (g[~inside] == 0).all()
    assert g[inside].min() >= 0 and g[inside].max() <= 1
    assert abs(g[inside].mean().item() - 0.5) < 0.02  # U(0,1) mean
    pos = grad_of("relu", "positive_jam", x)
    assert (pos[x < 0] == 0).all() and (pos[x >= 0] > 0).float().mean() > 0.99
    full = grad_of("relu", "full_jam", x)
    assert abs(full.mean().item() - 0.5) < 0.02 and abs(full.var().item() - 1 / 12) < 0.005


def test_noise_is_unbiased_around_the_exact_derivative():
    x = torch.linspace(-3, 3, 40000)
    exact = (x > 0).float()
    add = grad_of("relu", "noise", x, sigma=0.5)
    assert abs((add - exact).mean().item()) < 0.01 and abs((add - exact).std().item() - 0.5) < 0.01
    mult = grad_of("relu", "noise", x, sigma=0.5, mode="multiplicative")
    assert (mult[x <= 0] == 0).all()
    assert abs(mult[x > 0].mean().item() - 1) < 0.02
    torch.testing.assert_close(grad_of("relu", "noise", x, sigma=0.0), exact)
    quiet = grad_of("relu", "noise", x, sigma=0.1, of="fast_sigmoid")
    assert abs((quiet - (1 + 25 * x.abs()) ** -2).std().item() - 0.1) < 0.005


def test_exact_rule_of_every_forward_is_registered():
    for name in FORWARDS.names():
        assert FORWARDS.get(name).exact is not None, name


def test_sso_is_one_above_threshold_and_uniform_below():
    """snnTorch's SSO: 1 for x > 0; (U - 0.5 + mean) * variance, U ~ U(0, 1), for x <= 0."""
    x = torch.linspace(-3, 3, 40001)
    g = grad_of("relu", "sso", x)
    below = g[x <= 0]
    assert (g[x > 0] == 1).all()
    assert below.min() >= -0.1 and below.max() < 0.1 and abs(below.mean().item()) < 0.002
    assert abs(below.var().item() - 0.2**2 / 12) < 0.0003  # U(-0.1, 0.1)
    shifted = grad_of("relu", "sso", x, mean=0.5, variance=2.0)[x <= 0]
    assert shifted.min() >= 0 and shifted.max() < 2 and abs(shifted.mean().item() - 1.0) < 0.02


@pytest.mark.parametrize("rule,params,gate,levels", [
    ("piecewise_leaky_relu", {"w": 2.0, "c": -0.5}, lambda x: x.abs() < 2, (-0.5, 0.25)),
    ("rect", {"alpha": 4.0}, lambda x: x.abs() < 0.125, (0.0, 4.0)),
    ("leaky_k_relu", {"leak": 0.2, "k": 3.0}, lambda x: x >= 0, (0.2, 3.0)),
    ("lso", {"slope": 0.3}, lambda x: x > 0, (0.3, 1.0)),
    ("snntorch_triangular", {"t": 2.0}, lambda x: x >= 0, (2.0, -2.0)),
])
def test_gate_rules_take_their_parameters_and_store_one_bit(rule, params, gate, levels, cpu_path):
    x = torch.cat([torch.tensor([0.0, -0.0, 0.125, -0.125, 2.0, -2.0]), torch.randn(2000) * 2])
    spec = make_pair("step", rule, **params)
    assert spec.saves.value == "bits" and spec.rule.interval is not None  # the fused 1-bit path
    leaf = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(ActivationPair.from_spec(spec)(leaf).sum(), leaf)
    expected = torch.where(gate(x), levels[1], levels[0])
    assert torch.equal(g, expected)


def test_spiking_rule_parameters_reach_the_formula():
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    cases = {
        ("squarewave_fourier", (("n", 4), ("period", 2.0))):
            lambda x: 4 / 2 * sum(torch.cos((2 * i - 1) * math.pi * x) for i in (1, 2, 3)),
        ("spike_rate_escape", (("beta", 2.0), ("k", 3.0), ("c", 0.0))): lambda x: 3 * torch.exp(-2 * x.abs()),
        ("sfs", (("k", 2.0), ("b", -1.0))): lambda x: (x > -1).double() / (1 + 2 * x.abs()) ** 2,
        ("s2nn", (("alpha", 1.0), ("beta", 3.0))):
            lambda x: torch.where(x < 0, torch.sigmoid(x) * torch.sigmoid(-x), 3 / (x.abs() + 1)),
        ("q_pseudo_spike", (("alpha", 3.0),)): lambda x: (1 + x.abs()) ** -3.0,
        ("super_spike", (("alpha", 2.5),)): lambda x: 2.5 / (1 + x.abs()) ** 2,
        ("log_tailed_relu", (("alpha", 0.1),)): lambda x: torch.where(x <= 0, 0.1 * torch.ones_like(x), torch.where(x <= 1, 1.0, 1 / x.abs().clamp(min=1))),
    }
    for (rule, params), formula in cases.items():
        torch.testing.assert_close(grad_of("relu", rule, x, **dict(params)), formula(x), rtol=1e-12, atol=1e-12,
                                   msg=lambda m: f"{rule}: {m}")


@pytest.mark.parametrize("x", [-60.0, -1e4, -1e30, 60.0, 1e4, 1e30])
def test_no_rule_overflows_to_nan_at_large_inputs(x):
    """snnTorch's sigmoid surrogate gives NaN at x = -200 (its issue #427): ours must not."""
    t = torch.full((4,), x)
    for name in canonical_names(RULES):
        g = make_pair("relu", name).rule.reference_grad(t, torch.ones_like(t), RandomSource(0))
        assert not torch.isnan(g).any(), (name, x)

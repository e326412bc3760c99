"""Every registered forward declares `flat` and `relu_like`, and the declarations are true.

Checked numerically, independently of the declarations: a flat forward's exact derivative (the
registered rule, and a central difference of f itself) is 0 at random points; a relu-like forward
is exactly 0 on a whole half-line, and the others are not.
"""
import pytest
import torch

from harness.activations import FORWARDS, ActivationPair, build_forward, register_forward
from harness.activations.definitions import canonical_names

NAMES = canonical_names(FORWARDS)


def _random_points(seed: int = 0) -> torch.Tensor:
    """Random float64 points in [-6, 6], kept at least 1e-3 away from 0 (step and sign jump there)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(2000, generator=g, dtype=torch.float64) - 0.5) * 12
    return x[x.abs() > 1e-3]


@pytest.mark.parametrize("name", NAMES)
def test_every_forward_declares_both_properties_as_bools(name):
    definition = FORWARDS.get(name)
    assert isinstance(definition.flat, bool) and isinstance(definition.relu_like, bool)
    bound = build_forward(name)
    assert (bound.flat, bound.relu_like) == (definition.flat, definition.relu_like)


def test_declared_values_for_known_forwards():
    flat = {n for n in NAMES if FORWARDS.get(n).flat}
    relu_like = {n for n in NAMES if FORWARDS.get(n).relu_like}
    assert flat == {"step", "sign"}
    assert relu_like == {"relu", "relu6", "step", "hardsigmoid", "hardswish"}
    assert build_forward("swish").flat is False  # an alias shares its definition's properties


@pytest.mark.parametrize("name", NAMES)
def test_flat_matches_the_numerical_derivative(name):
    x = _random_points().requires_grad_()
    (exact,) = torch.autograd.grad(ActivationPair(name, "exact")(x).sum(), x)
    f, h = build_forward(name), 1e-6
    with torch.no_grad():
        central = (f(x + h) - f(x - h)) / (2 * h)
    if FORWARDS.get(name).flat:
        assert torch.count_nonzero(exact) == 0 and torch.count_nonzero(central) == 0
    else:
        assert torch.count_nonzero(exact) > 0 and torch.count_nonzero(central) > 0


@pytest.mark.parametrize("name", NAMES)
def test_relu_like_matches_an_exactly_zero_half_line(name):
    far = torch.linspace(3.0, 30.0, 1000, dtype=torch.float64)  # beyond every kink of these forwards
    f = build_forward(name)
    zero_on_a_half_line = bool((f(-far) == 0).all() or (f(far) == 0).all())
    assert zero_on_a_half_line == FORWARDS.get(name).relu_like


@pytest.mark.parametrize("flat, relu_like", [(None, False), (False, 1)])
def test_a_forward_must_declare_bools(flat, relu_like):
    with pytest.raises(TypeError, match="must be True or False"):
        register_forward("undeclared_test", flat=flat, relu_like=relu_like)
    assert "undeclared_test" not in FORWARDS

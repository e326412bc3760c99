"""Registering a new forward or rule: one decorated function, then it is everywhere."""
import pytest
import torch

from harness.activations import FORWARDS, RULES, ActivationPair, Saves, make_pair, register_forward, register_rule
from harness.errors import UnknownNameError
from harness.registry import Registry


@pytest.fixture
def softsign_and_hat():
    """Register a forward and a rule for the duration of one test."""

    @register_forward("softsign_test", flat=False, relu_like=False)
    def softsign(x):
        """f(x) = x / (1 + |x|)."""
        return x / (1 + x.abs())

    @softsign.derivative(saves="input")
    def _(x):
        """f'(x) = 1 / (1 + |x|)^2."""
        return 1 / (1 + x.abs()) ** 2

    @register_rule("hat_test", saves="input", h=0.5)
    def hat(x, *, h):
        """g(x) = h for |x| < 1 else 0."""
        return torch.where(x.abs() < 1, h, 0.0)

    yield
    FORWARDS._entries.pop("softsign_test")
    RULES._entries.pop("hat_test")


def test_new_entries_work_in_pairs_combinators_and_gradcheck(softsign_and_hat):
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ActivationPair("softsign_test", "exact"), (x,))
    (g,) = torch.autograd.grad(ActivationPair("relu", "hat_test", h=0.25)(x).sum(), x)
    torch.testing.assert_close(g, torch.where(x.abs() < 1, 0.25, 0.0).double())
    assert make_pair("relu", "quantized", bits=2, of="hat_test").saves is Saves.CODES
    assert make_pair("tanh", "derivative_of", of="softsign_test").saves is Saves.INPUT


def test_new_entries_become_hydra_options(softsign_and_hat):
    from harness.sweep.configs import registry_nodes

    nodes = registry_nodes()
    assert nodes["forward"]["softsign_test"] == {"name": "softsign_test"}
    assert nodes["backward"]["hat_test"] == {"name": "hat_test", "h": 0.5}


def test_registering_twice_or_without_storage_kind_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_forward("relu", flat=False, relu_like=True)(lambda x: x)
    with pytest.raises(ValueError, match="say what it saves"):
        register_rule("nosave_test")(lambda x: x)


def test_registry_error_lists_all_names():
    reg = Registry("widget")
    reg.add("alpha", 1)
    reg.add("beta", 2)
    with pytest.raises(UnknownNameError, match=r"Unknown widget 'alpah'\. Did you mean 'alpha'\? Valid widgets: alpha, beta\."):
        reg.get("alpah")

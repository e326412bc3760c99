"""The catalogue as a whole: every registered rule trains through a model, aliases behave as
their targets, and the README's rule table and counts match the registry."""
import re
from pathlib import Path

import pytest
import torch

from harness.activations import FORWARDS, RULES, ActFactory, RandomSource, UnknownNameError, make_pair
from harness.activations.definitions import aliases, canonical_name, canonical_names
from harness.models import build_model

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("rule", canonical_names(RULES))  # aliases are their targets (tested below)
def test_every_rule_backpropagates_through_a_tiny_model(rule):
    """Linear -> pair -> Linear: the first layer's gradient is the chain rule with the rule's
    reference dL/dx (drawn from the same seed), and a harness MLP takes a finite step."""
    forward = "step"  # a spiking forward: the rule alone carries the gradient
    torch.manual_seed(0)
    act = ActFactory(forward, rule, seed=5)
    first, last = torch.nn.Linear(6, 9), torch.nn.Linear(9, 3)
    model = torch.nn.Sequential(first, act(), last)
    x = torch.randn(16, 6)
    model(x).square().mean().backward()
    z = first(x).detach()
    y = act.spec.forward(z).requires_grad_()
    (upstream,) = torch.autograd.grad(last(y).square().mean(), y)
    dz = act.spec.rule.reference_grad(z, upstream, RandomSource(5))
    torch.testing.assert_close(first.weight.grad, dz.t() @ x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.bias.grad, dz.sum(0), rtol=1e-5, atol=1e-6)

    mlp = build_model("mlp", input_shape=(6,), num_classes=3, width=8, act=ActFactory(forward, rule, seed=5))
    loss = torch.nn.functional.cross_entropy(mlp(x), torch.randint(0, 3, (16,)))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mlp.parameters())


def test_the_catalogue_has_at_least_thirty_rules_and_combinators():
    assert len(canonical_names(RULES)) >= 30
    assert len(canonical_names(FORWARDS)) >= 18


def test_aliases_are_their_targets_with_the_same_options():
    from harness.sweep.configs import registry_nodes

    nodes = registry_nodes()
    for registry, group in ((FORWARDS, "forward"), (RULES, "backward")):
        table = aliases(registry)
        assert table, group
        for alias, target in table.items():
            assert registry.get(alias) is registry.get(target)
            assert canonical_name(registry, alias) == target
            assert {**nodes[group][alias], "name": target} == nodes[group][target]
    assert {"swish": "silu", "logistic": "sigmoid", "heaviside": "step", "linear": "identity"}.items() <= aliases(FORWARDS).items()
    assert aliases(RULES)["tied"] == "exact"


def test_an_alias_gives_its_targets_gradient_and_describes_itself_canonically():
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    for forward, canonical, rule, target, params in [("swish", "silu", "tied", "exact", {"beta": 1.5}),
                                                      ("heaviside", "step", "deterministic_pass", "ste", {}),
                                                      ("logistic", "sigmoid", "gaussian", "erf", {"a": 3.0})]:
        spec, ref = make_pair(forward, rule, **params), make_pair(canonical, target, **params)
        torch.testing.assert_close(spec.forward(x), ref.forward(x))
        torch.testing.assert_close(spec.rule.reference_grad(x, torch.ones_like(x)), ref.rule.reference_grad(x, torch.ones_like(x)))
        assert spec.describe() == ref.describe()


def test_unknown_names_suggest_aliases_too():
    with pytest.raises(UnknownNameError, match="Did you mean 'swish'"):
        make_pair("swissh", "exact")
    with pytest.raises(UnknownNameError, match="'tied'"):
        make_pair("relu", "tide")
    with pytest.raises(UnknownNameError, match="'super_spike'"):
        make_pair("step", "superspike")


def _readme_section() -> str:
    text = README.read_text()
    start = text.index("## Forward functions and backward rules")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_counts_match_the_registry():
    section = _readme_section()
    counts = re.search(r"\*\*(\d+) forwards\*\* \(plus (\d+) aliases\) and \*\*(\d+) rules and combinators\*\* \(plus (\d+) aliases\)", section)
    assert counts, "the README's rule section must state the catalogue counts"
    assert [int(c) for c in counts.groups()] == [len(canonical_names(FORWARDS)), len(aliases(FORWARDS)),
                                                 len(canonical_names(RULES)), len(aliases(RULES))]


def test_readme_rule_table_lists_every_rule_once_and_every_alias():
    section = _readme_section()
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    names = [re.match(r"\| `(\w+)", row).group(1) for row in rows]
    assert sorted(names) == sorted(canonical_names(RULES)), set(names) ^ set(canonical_names(RULES))
    for alias in list(aliases(FORWARDS)) + list(aliases(RULES)):
        assert f"`{alias}`" in section, alias
    for forward in canonical_names(FORWARDS):
        assert re.search(rf"\b{forward}\b", section), forward

"""Activation factories for the model tests.

* ``simple_act``: plain torch modules (nn.ReLU / nn.Sigmoid / nn.Tanh, straight-through step/sign),
  i.e. the "trivial pair" whose backward is the true derivative (or identity for step/sign).
* ``pair_act``: a non-trivial pair from harness.activations: forward relu (or the requested
  forward), backward multiplies by the rectangle 1[-0.5 <= x <= 0.5].
* ``counting_act``: records every call and its ``forward`` argument, so tests can check how many
  activation slots a model has and that the models use nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

from harness.activations import ActivationPair

# Builtin activation modules that must not survive anywhere in a model built through act().
BUILTIN_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Softplus, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
)

_FUNCTIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {
    None: torch.relu,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "step": lambda x: (x >= 0).to(x.dtype),
    "sign": lambda x: torch.where(x >= 0, 1.0, -1.0).to(x.dtype),
}


class _StraightThrough(torch.autograd.Function):
    """Forward fn(x), backward identity (the plain STE for step/sign)."""

    @staticmethod
    def forward(ctx, x, fn):
        return fn(x)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class StraightThroughAct(nn.Module):
    """A step/sign forward with identity backward."""

    def __init__(self, forward: str) -> None:
        super().__init__()
        self.fn = _FUNCTIONS[forward]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(x, self.fn)


class TaggedAct(nn.Module):
    """Applies the named function with torch ops; not a builtin activation class on purpose."""

    def __init__(self, forward: str | None) -> None:
        super().__init__()
        self.kind = forward
        self.fn = _FUNCTIONS[forward]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def simple_factory(forward: str | None = None) -> nn.Module:
    """Trivial pairs: torch's own modules."""
    if forward in ("step", "sign"):
        return StraightThroughAct(forward)
    return {None: nn.ReLU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[forward]()


def pair_factory(forward: str | None = None) -> nn.Module:
    """Non-trivial pair: configured forward relu, backward rectangular surrogate."""
    return ActivationPair(forward=forward or "relu", backward="rectangular")


class CountingFactory:
    """Wraps a factory (default TaggedAct) and records each call's ``forward`` and module."""

    def __init__(self, inner: Callable[..., nn.Module] | None = None) -> None:
        self.inner = inner
        self.calls: list[str | None] = []
        self.modules: list[nn.Module] = []

    def __call__(self, forward: str | None = None) -> nn.Module:
        module = self.inner(forward) if self.inner else TaggedAct(forward)
        self.calls.append(forward)
        self.modules.append(module)
        return module


def foreign_activations(model: nn.Module, factory_modules: list[nn.Module]) -> list[str]:
    """Names of builtin activation modules in ``model`` outside the factory's own modules."""
    own = {id(m) for m in factory_modules}
    skip_prefixes: list[str] = []
    found = []
    for name, module in model.named_modules():
        if id(module) in own:
            skip_prefixes.append(name + ".")  # a pair may legitimately wrap torch modules
            continue
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if isinstance(module, BUILTIN_ACTIVATIONS):
            found.append(name)
    return found


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float = 0.1):
    """One SGD step on cross-entropy; return (loss, {param name: change norm}, grads present)."""
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    has_grad = {n: p.grad is not None for n, p in model.named_parameters()}
    optimizer.step()
    change = {n: (p.detach() - before[n]).norm().item() for n, p in model.named_parameters()}
    return loss.item(), change, has_grad


@pytest.fixture
def train_step():
    return sgd_step


@pytest.fixture
def simple_act() -> Callable[..., nn.Module]:
    return simple_factory


@pytest.fixture
def pair_act() -> Callable[..., nn.Module]:
    return pair_factory


@pytest.fixture
def counting_act() -> CountingFactory:
    return CountingFactory()


@pytest.fixture
def make_counting() -> type[CountingFactory]:
    """The CountingFactory class, for tests that wrap another factory."""
    return CountingFactory


@pytest.fixture
def find_foreign() -> Callable[[nn.Module, list[nn.Module]], list[str]]:
    return foreign_activations


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)

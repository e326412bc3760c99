"""The pair: forward f with backward rule g, as one autograd.Function for every combination.

    y = f(x)                          (forward)
    dL/dx = dL/dy * g(x)              (backward; g need not be f')

This is the one place that decides how a (forward, rule) pair becomes an autograd function:
`_PairFunction` for every combination, and for gate rules with a fused forward on float32 CPU
tensors the same computation as one C++ autograd function (`apply_pair`). Which backend runs
the bit work is decided by `backends.backend_for`.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from . import combinators, forwards, rules, spiking, transforms  # noqa: F401  (registers the built-ins)
from . import aliases  # noqa: F401  (after the built-ins: aliases name them)
from .backends import backend_for
from .definitions import FORWARDS, RULES, BoundForward, ParameterError, build_forward
from .saved_state import BoundRule, RandomSource, Saves, StateMeta


class PairSpec:
    """A bound (forward, rule) pair and the random source its stochastic rules draw from."""

    def __init__(self, forward: BoundForward, rule: BoundRule, rng: RandomSource | None = None):
        self.forward = forward
        self.rule = rule
        self.rng = rng if rng is not None else RandomSource(0)
        self.gate_pair_args = rule.fused_pair_args(forward)
        self.fused_gate = None  # the backend's callable for gate_pair_args, bound on first use

    def __getstate__(self) -> dict:
        # The bound C++ callable is a cache: a pickled model must not need the extension to load.
        return {**self.__dict__, "fused_gate": None}

    def describe(self) -> str:
        """'forward/rule' with parameters, for logs and tables."""
        return f"{self.forward.describe()}/{self.rule.describe()}"

    @property
    def saves(self) -> Saves:
        return self.rule.saves


class _PairFunction(torch.autograd.Function):
    """y = f(x); dL/dx = dL/dy * g. Saves only what the rule needs (see saved_state)."""

    @staticmethod
    def forward(ctx, x: Tensor, spec: PairSpec) -> Tensor:
        y, saved = spec.rule.forward_and_encode(x, spec.forward)
        ctx.spec = spec
        ctx.meta = StateMeta(x.shape, x.numel())
        ctx.save_for_backward(*saved)
        return y

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        spec: PairSpec = ctx.spec
        if grad_output.requires_grad:
            # create_graph=True (double backward, e.g. a gradient penalty): a product autograd can
            # differentiate; the fused kernels would return a result without history.
            return spec.rule.differentiable_grad(grad_output, ctx.saved_tensors, ctx.meta, spec.rng), None
        grad = spec.rule.grad_input(grad_output, ctx.saved_tensors, ctx.meta, spec.rng)
        return grad, None


def split_params(forward: str, backward: str, params: dict[str, Any]) -> tuple[dict, dict]:
    """Route flat `**params` to the forward or the rule by name; ambiguous names are an error."""
    f_names = set(FORWARDS.get(forward).params)
    rule = RULES.get(backward)
    r_names = set(rule.params)
    if rule.builder is not None:  # combinators also take their inner rule's / forward's parameters
        of = params.get("of", rule.params["of"].default if "of" in rule.params else "exact")
        inner = FORWARDS.get(of) if backward == "derivative_of" else (RULES.get(of) if of != "exact" else None)
        r_names |= set(inner.params) if inner is not None else set()
    fwd, bwd = {}, {}
    for key, value in params.items():
        in_f, in_r = key in f_names, key in r_names
        if in_f and in_r:
            raise ParameterError(
                f"parameter {key!r} belongs to both forward {forward!r} and rule {backward!r}; "
                "pass forward_params=... / backward_params=... instead."
            )
        if in_f:
            fwd[key] = value
        elif in_r or rule.builder is not None:  # combinators pass extras to their inner rule
            bwd[key] = value
        else:
            raise ParameterError(
                f"unknown parameter {key!r} for pair {forward}/{backward}. Forward parameters: "
                f"{sorted(f_names) or 'none'}; rule parameters: {sorted(r_names) or 'none'}."
            )
    return fwd, bwd


def make_pair(
    forward: str = "relu",
    backward: str = "exact",
    *,
    forward_params: dict[str, Any] | None = None,
    backward_params: dict[str, Any] | None = None,
    rng: RandomSource | None = None,
    **params: Any,
) -> PairSpec:
    """Build and validate a pair; raises before any training on unknown names or bad params."""
    fwd, bwd = split_params(forward, backward, params)
    bound_forward = build_forward(forward, {**(forward_params or {}), **fwd})
    rule = RULES.get(backward).bind(bound_forward, {**(backward_params or {}), **bwd})
    return PairSpec(bound_forward, rule, rng)


def apply_pair(x: Tensor, spec: PairSpec) -> Tensor:
    """Apply a built pair to `x` (the functional core).

    Gate rules with a fused forward (relu/step) run in one C++ call where the backend has one
    (the CPU kernels' `gate_pair`, float32): the same kernels and saved bits as `_PairFunction`,
    with a hand-written autograd node instead of its ~10 us of Python per call. Everything else,
    and every compiled graph, goes through `_PairFunction`. Without a backward to prepare
    (no_grad, evaluation, or an input that needs no gradient) it is the forward alone: no bits
    packed, nothing saved.
    """
    if not (x.requires_grad and torch.is_grad_enabled()):
        return spec.forward(x)
    bind = backend_for(x).gate_pair  # None inside compiled graphs: their tracer never reads
    if bind is not None and spec.gate_pair_args is not None:  # the floats (no guards on them)
        fused = spec.fused_gate
        if fused is None:
            fused = spec.fused_gate = bind(*spec.gate_pair_args)
        return fused(x)
    return _PairFunction.apply(x, spec)


@functools.lru_cache(maxsize=256)
def _cached_spec(forward: str, backward: str, frozen: tuple) -> PairSpec:
    return make_pair(forward, backward, **dict(frozen))


def pair(x: Tensor, forward: str = "relu", backward: str = "exact", **params: Any) -> Tensor:
    """Functional form: `pair(x, "relu", "b_silu", a=1.67)`. Specs are cached per arguments."""
    return apply_pair(x, _cached_spec(forward, backward, tuple(sorted(params.items()))))


class ActivationPair(nn.Module):
    """nn.Module form of a pair: `ActivationPair(forward="step", backward="fast_sigmoid", k=25)`.

    `rng` (a RandomSource) is shared by the pairs of one model so stochastic rules draw from a
    single seeded stream; `seed()` reseeds it.
    """

    def __init__(
        self,
        forward: str = "relu",
        backward: str = "exact",
        *,
        forward_params: dict[str, Any] | None = None,
        backward_params: dict[str, Any] | None = None,
        rng: RandomSource | None = None,
        **params: Any,
    ):
        super().__init__()
        self.spec = make_pair(forward, backward, forward_params=forward_params, backward_params=backward_params, rng=rng, **params)

    @classmethod
    def from_spec(cls, spec: PairSpec) -> "ActivationPair":
        """Wrap an existing spec (shares its random source)."""
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        module.spec = spec
        return module

    def forward(self, x: Tensor) -> Tensor:
        return apply_pair(x, self.spec)

    def seed(self, seed: int) -> None:
        """Reseed the random source of stochastic rules."""
        self.spec.rng.seed(seed)

    def extra_repr(self) -> str:
        return self.spec.describe()

"""The two registries (forward functions, backward rules) and the decorators that fill them.

Register a forward::

    @register_forward("softsign", flat=False, relu_like=False)
    def softsign(x):
        '''f(x) = x / (1 + |x|).'''
        return x / (1 + x.abs())

    @softsign.derivative(saves="input")
    def _(x):
        '''f'(x) = 1 / (1 + |x|)^2.'''
        return 1 / (1 + x.abs()) ** 2

Every forward declares two properties that diagnostics and records read (no name lists elsewhere):
`flat` (its exact derivative is 0 almost everywhere, as for step and sign: training needs a
surrogate, and gradient fidelity against the exact gradient is undefined) and `relu_like` (it is
exactly 0 on a half-line, so sparsity and dead units mean something).

Register a backward rule (the `saves` kind says what the forward pass stores, see saved_state)::

    @register_rule("rectangular", saves="bits", a=-0.5, b=0.5, check=lambda a, b: a <= b or "a must be <= b")
    def rectangular(*, a, b):
        '''g(x) = 1[a <= x <= b]. Source: ...'''
        return Interval(a, b)

What the function returns depends on `saves`:
- "bits": a gate, g = hi where it holds and lo elsewhere (`levels=(lo, hi)`, default (0, 1)).
  Either an `Interval` built from the parameters alone (as above; it gets a fused fast path),
  or, for any other gate, a function `fn(x, **params)` returning a bool tensor.
- "input": g(x); "output": g as a function of y = f(x); "nothing": a constant number.
`jam=True` multiplies g by fresh U(0,1) draws in every backward pass.

Everything registered appears in the Hydra config groups and the conformance tests without
further edits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import Tensor

from harness.registry import Param, ParameterError, Registry, as_params, bind_params
from .saved_state import (
    BoundRule,
    ConstantRule,
    GateRule,
    InputRule,
    OutputRule,
    Saves,
    UniformJam,
)

_SIMPLE_RULES = {Saves.NOTHING: ConstantRule, Saves.BITS: GateRule, Saves.INPUT: InputRule, Saves.OUTPUT: OutputRule}


@dataclass(eq=False)
class RuleDef:
    """A registered backward rule: formula function, storage kind and parameter specs.

    `builder`, when set, makes a combinator rule (exact, derivative_of, noise, quantized) that
    builds its BoundRule from the forward and extra parameters meant for an inner rule.
    """

    name: str
    fn: Callable | None
    saves: Saves | None
    params: dict[str, Param]
    check: Callable | None = None
    levels: Callable[..., tuple[float, float]] | None = None
    jam: bool = False
    builder: Callable[..., BoundRule] | None = None
    doc: str = ""
    # dL/dx by torch's own backward kernel, `native(grad, saved, **params)` (exact rules of
    # smooth forwards only); returns None where it does not apply (e.g. silu with beta != 1).
    native: Callable[..., Tensor | None] | None = None

    def bind(self, forward: "BoundForward", params: dict[str, Any] | None = None) -> BoundRule:
        """Validate `params` and return the rule bound to `forward`."""
        params = dict(params or {})
        owner = f"backward rule {self.name!r}"
        if self.builder is not None:
            own = {k: params.pop(k) for k in list(params) if k in self.params}
            bound = bind_params(owner, self.params, own, self.check)
            return self.builder(forward, extra=params, **bound)
        bound = bind_params(owner, self.params, params, self.check)
        return make_bound(self, forward, bound)


def make_bound(rule: RuleDef, forward: "BoundForward", params: dict[str, Any], name: str | None = None) -> BoundRule:
    """Build the storage-specific BoundRule for a simple (non-combinator) rule."""
    cls = _SIMPLE_RULES[rule.saves]
    kwargs: dict[str, Any] = dict(name=name or rule.name, params=params, fn=rule.fn, forward_fn=forward)
    if rule.saves is Saves.BITS:
        kwargs["levels"] = tuple(float(v) for v in (rule.levels(**params) if rule.levels else (0.0, 1.0)))
    if rule.native is not None:
        kwargs["native"] = rule.native
    bound = cls(**kwargs)
    return UniformJam(name=bound.name, params=params, base=bound) if rule.jam else bound


@dataclass(eq=False)
class ForwardDef:
    """A registered forward function f with its exact derivative (a RuleDef) and its properties.

    `flat`: f' = 0 almost everywhere (step, sign). `relu_like`: f is exactly 0 on a half-line
    (relu, relu6, step, hardsigmoid, hardswish), at the default parameters.
    """

    name: str
    fn: Callable[..., Tensor]
    params: dict[str, Param]
    flat: bool
    relu_like: bool
    check: Callable | None = None
    exact: RuleDef | None = None
    doc: str = ""

    def __call__(self, x: Tensor, **params) -> Tensor:
        return self.fn(x, **params)

    def derivative(self, saves: str, levels: Callable | None = None, native: Callable | None = None):
        """Decorator: register f' in closed form; it receives the forward's parameters.

        `native(grad, saved, **params)`, optional for smooth forwards: dL/dy * f' by torch's
        own backward kernel (one vectorised pass, as fast as the native activation's backward),
        or None where it does not apply. The closed form stays the reference.
        """

        def wrap(fn: Callable) -> Callable:
            self.exact = RuleDef(
                name=f"{self.name}'", fn=fn, saves=Saves(saves), params=self.params,
                check=self.check, levels=levels, doc=(fn.__doc__ or "").strip(), native=native,
            )
            return fn

        return wrap

    def bind(self, params: dict[str, Any] | None = None) -> "BoundForward":
        """Validate parameters and return the forward with them fixed."""
        bound = bind_params(f"forward {self.name!r}", self.params, dict(params or {}), self.check)
        return BoundForward(self, bound)


@dataclass(eq=False)
class BoundForward:
    """A forward function with fixed parameters; `exact_rule()` is its true derivative."""

    definition: ForwardDef
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def flat(self) -> bool:
        """Whether the exact derivative is 0 almost everywhere (step, sign)."""
        return self.definition.flat

    @property
    def relu_like(self) -> bool:
        """Whether the output is exactly 0 on a half-line (sparsity and dead units mean something)."""
        return self.definition.relu_like

    def __call__(self, x: Tensor) -> Tensor:
        return self.definition.fn(x, **self.params)

    def exact_rule(self) -> BoundRule:
        """f'(x) as a BoundRule, with the forward's parameters."""
        if self.definition.exact is None:
            raise ValueError(f"forward {self.name!r} has no registered derivative")
        return make_bound(self.definition.exact, self, self.params, name="exact")

    def key(self) -> tuple:
        """Hashable identity (name and parameters)."""
        return (self.name, tuple(sorted(self.params.items())))

    def describe(self) -> str:
        """'name(k=v, ...)'."""
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({inner})" if inner else self.name


FORWARDS: Registry[ForwardDef] = Registry("forward")
RULES: Registry[RuleDef] = Registry("backward rule")


def register_forward(name: str, *, flat: bool, relu_like: bool, check: Callable | None = None, **params: Any):
    """Decorator registering a forward function `fn(x, **params) -> y` under `name`.

    `flat` and `relu_like` must be declared (True or False) for every forward: see ForwardDef.
    """
    for prop, value in (("flat", flat), ("relu_like", relu_like)):
        if not isinstance(value, bool):
            raise TypeError(f"forward {name!r}: {prop} must be True or False, got {value!r}")

    def wrap(fn: Callable[..., Tensor]) -> ForwardDef:
        definition = ForwardDef(name=name, fn=fn, params=as_params(params), flat=flat, relu_like=relu_like,
                                check=check, doc=(fn.__doc__ or "").strip())
        return FORWARDS.add(name, definition)

    return wrap


def register_rule(
    name: str,
    *,
    saves: str | None = None,
    check: Callable | None = None,
    levels: Callable | None = None,
    jam: bool = False,
    builder: Callable | None = None,
    **params: Any,
):
    """Decorator registering a backward rule under `name` (see the module docstring)."""

    def wrap(fn: Callable) -> Callable:
        if builder is None and saves is None:
            raise ValueError(f"rule {name!r}: say what it saves (saves='nothing'|'bits'|'input'|'output')")
        RULES.add(name, RuleDef(
            name=name, fn=None if builder else fn, saves=Saves(saves) if saves else None,
            params=as_params(params), check=check, levels=levels, jam=jam,
            builder=builder, doc=(fn.__doc__ or "").strip(),
        ))
        return fn

    return wrap


def build_forward(name: str, params: dict[str, Any] | None = None) -> BoundForward:
    """Look up and bind a forward function."""
    return FORWARDS.get(name).bind(params)


def build_rule(name: str, forward: BoundForward, params: dict[str, Any] | None = None) -> BoundRule:
    """Look up and bind a backward rule to `forward`."""
    return RULES.get(name).bind(forward, params)


# Other names people type for an entry (another library's name, the textbook name). An alias
# is the same definition under a second name: same parameters, same Hydra options, and the
# bound pair describes itself by the canonical name, so records say what actually ran.
_ALIASES: dict[str, dict[str, str]] = {"forward": {}, "backward rule": {}}


def register_alias(registry: Registry, alias: str, target: str) -> None:
    """Make `alias` a second name of `registry`'s entry `target` (e.g. swish -> silu)."""
    if alias in registry:
        raise ValueError(f"{registry.kind} {alias!r} is already registered")
    registry.add(alias, registry.get(target))
    _ALIASES.setdefault(registry.kind, {})[alias] = target


def aliases(registry: Registry) -> dict[str, str]:
    """{alias: canonical name} of `registry` (FORWARDS or RULES)."""
    return dict(_ALIASES.get(registry.kind, {}))


def canonical_name(registry: Registry, name: str) -> str:
    """The canonical name behind `name` (itself if it is not an alias)."""
    return _ALIASES.get(registry.kind, {}).get(name, name)


def canonical_names(registry: Registry) -> list[str]:
    """Registered names without the aliases, in registration order (the catalogue)."""
    return [n for n in registry.names() if n not in _ALIASES.get(registry.kind, {})]


__all__ = [
    "FORWARDS", "RULES", "ForwardDef", "RuleDef", "BoundForward", "ParameterError",
    "register_forward", "register_rule", "build_forward", "build_rule",
    "register_alias", "aliases", "canonical_name", "canonical_names",
]

"""Rules built from other rules or forwards: exact, derivative_of, noise, quantized (FreeGrad's
gradient transforms scale, clip_norm, centralize are in transforms.py).

They take their own parameters plus extra ones meant for the inner rule or forward, e.g.
`quantized(bits=2, of="b_silu", a=1.67)` or `derivative_of(of="silu", beta=1.0)`.
"""
from __future__ import annotations

import math
from typing import Any

from .definitions import FORWARDS, RULES, BoundForward, ParameterError, build_forward, register_rule
from .fewbit import fit_rule
from harness.registry import Param, choice, integer, nonnegative
from .saved_state import BoundRule, CodeRule, GateRule, GaussianNoise, InputRule, Interval, Saves


def _no_extra(rule: str, extra: dict[str, Any]) -> None:
    if extra:
        raise ParameterError(f"backward rule {rule!r} has no parameter {', '.join(map(repr, sorted(extra)))}.")


def _inner_rule(of: str, forward: BoundForward, extra: dict[str, Any]) -> BoundRule:
    """Bind the inner rule named by `of` ('exact' means the forward's own derivative)."""
    return RULES.get(of).bind(forward, extra)


def _elementwise_inner(rule: str, of: str, forward: BoundForward, extra: dict[str, Any]) -> BoundRule:
    """The inner rule, which must be of the form g(x) * dL/dy (not a gradient transform)."""
    base = _inner_rule(of, forward, extra)
    if not base.elementwise:
        raise ParameterError(f"backward rule {rule!r} needs an elementwise rule g(x) as `of`; {of!r} acts on the "
                             "whole upstream gradient (a gradient transform): apply it outside instead.")
    return base


def _build_exact(forward: BoundForward, *, extra: dict[str, Any]) -> BoundRule:
    _no_extra("exact", extra)
    return forward.exact_rule()


def _build_derivative_of(forward: BoundForward, *, of: str, extra: dict[str, Any]) -> BoundRule:
    h = build_forward(of, extra)
    rule = h.exact_rule()
    if rule.saves is Saves.OUTPUT and h.key() != forward.key():
        # h' is written in terms of y = h(x), but the pair's output is f(x): save x and
        # recompute h(x) in backward instead.
        fn = rule.fn
        rule = InputRule(name="exact", params=h.params, fn=lambda x, **p: fn(h(x), **p), forward_fn=forward)
    rule.name, rule.shown_params = "derivative_of", {"of": of, **h.params}
    rule.forward_fn = forward if rule.saves is not Saves.OUTPUT else h
    return rule


def _build_noise(forward: BoundForward, *, sigma: float, mode: str, of: str, extra: dict[str, Any]) -> BoundRule:
    shown = {"sigma": sigma, "mode": mode, "of": of, **extra}
    if mode == "gradient":  # FreeGrad's noise: on dL/dx itself, whatever the inner rule is
        from .transforms import GradientNoise  # transforms registers its rules after these

        return GradientNoise(name="noise", params={}, shown_params=shown, base=_inner_rule(of, forward, extra), sigma=sigma)
    base = _elementwise_inner("noise", of, forward, extra)
    return GaussianNoise(name="noise", params={}, shown_params=shown, base=base, sigma=sigma, mode=mode)


def _build_quantized(forward: BoundForward, *, bits: int, of: str, extra: dict[str, Any]) -> BoundRule:
    base = _elementwise_inner("quantized", of, forward, extra)
    if base.stochastic:
        raise ParameterError(f"backward rule 'quantized' needs a deterministic rule to fit; {of!r} is stochastic.")
    # The fit depends on the target g only; key it by what determines g.
    key = repr(("quantized", of, sorted(extra.items()), forward.key() if of == "exact" or base.saves is Saves.OUTPUT else None))
    fit = fit_rule(key, lambda x: base.values(x), bits)
    shown = {"bits": bits, "of": of, **extra}
    if bits == 1 and fit.borders.numel() == 1:
        # Two levels split at one border is a gate: store it as one and use the fused gate kernels.
        border, (lo, hi) = float(fit.borders[0]), fit.levels.tolist()
        return GateRule(name="quantized", params={}, shown_params=shown, forward_fn=forward,
                        fn=lambda: Interval(border, math.inf, closed_lo=False), levels=(lo, hi))
    return CodeRule(
        name="quantized", params={}, shown_params=shown, forward_fn=forward,
        borders=fit.borders, levels_table=fit.levels, nbits=bits,
    )


def _rule_name(default: str) -> Param:
    return Param(default)


@register_rule("exact", builder=_build_exact)
def exact():
    """g(x) = f'(x): the forward's own derivative, in closed form."""


@register_rule("derivative_of", builder=_build_derivative_of, of=_rule_name("silu"))
def derivative_of():
    """g(x) = h'(x) for another forward h (e.g. relu forward with silu' backward). Extra
    parameters go to h."""


@register_rule("noise", builder=_build_noise, sigma=nonnegative(0.1), mode=choice("additive", "multiplicative", "gradient"),
               of=_rule_name("exact"))
def noise():
    """g(x) = base(x) + sigma N(0, 1) (additive), or base(x) (1 + sigma N(0, 1))
    (multiplicative); base = the rule `of` (default: the exact derivative), sigma = 0.1.
    mode=gradient is FreeGrad's `noise`: dL/dx = base(x) dL/dy + sigma N(0, 1), noise on the
    gradient itself (a gradient transform, transforms.py). N is drawn fresh per element and
    backward pass from the run's seeded generator."""


@register_rule("quantized", builder=_build_quantized, bits=integer(2, 1, 8), of=_rule_name("exact"))
def quantized():
    """g(x) = the best piecewise-constant fit of the rule `of` with 2^bits levels, weighted by
    N(0, 1) (Few-Bit Backward, Novikov et al. 2023). Stores `bits` bits per element."""


__all__ = ["FORWARDS", "RULES"]

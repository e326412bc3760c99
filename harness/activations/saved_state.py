"""Bound backward rules: what each kind of rule saves in the forward pass and how it turns that
state back into dL/dx = dL/dy * g(x) in the backward pass.

Storage per element (docs/DESIGN.md section 2):

| `Saves`   | stored                          | example rules                          |
|-----------|---------------------------------|----------------------------------------|
| NOTHING   | nothing                         | constant / STE, full_jam, step's exact |
| BITS      | 1 bit, packed 8 per byte        | relu's exact, rectangular, clipped_ste |
| CODES     | b bits (planar), b in 1..8      | quantized(b, of=...)                   |
| INPUT     | x in the input dtype            | fast_sigmoid, b_silu, gelu's exact     |
| OUTPUT    | y = f(x) in the input dtype     | tanh's and sigmoid's exact             |

A `BoundRule` has its parameters fixed and is tied to the pair's forward function. Its
`multiplier` returns g (a tensor or a Python number) from the saved state; `grad_input` is
`dL/dy * g`; the bit work (packing, fused kernels, compiled-graph forms) runs on the backend
`backends.backend_for` picks per tensor, so a rule here only says what it saves and how g is
formed from it. `values(x)` evaluates g directly from x: the
reference used by tests, few-bit fitting and gradient-fidelity diagnostics; `reference_grad(x,
dL/dy)` is the reference dL/dx, which also covers the gradient transforms (transforms.py) that
have no elementwise g.
"""
from __future__ import annotations

import enum
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import torch
from torch import Tensor

from .backends import CodeTable, GateParams, backend_for
from .fused import fused_grad
from .packing import FORWARD_OPS, hash_uniform_reference, interval_mask


_M64 = 0xFFFFFFFFFFFFFFFF


def _splitmix64(z: int) -> int:
    """The splitmix64 finalizer: a well-mixed 64-bit value from any integer."""
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class Saves(str, enum.Enum):
    """What a rule stores for backward."""

    NOTHING = "nothing"
    BITS = "bits"
    CODES = "codes"
    INPUT = "input"
    OUTPUT = "output"


class RandomSource:
    """One seeded torch.Generator per device, shared by every pair a factory builds.

    Stochastic rules draw from it in backward, so a run with the same seed and the same
    execution order reproduces its gradients exactly.
    """

    def __init__(self, seed: int = 0):
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Reset all generators (and the hash-RNG draw counter) to `seed`."""
        self._seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}
        self._draws = 0

    def next_keys(self) -> tuple[int, int]:
        """Two 32-bit keys for the next counter-based draw (jamming): splitmix64(seed, draw)."""
        z = _splitmix64(self._seed * 0x9E3779B97F4A7C15 + self._draws * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB)
        self._draws += 1
        return z & 0xFFFFFFFF, z >> 32

    def get_state(self) -> dict:
        """Everything needed to replay the same draws (seed, draw counter, generator states)."""
        return {"seed": self._seed, "draws": self._draws, "generators": {d: g.get_state() for d, g in self._generators.items()}}

    def set_state(self, state: dict) -> None:
        """Restore a `get_state()`; generators created since are dropped (re-created identically)."""
        self._seed, self._draws = state["seed"], state["draws"]
        self._generators = {d: g for d, g in self._generators.items() if d in state["generators"]}
        for device, gen_state in state["generators"].items():
            self._generators[device].set_state(gen_state)

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The generator for `device`, created (and seeded) on first use.

        Under torch.compile a Generator object would break the graph, so compiled code draws
        from torch's global RNG instead (seeded by the trainer's torch.manual_seed): still
        reproducible, but a different stream from eager mode.
        """
        if torch.compiler.is_compiling():
            return None
        device = torch.device(device)
        if device not in self._generators:
            gen = torch.Generator(device=device)
            # Not the run seed itself: torch.manual_seed(seed) already drives weight init, and
            # the noise rule must not replay the bits that initialised the weights.
            gen.manual_seed(_splitmix64(self._seed ^ 0x5EED_0F_5A1A) & ((1 << 63) - 1))
            self._generators[device] = gen
        return self._generators[device]


@dataclass(frozen=True)
class Interval:
    """The gate 1[x in interval]; each end open or closed, infinite ends allowed.

    `contains` uses only comparison operators, so it works on torch tensors and numpy arrays
    alike (the CPU fast path compares in numpy, ~8x faster than torch's bool-output compare).
    """

    lo: float = -math.inf
    hi: float = math.inf
    closed_lo: bool = True
    closed_hi: bool = True

    def __post_init__(self):
        if not self.lo <= self.hi:
            raise ValueError(f"interval needs lo <= hi, got [{self.lo}, {self.hi}]")

    def contains(self, x):
        """Elementwise membership of x (tensor or array) in the interval."""
        return interval_mask(x, self.lo, self.hi, self.closed_lo, self.closed_hi)

    def kernel_args(self) -> tuple[float, float, bool, bool]:
        """(lo, hi, closed_lo, closed_hi) as the kernels take them: infinite ends closed, so
        +-inf inputs fall inside exactly as `contains` (which skips infinite ends) says."""
        return (float(self.lo), float(self.hi), bool(self.closed_lo or self.lo == -math.inf),
                bool(self.closed_hi or self.hi == math.inf))


class StateMeta(NamedTuple):
    """Shape information the backward pass needs to decode packed state (a tuple: built on
    every forward call, where a frozen dataclass cost a few microseconds)."""

    shape: torch.Size
    numel: int


def _as_tensor_like(g: Tensor | float, like: Tensor) -> Tensor:
    return g if isinstance(g, Tensor) else torch.full_like(like, g)


@dataclass(eq=False)
class BoundRule:
    """A backward rule with fixed parameters, tied to the pair's forward. Subclasses define storage."""

    name: str
    params: dict[str, Any]
    saves: Saves = field(init=False)
    bits: int = field(init=False, default=0)
    stochastic: bool = field(init=False, default=False)
    # True when dL/dx = dL/dy * g(x) elementwise; False for gradient transforms (clip_norm,
    # centralize, ...), which see the whole upstream gradient and have no g(x) of their own.
    elementwise: bool = field(init=False, default=True)

    def encode(self, x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
        """The tensors to save in the forward pass."""
        raise NotImplementedError

    def forward_and_encode(self, x: Tensor, forward: Callable[[Tensor], Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """y = forward(x) and the state to save; gate rules fuse both into one pass where they can."""
        y = forward(x)
        return y, self.encode(x, y)

    def multiplier(self, saved: tuple[Tensor, ...], meta: StateMeta, like: Tensor, rng: RandomSource) -> Tensor | float:
        """g from the saved state (tensor of `meta.shape`, or a number)."""
        raise NotImplementedError

    def fused_pair_args(self, forward) -> tuple | None:
        """Arguments of the CPU backend's `gate_pair` when the whole pair (forward + this rule) can run as
        one C++ autograd function; None otherwise (the general autograd.Function then runs)."""
        return None

    def grad_input(self, grad_output: Tensor, saved: tuple[Tensor, ...], meta: StateMeta, rng: RandomSource) -> Tensor:
        """dL/dx = dL/dy * g."""
        g = self.multiplier(saved, meta, grad_output, rng)
        return grad_output * g

    def differentiable_grad(self, grad_output: Tensor, saved: tuple[Tensor, ...], meta: StateMeta, rng: RandomSource) -> Tensor:
        """dL/dx in plain tensor ops that autograd can differentiate (double backward)."""
        return grad_output * self.multiplier(saved, meta, grad_output, rng)

    def reference_grad(self, x: Tensor, upstream: Tensor, rng: RandomSource | None = None) -> Tensor:
        """dL/dx for input x and upstream gradient dL/dy, computed directly from x (the
        reference the tests hold the packed backward to): g(x) * upstream for elementwise rules."""
        return self.values(x, rng) * upstream

    def values(self, x: Tensor, rng: RandomSource | None = None) -> Tensor:
        """g(x) evaluated directly (the reference; stochastic rules draw from `rng`)."""
        y = self.forward_fn(x) if self.saves is Saves.OUTPUT else x
        saved = self.encode(x, y)
        meta = StateMeta(x.shape, x.numel())
        return _as_tensor_like(self.multiplier(saved, meta, x, rng or RandomSource(0)), x)

    def describe(self) -> str:
        """'name(k=v, ...)' for logs and tables."""
        shown = self.shown_params if self.shown_params is not None else self.params
        inner = ", ".join(f"{k}={v}" for k, v in shown.items())
        return f"{self.name}({inner})" if inner else self.name

    forward_fn: Callable[[Tensor], Tensor] | None = field(default=None, repr=False)
    # Parameters as the user gave them, when they differ from what `fn` receives (combinators).
    shown_params: dict[str, Any] | None = field(default=None, repr=False)


def _scalar(value: float) -> Tensor:
    """A float64 CPU scalar: how a rule's number reaches a compiled graph without being guarded."""
    return torch.tensor(float(value), dtype=torch.float64)


def _fused_op(forward) -> int | None:
    """The backends' op code when `forward` (relu/step, no parameters) fuses with the state."""
    op = FORWARD_OPS.get(getattr(forward, "name", None))
    return op if op is not None and not forward.params else None


@dataclass(eq=False)
class ConstantRule(BoundRule):
    """g(x) = value(**params): saves nothing."""

    fn: Callable[..., float] = field(default=None, repr=False)

    def __post_init__(self):
        self.saves = Saves.NOTHING
        self.value = float(self.fn(**self.params))
        # What compiled graphs read: a bool (the same for every value but 1) and a tensor, not the
        # float itself, which Dynamo would guard on.
        self._unit = self.value == 1.0
        self._value = _scalar(self.value)

    def encode(self, x, y):
        return ()

    def multiplier(self, saved, meta, like, rng):
        return self.value

    def grad_input(self, grad_output, saved, meta, rng):
        if self._unit:
            return grad_output
        return grad_output * self._value


@dataclass(eq=False)
class GateRule(BoundRule):
    """g(x) = hi where the gate holds, lo elsewhere: saves one packed bit per element.

    The gate is an `Interval` (fused compare-and-pack) or a function `fn(x, **params) -> bool tensor`.
    """

    fn: Callable[..., Any] = field(default=None, repr=False)
    levels: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        self.saves = Saves.BITS
        self.bits = 1
        takes_x = any(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in inspect.signature(self.fn).parameters.values()
        )
        self.interval: Interval | None = None if takes_x else self.fn(**self.params)
        self.gate = GateParams.of(self.interval or Interval(), self.levels)

    def encode(self, x, y):
        if self.interval is not None:
            return (backend_for(x).forward_pack(x, 0, self.gate)[1],)
        return (backend_for(x).pack_bits(self.fn(x, **self.params)),)

    def forward_and_encode(self, x, forward):
        op = _fused_op(forward) if self.interval is not None else None
        if op is None:
            return super().forward_and_encode(x, forward)
        y, packed = backend_for(x).forward_pack(x, op, self.gate)
        return y, (packed,)

    def fused_pair_args(self, forward):
        op = _fused_op(forward) if self.interval is not None else None
        return None if op is None else (op, *self.gate.kernel_args, *self.gate.levels)

    def multiplier(self, saved, meta, like, rng):
        lo, hi = self.levels
        gate = backend_for(saved[0]).unpack_gate(saved[0], meta.numel, self.gate).view(meta.shape).to(like.device)
        return torch.where(gate, torch.tensor(hi, dtype=like.dtype, device=like.device),
                           torch.tensor(lo, dtype=like.dtype, device=like.device))

    def grad_input(self, grad_output, saved, meta, rng):
        return backend_for(grad_output).gate_mul(grad_output, saved[0], self.gate)


@dataclass(eq=False)
class SmoothRule(BoundRule):
    """g = fn(s) for a saved tensor s in the input dtype: x (`InputRule`) or y = f(x), the pair's
    output (`OutputRule`, free when the next layer saves y too)."""

    fn: Callable[..., Tensor] = field(default=None, repr=False)
    native: Callable[..., Tensor | None] | None = field(default=None, repr=False)
    SAVES = Saves.INPUT  # set by the two subclasses

    def __post_init__(self):
        self.saves = self.SAVES

    def encode(self, x, y):
        return (x,) if self.saves is Saves.INPUT else (y,)

    def multiplier(self, saved, meta, like, rng):
        return self.fn(saved[0], **self.params)

    def grad_input(self, grad_output, saved, meta, rng):
        """torch's own backward kernel where the rule has one (exact rules of native forwards),
        else the rule compiled into one kernel (large tensors), else the eager formula."""
        if self.native is not None:
            grad = self.native(grad_output, saved[0], **self.params)
            if grad is not None:
                return grad
        fused = fused_grad(self.fn, self.params, saved[0], grad_output)
        return fused if fused is not None else grad_output * self.fn(saved[0], **self.params)


@dataclass(eq=False)
class InputRule(SmoothRule):
    """g = fn(x): saves x in the input dtype."""

    SAVES = Saves.INPUT


@dataclass(eq=False)
class OutputRule(SmoothRule):
    """g = fn(y) with y = f(x) the pair's output: saves y."""

    SAVES = Saves.OUTPUT


@dataclass(eq=False)
class WrappedRule(BoundRule):
    """A rule built on an inner rule `base`: it stores exactly what `base` stores (same storage
    kind, bits, fused forward) and changes only how g is formed from it in backward. Jamming,
    noise, SSO and FreeGrad's elementwise scale are such wrappers."""

    base: BoundRule = field(default=None)

    def __post_init__(self):
        self.saves = self.base.saves
        self.bits = self.base.bits
        self.stochastic = True
        self.forward_fn = self.base.forward_fn

    def encode(self, x, y):
        return self.base.encode(x, y)

    def forward_and_encode(self, x, forward):
        return self.base.forward_and_encode(x, forward)


def uniform_draws(meta: StateMeta, like: Tensor, rng: RandomSource) -> Tensor:
    """U(0,1) of `meta.shape` from the counter-based hash keyed by the source's next draw (the
    stream the fused kernels generate); under torch.compile from torch's global RNG instead."""
    if torch.compiler.is_compiling():
        return torch.rand(meta.shape, device=like.device, dtype=like.dtype)
    key_a, key_b = rng.next_keys()
    return hash_uniform_reference(meta.numel, key_a, key_b, like.device).view(meta.shape).to(like.dtype)


def normal_draws(meta: StateMeta, like: Tensor, rng: RandomSource) -> Tensor:
    """N(0,1) of `meta.shape` from the source's generator (torch's global RNG under torch.compile)."""
    return torch.randn(meta.shape, generator=rng.generator(like.device), device=like.device, dtype=like.dtype)


def _jam(g, r, c):
    return g * r


def _uniform_outside(g, r, c):  # g is the base gate's 0/1 here
    return torch.where(g != 0, g, (r + c["shift"]) * c["scale"])


def _additive(g, r, c):
    return g + c["sigma"] * r


def _multiplicative(g, r, c):
    return g * (1.0 + c["sigma"] * r)


@dataclass(eq=False)
class RandomizedRule(WrappedRule):
    """g = combine(base's g, r, coefficients) with r drawn fresh in every backward pass: U(0,1)
    from the counter-based hash (`uniform_draws`: jamming, SSO) or N(0,1) from the source's
    generator (`normal_draws`: noise). The coefficients are kept as tensors, so a compiled graph
    takes them as inputs and serves every value (issue #14)."""

    draw: Callable[[StateMeta, Tensor, RandomSource], Tensor] = field(default=None, repr=False)
    combine: Callable[[Any, Tensor, dict], Tensor] = field(default=None, repr=False)
    coefficients: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        self._coefficients = {k: _scalar(v) for k, v in self.coefficients.items()}
        # Plain jamming of a 0/1 gate (or of no gate) is one fused pass: grad * gate * u.
        base = self.base
        plain = self.combine is _jam and (
            (isinstance(base, GateRule) and base.levels == (0.0, 1.0)) or (isinstance(base, ConstantRule) and base.value == 1.0))
        self._fused_jam = (isinstance(base, GateRule) if plain else None)  # None, or whether gated

    def multiplier(self, saved, meta, like, rng):
        r = self.draw(meta, like, rng)
        return self.combine(self.base.multiplier(saved, meta, like, rng), r, self._coefficients)

    def grad_input(self, grad_output, saved, meta, rng):
        if self._fused_jam is None:
            return super().grad_input(grad_output, saved, meta, rng)
        if not self._fused_jam:
            return backend_for(grad_output).jam_mul(grad_output, None, rng)
        return backend_for(grad_output).jam_mul(grad_output, saved[0], rng, self.base.gate)


def UniformJam(*, name: str, params: dict, base: BoundRule, **common) -> RandomizedRule:  # noqa: N802 (a constructor)
    """g = base(x) * U(0,1), U drawn fresh in every backward pass (Troiano et al. 'jamming').

    U comes from a counter-based hash keyed by the RandomSource's next draw (24-bit resolution,
    see packing.hash_uniform_reference): reproducible from the seed, and generated inside the
    fused backward kernel instead of a separate torch.rand pass (which alone costs ~6x a ReLU).
    Under torch.compile, U comes from torch's global RNG instead.
    """
    return RandomizedRule(name=name, params=params, base=base, draw=uniform_draws, combine=_jam, **common)


def UniformOutsideGate(*, name: str, params: dict, base: GateRule, shift: float, scale: float, **common) -> RandomizedRule:  # noqa: N802
    """g = 1 where the 0/1 gate `base` holds, (U(0,1) + shift) * scale elsewhere, U fresh in
    every backward pass (snnTorch's stochastic spike operator, SSO): saves the gate's one bit;
    U from the same counter-based hash as jamming."""
    if base.levels != (0.0, 1.0):
        raise ValueError(f"UniformOutsideGate needs a 0/1 gate, got levels {base.levels}")
    return RandomizedRule(name=name, params=params, base=base, draw=uniform_draws, combine=_uniform_outside,
                          coefficients={"shift": shift, "scale": scale}, **common)


def GaussianNoise(*, name: str, params: dict, base: BoundRule, sigma: float, mode: str = "additive", **common) -> RandomizedRule:  # noqa: N802
    """g = base(x) + sigma * N(0,1) (additive) or base(x) * (1 + sigma * N(0,1)) (multiplicative)."""
    combine = {"additive": _additive, "multiplicative": _multiplicative}[mode]
    return RandomizedRule(name=name, params=params, base=base, draw=normal_draws, combine=combine,
                          coefficients={"sigma": sigma}, **common)


@dataclass(eq=False)
class CodeRule(BoundRule):
    """Piecewise-constant g with 2**bits levels: saves a b-bit code per element (Few-Bit Backward).

    code(x) = bucketize(x, borders); g = levels[code].
    """

    borders: Tensor = field(default=None, repr=False)
    levels_table: Tensor = field(default=None, repr=False)
    nbits: int = 1

    def __post_init__(self):
        self.saves = Saves.CODES
        self.bits = self.nbits
        self.table = CodeTable(self.borders, self.levels_table, self.nbits)

    def encode(self, x, y):
        borders, _ = self.table.tables(x.device, x.dtype)
        return (backend_for(x).encode_codes(x, borders, self.nbits, 0)[1],)

    def forward_and_encode(self, x, forward):
        op = _fused_op(forward)
        if op is None:
            return super().forward_and_encode(x, forward)
        borders, _ = self.table.tables(x.device, x.dtype)
        y, packed = backend_for(x).encode_codes(x, borders, self.nbits, op)  # relu/step + codes in one pass
        return y, (packed,)

    def multiplier(self, saved, meta, like, rng):
        _, levels = self.table.tables(like.device, like.dtype)
        return backend_for(saved[0]).decode_levels(saved[0].to(like.device), meta.numel, self.nbits, levels).view(meta.shape)

    def grad_input(self, grad_output, saved, meta, rng):
        _, levels = self.table.tables(grad_output.device, grad_output.dtype)
        return backend_for(grad_output).decode_mul(grad_output, saved[0], levels, self.nbits)

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
`dL/dy * g`, with fast paths where g is a gate. `values(x)` evaluates g directly from x: the
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

from . import kernels, triton_kernels
from .fused import fused_grad
from .packing import decode_levels, decode_mul, encode_codes, forward_pack, gate_mul, hash_uniform_reference, interval_mask, jam_mul, pack_bits, pack_interval, unpack_bits


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
        """Arguments of `kernels.gate_pair` when the whole pair (forward + this rule) can run as
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


@dataclass(eq=False)
class ConstantRule(BoundRule):
    """g(x) = value(**params): saves nothing."""

    fn: Callable[..., float] = field(default=None, repr=False)

    def __post_init__(self):
        self.saves = Saves.NOTHING
        self.value = float(self.fn(**self.params))

    def encode(self, x, y):
        return ()

    def multiplier(self, saved, meta, like, rng):
        return self.value

    def grad_input(self, grad_output, saved, meta, rng):
        if self.value == 1.0:
            return grad_output
        return grad_output * self.value


@dataclass(eq=False)
class GateRule(BoundRule):
    """g(x) = hi where the gate holds, lo elsewhere: saves one packed bit per element.

    The gate is an `Interval` (fast path) or a function `fn(x, **params) -> bool tensor`.
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

    def encode(self, x, y):
        if self.interval is not None:
            return (pack_interval(x, self.interval),)
        return (pack_bits(self.fn(x, **self.params)),)

    def _fused_op(self, forward) -> int | None:
        """The kernels' op code when `forward` (relu/step, no parameters) fuses with this gate."""
        op = kernels.FORWARD_OPS.get(getattr(forward, "name", None))
        return op if op is not None and self.interval is not None and not forward.params else None

    def forward_and_encode(self, x, forward):
        op = self._fused_op(forward)
        if op is not None:
            if kernels.usable(x):  # the hot path: straight to the kernel
                y, packed = kernels.forward_pack(x, op, *self.interval.kernel_args())
                return y, (packed,)
            # Compiled graphs always take the fused op (its implementation falls back by itself
            # at run time); building the kernels while Dynamo traces would break the graph.
            # CUDA tensors take it too: packing.forward_pack runs the fused Triton pass.
            if torch.compiler.is_compiling() or triton_kernels.usable(x):
                y, packed = forward_pack(x, op, self.interval)
                return y, (packed,)
        return super().forward_and_encode(x, forward)

    def fused_pair_args(self, forward):
        op = self._fused_op(forward)
        return None if op is None else (op, *self.interval.kernel_args(), *self.levels)

    def multiplier(self, saved, meta, like, rng):
        lo, hi = self.levels
        gate = unpack_bits(saved[0], meta.numel).view(meta.shape).to(like.device)
        return torch.where(gate, torch.tensor(hi, dtype=like.dtype, device=like.device),
                           torch.tensor(lo, dtype=like.dtype, device=like.device))

    def grad_input(self, grad_output, saved, meta, rng):
        lo, hi = self.levels
        if kernels.usable(grad_output):  # the hot path: straight to the kernel
            return kernels.gate_mul(grad_output, saved[0], lo, hi)
        return gate_mul(grad_output, saved[0].to(grad_output.device), lo, hi)


@dataclass(eq=False)
class InputRule(BoundRule):
    """g = fn(x): saves x in the input dtype."""

    fn: Callable[..., Tensor] = field(default=None, repr=False)
    native: Callable[..., Tensor | None] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.saves = Saves.INPUT

    def encode(self, x, y):
        return (x,)

    def multiplier(self, saved, meta, like, rng):
        return self.fn(saved[0], **self.params)

    def grad_input(self, grad_output, saved, meta, rng):
        return _smooth_grad(self, grad_output, saved[0])


@dataclass(eq=False)
class OutputRule(BoundRule):
    """g = fn(y) with y = f(x) the pair's output: saves y (free when the next layer saves it too)."""

    fn: Callable[..., Tensor] = field(default=None, repr=False)
    native: Callable[..., Tensor | None] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.saves = Saves.OUTPUT

    def encode(self, x, y):
        return (y,)

    def multiplier(self, saved, meta, like, rng):
        return self.fn(saved[0], **self.params)

    def grad_input(self, grad_output, saved, meta, rng):
        return _smooth_grad(self, grad_output, saved[0])


def _smooth_grad(rule: InputRule | OutputRule, grad_output: Tensor, saved: Tensor) -> Tensor:
    """dL/dy * g(saved) for a smooth rule: torch's own backward kernel where the rule has one
    (exact rules of native forwards), else the rule compiled into one kernel (large tensors),
    else the eager formula."""
    if rule.native is not None:
        grad = rule.native(grad_output, saved, **rule.params)
        if grad is not None:
            return grad
    fused = fused_grad(rule.fn, rule.params, saved, grad_output)
    return fused if fused is not None else grad_output * rule.fn(saved, **rule.params)


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


@dataclass(eq=False)
class UniformJam(WrappedRule):
    """g = base(x) * U(0,1), U drawn fresh in every backward pass (Troiano et al. 'jamming').

    U comes from a counter-based hash keyed by the RandomSource's next draw (24-bit resolution,
    see packing.hash_uniform_reference): reproducible from the seed, and generated inside the
    fused backward kernel instead of a separate torch.rand pass (which alone costs ~6x a ReLU).
    Under torch.compile, U comes from torch's global RNG instead.
    """

    def multiplier(self, saved, meta, like, rng):
        u = uniform_draws(meta, like, rng)
        return self.base.multiplier(saved, meta, like, rng) * u

    def grad_input(self, grad_output, saved, meta, rng):
        plain_gate = isinstance(self.base, GateRule) and self.base.levels == (0.0, 1.0)
        no_gate = isinstance(self.base, ConstantRule) and self.base.value == 1.0
        if not (plain_gate or no_gate):
            return super().grad_input(grad_output, saved, meta, rng)
        # Compiled graphs draw their keys in-graph (see packing.jam_mul).
        key_a, key_b = (None, None) if torch.compiler.is_compiling() else rng.next_keys()
        return jam_mul(grad_output, saved[0] if plain_gate else None, key_a, key_b)


@dataclass(eq=False)
class UniformOutsideGate(WrappedRule):
    """g = hi where the gate holds, (U(0,1) + shift) * scale elsewhere, U fresh in every
    backward pass (snnTorch's stochastic spike operator, SSO): saves the gate's one bit.

    U comes from the same counter-based hash as jamming (see UniformJam), keyed by the
    RandomSource's next draw, so a run is reproducible from its seed.
    """

    base: GateRule = field(default=None)
    shift: float = 0.0
    scale: float = 1.0

    def multiplier(self, saved, meta, like, rng):
        u = uniform_draws(meta, like, rng)
        gate = unpack_bits(saved[0], meta.numel).view(meta.shape).to(like.device)
        return torch.where(gate, torch.tensor(self.base.levels[1], dtype=like.dtype, device=like.device), (u + self.shift) * self.scale)


@dataclass(eq=False)
class GaussianNoise(WrappedRule):
    """g = base(x) + sigma * N(0,1) (additive) or base(x) * (1 + sigma * N(0,1)) (multiplicative)."""

    sigma: float = 0.1
    mode: str = "additive"

    def multiplier(self, saved, meta, like, rng):
        noise = torch.randn(meta.shape, generator=rng.generator(like.device), device=like.device, dtype=like.dtype)
        g = self.base.multiplier(saved, meta, like, rng)
        if self.mode == "additive":
            return g + self.sigma * noise
        return g * (1.0 + self.sigma * noise)


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
        self._per_device: dict[tuple, tuple[Tensor, Tensor]] = {}

    def _tables(self, device, dtype):
        key = (device, dtype)
        if key not in self._per_device:
            self._per_device[key] = (self.borders.to(device=device, dtype=dtype), self.levels_table.to(device=device, dtype=dtype))
        return self._per_device[key]

    def encode(self, x, y):
        borders, _ = self._tables(x.device, x.dtype)
        return (encode_codes(x, borders, self.nbits),)

    def forward_and_encode(self, x, forward):
        op = kernels.FORWARD_OPS.get(getattr(forward, "name", None))
        if op is not None and not forward.params:  # relu/step + codes in one pass
            borders, _ = self._tables(x.device, x.dtype)
            if torch.compiler.is_compiling():
                ops = kernels.graph_ops(x)
                if ops is not None:
                    y, packed = ops.encode_codes(x, borders, self.nbits, op)
                    return y, (packed,)
            elif kernels.usable(x):
                y, packed = kernels.encode_codes(x, borders, self.nbits, op)
                return y, (packed,)
            elif triton_kernels.usable(x) and self.nbits <= triton_kernels.MAX_BITS:  # CUDA
                y, packed = triton_kernels.encode_codes(x, borders, self.nbits, op)
                return y, (packed,)
        return super().forward_and_encode(x, forward)

    def multiplier(self, saved, meta, like, rng):
        _, levels = self._tables(like.device, like.dtype)
        return decode_levels(saved[0].to(like.device), meta.numel, self.nbits, levels).view(meta.shape)

    def grad_input(self, grad_output, saved, meta, rng):
        _, levels = self._tables(grad_output.device, grad_output.dtype)
        return decode_mul(grad_output, saved[0], self.nbits, levels)

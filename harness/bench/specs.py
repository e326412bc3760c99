"""What to measure: pair-spec strings, shapes, thread settings, and the reference each pair is held to.

Pair spec syntax (command line and JSON keys)::

    forward/rule                      relu/rectangular
    forward/rule:k=v,k=v              relu/quantized:bits=2,of=b_silu

Values are parsed as int, float, true/false, or else kept as strings. Unknown forward or rule
names and bad parameters are reported by the activation library itself (UnknownNameError,
ParameterError: both ValueError), whose messages suggest close names and list the valid ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from harness.activations import PairSpec, Saves, make_pair

# A representative set: every storage kind (nothing, 1 bit, b-bit codes, input, output), a
# stochastic rule, and the docs/DESIGN.md examples (ReLU with rectangular / B-SiLU, Heaviside with
# fast-sigmoid as in snnTorch).
DEFAULT_PAIRS: tuple[str, ...] = (
    "relu/exact",                        # bits (1-bit, the derivative itself)
    "relu/rectangular",                  # bits (FreeGrad's rule)
    "relu/constant",                     # nothing (STE)
    "step/fast_sigmoid",                 # input (snnTorch's surrogate)
    "relu/b_silu",                       # input (SUGAR)
    "relu/quantized:bits=2,of=b_silu",   # codes, 2 bits (Few-Bit Backward)
    "relu/positive_jam",                 # bits + fresh U(0,1) in backward (FreeGrad jamming)
    "tanh/exact",                        # output
    "silu/exact",                        # input, smooth exact
)

# Shapes of the micro benchmark. Both are float32 and of the sizes named in the issue: the
# docs/DESIGN.md anchor (256x4096 = 1M elements) and an NCHW activation map of a small conv net
# (32x64x32x32 = 2M elements).
SHAPES: dict[str, tuple[int, ...]] = {
    "flat": (256, 4096),
    "conv": (32, 64, 32, 32),
}

# Targets (time ratio, pair / native reference, per-round median; see micro.py).
TARGET_EAGER = 1.15
TARGET_COMPILE = 1.0

# Rules whose saved state is small and whose g is a gate/table: compared against native ReLU.
# Rules that keep x or y and evaluate a smooth g: compared against native SiLU, the native
# op of the same cost (one transcendental per element in forward or backward).
_CHEAP = (Saves.NOTHING, Saves.BITS, Saves.CODES)


class PairSpecError(ValueError):
    """A pair-spec string that does not follow `forward/rule[:k=v,...]`."""


@dataclass(frozen=True)
class BenchPair:
    """A parsed pair spec: the canonical name (the key in results) and the built PairSpec."""

    name: str
    forward: str
    rule: str
    params: tuple[tuple[str, Any], ...]
    spec: PairSpec

    @property
    def saves(self) -> Saves:
        """The rule's storage kind."""
        return self.spec.rule.saves

    @property
    def reference(self) -> str:
        """Native op this pair is held to: 'relu' for gate/constant/code rules, 'silu' for smooth."""
        return reference_for(self.saves)

    def describe(self) -> str:
        """The library's description with all parameters, e.g. 'relu/rectangular(a=-0.5, b=0.5)'."""
        return self.spec.describe()


def reference_for(saves: Saves) -> str:
    """'relu' for rules storing nothing, bits or codes; 'silu' for rules storing x or y."""
    return "relu" if saves in _CHEAP else "silu"


def _parse_value(text: str) -> Any:
    """'2' -> 2, '1.5' -> 1.5, 'true' -> True, anything else stays a string (rule names)."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_pair(text: str) -> BenchPair:
    """Parse and build one pair spec; raises PairSpecError (syntax) or the library's errors (names)."""
    raw = text.strip()
    head, sep, param_text = raw.partition(":")
    if raw.count("/") != 1 or "/" not in head:
        raise PairSpecError(
            f"bad pair spec {text!r}: expected 'forward/rule' or 'forward/rule:k=v,k=v', "
            "e.g. 'relu/rectangular' or 'relu/quantized:bits=2,of=b_silu'."
        )
    forward, rule = (part.strip() for part in head.split("/"))
    if not forward or not rule:
        raise PairSpecError(f"bad pair spec {text!r}: both the forward and the rule name are needed (got {head!r}).")
    params: dict[str, Any] = {}
    if sep:
        if not param_text.strip():
            raise PairSpecError(f"bad pair spec {text!r}: nothing after ':'; drop the ':' or add k=v parameters.")
        for item in param_text.split(","):
            key, eq, value = (s.strip() for s in item.partition("="))
            if not eq or not key or not value:
                raise PairSpecError(f"bad parameter {item.strip()!r} in pair spec {text!r}: expected k=v.")
            if key in params:
                raise PairSpecError(f"parameter {key!r} given twice in pair spec {text!r}.")
            params[key] = _parse_value(value)
    spec = make_pair(forward, rule, **params)  # unknown names / bad values: the library's messages
    ordered = tuple(sorted(params.items()))
    name = f"{forward}/{rule}" + (":" + ",".join(f"{k}={_format_value(v)}" for k, v in ordered) if ordered else "")
    return BenchPair(name=name, forward=forward, rule=rule, params=ordered, spec=spec)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_pairs(texts: list[str] | tuple[str, ...]) -> list[BenchPair]:
    """Parse several specs, dropping duplicates (same canonical name) but keeping order."""
    out: dict[str, BenchPair] = {}
    for text in texts:
        pair = parse_pair(text)
        out.setdefault(pair.name, pair)
    return list(out.values())


@dataclass(frozen=True)
class ThreadSetting:
    """A thread count to measure under: `label` is the key in results ('1', 'all', or a number)."""

    label: str
    num_threads: int


def parse_threads(text: str, all_threads: int | None = None) -> list[ThreadSetting]:
    """'1,all' -> [ThreadSetting('1', 1), ThreadSetting('all', N)], N = torch's thread count at start."""
    all_threads = all_threads if all_threads is not None else torch.get_num_threads()
    settings: list[ThreadSetting] = []
    for item in (s.strip() for s in text.split(",")):
        if item == "all":
            setting = ThreadSetting("all", all_threads)
        elif item.isdigit() and int(item) >= 1:
            setting = ThreadSetting(item, int(item))
        else:
            raise ValueError(f"bad thread setting {item!r} in {text!r}: use positive integers and/or 'all', e.g. '1,all'.")
        if setting.label not in {s.label for s in settings}:
            settings.append(setting)
    if not settings:
        raise ValueError("no thread settings given; e.g. --threads 1,all")
    return settings


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """'flat,conv' -> {name: dims}; a custom shape can be given as NAME=AxBxC (e.g. 'tiny=8x64')."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in (s.strip() for s in text.split(",")):
        name, eq, dims = item.partition("=")
        if eq:
            try:
                parsed = tuple(int(d) for d in dims.lower().split("x"))
            except ValueError:
                raise ValueError(f"bad shape {item!r}: expected NAME=AxB[xC...], e.g. tiny=8x64.") from None
            if not name or not parsed or min(parsed) < 1:
                raise ValueError(f"bad shape {item!r}: expected NAME=AxB[xC...] with positive sizes.")
            shapes[name] = parsed
        elif item in SHAPES:
            shapes[item] = SHAPES[item]
        else:
            raise ValueError(f"unknown shape {item!r}; known shapes: {', '.join(SHAPES)} (or NAME=AxB).")
    if not shapes:
        raise ValueError("no shapes given; e.g. --shapes flat,conv")
    return shapes

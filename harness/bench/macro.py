"""Macro benchmark: whole training steps, the harness trainer against a hand-written loop.

Per (model, mode) group these candidates run side by side, interleaved in a fresh random order
each round (harness.bench.timing), each for the model's number of training steps per round:

- `hand/native`: the reference. The loop a careful user writes by hand: index batching from a
  permutation, forward, cross-entropy, zero_grad(set_to_none=True), backward, step, with torch's
  own nn.ReLU and the same optimizer flags as the trainer's default (Adam lr 1e-2,
  foreach=True), plus one evaluation at the end as the trainer does.
- `hand/exact` (eager only): the same loop with our relu/exact pair, so the pair's own cost and
  the trainer's cost can be told apart.
- `harness/native`, `harness/exact`, `harness/<rule>`: the harness Trainer (evaluation once at
  the end, diagnostics off, default whole-step timing) with nn.ReLU, relu/exact and relu/<rule>.
- `harness/native again` (compiled only): a second, independently built harness/native, the same
  graph. Its ratio to harness/native is this host's noise floor for the compiled target, which
  is strict (<= 1.00x): each compiled model's weights and buffers land at other addresses, and
  in a 15-round probe three identical width-1024 models read 0.96-1.03x each other.

Mode `compile` compiles the model's forward (and so its backward, through AOTAutograd) the way
each side would: the trainer through its own compile path (`trainer.compile`), the hand loop with
`torch.compile(model)`; the optimizer stays eager in both. Each candidate's first call, where
compilation happens, runs before the timed rounds and is reported as `compile_time_s`.

Every round trains for the same number of steps; a harness round also runs what `fit()` does
every time (peak memory, the timing summary, the record's bookkeeping), which is part of its
time. The memory probes (three forwards that count saved bytes) run once per Trainer, in the
first, untimed call, as they run once per real run (a few ms against a run's seconds). Ratios
are per-round ratios against `hand/native` of the same group (medians), and min/min over the
same rounds (what `--compare` gates on). Each per-round ratio also gets its distribution-free 95 %
interval (`harness.measure.median_interval`, in `intervals`): a candidate above its target whose
interval still reaches the target is UNCLEAR, not MISS (the rounds cannot tell it from the target).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.activations import ActFactory
from harness.data import load_dataset
from harness.measure import median, median_interval, median_interval_coverage, num_threads, summarize
from harness.models import build_model
from harness.train.optimizers import build_optimizer
from harness.train.schedules import build_scheduler
from harness.train.trainer import Trainer, TrainerSettings, evaluate

from .timing import interleaved_rounds, round_ratios

REFERENCE = "hand/native"
MODES = ("eager", "compile")
# The targets (#14): the harness trainer's time over the hand-written native loop's, eager
# and compiled; and a compiled pair's over compiled native ReLU in the same trainer.
TARGET = 1.02
COMPILED_PAIR_TARGET, COMPILED_NATIVE = 1.00, "harness/native"
NOISE_FLOOR = "harness/native again"  # compiled groups: a second harness/native (see the module doc)
INTERVAL_LEVEL = 0.95
# Per-round ratios against these candidates (where measured), with their intervals.
RATIO_BASES = (REFERENCE, "hand/exact", "harness/exact", COMPILED_NATIVE)
LR = 1e-2  # Adam, the MNIST-1D setting (the trainer's default optimizer)


@dataclass(frozen=True)
class MacroModel:
    """A model of the macro benchmark: registry name, its settings, and training steps per round
    (chosen so that one candidate's round takes a few tenths of a second here)."""

    model: str
    params: dict[str, Any]
    steps: int


MODELS: dict[str, MacroModel] = {
    "mlp": MacroModel("mlp", {}, 400),                      # 40-100-100-10, 15k parameters, ~0.5 ms a step
    "cnn1d": MacroModel("cnn1d", {}, 120),                  # 3 conv layers of 25 channels, ~2 ms a step
    "mlp-1024": MacroModel("mlp", {"width": 1024}, 20),     # 40-1024-1024-10, 1.1M parameters
}


def _all_groups() -> tuple[tuple[str, str], ...]:
    return tuple((m, mode) for mode in MODES for m in MODELS)


@dataclass(frozen=True)
class MacroConfig:
    """What the macro benchmark measures: (model, mode) groups, rules, rounds, steps."""

    groups: tuple[tuple[str, str], ...] = field(default_factory=_all_groups)
    rules: tuple[str, ...] = ("rectangular",)
    repeats: int = 11
    warmup: int = 1
    threads: int = 1
    batch_size: int = 100
    step_scale: float = 1.0  # steps per round = max(1, round(scale * MODELS[m].steps))
    # Subnormal operands slow x86 arithmetic (matmuls included) by microcode assists, and a rule's
    # gradients can hold them where native ReLU's do not (relu/rectangular passes gradient through
    # x in [-0.5, 0]: 2394 subnormal gradient elements at the width-1024 MLP's Linear outputs over
    # 200 steps, none for native ReLU): that is the rule's numbers, not the implementation. On,
    # every candidate runs with torch.set_flush_denormal(True) (subnormals read and written as 0).
    flush_denormal: bool = False

    def __post_init__(self):
        for model, mode in self.groups:
            if model not in MODELS:
                raise ValueError(f"unknown macro model {model!r}; known: {', '.join(MODELS)}")
            if mode not in MODES:
                raise ValueError(f"unknown macro mode {mode!r}; known: {', '.join(MODES)}")
        if self.repeats < 1 or self.warmup < 0 or self.threads < 1 or self.batch_size < 1 or not self.step_scale > 0:
            raise ValueError("macro: need repeats >= 1, warmup >= 0, threads >= 1, batch_size >= 1 and step_scale > 0")

    def steps(self, model: str) -> int:
        """Training steps per round for `model`."""
        return max(1, round(self.step_scale * MODELS[model].steps))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready settings (stored in the benchmark document)."""
        out = asdict(self)
        out["groups"] = [list(g) for g in self.groups]
        out["rules"] = list(self.rules)
        out["steps"] = {m: self.steps(m) for m in dict.fromkeys(m for m, _ in self.groups)}
        return out


def quick_macro_config(**overrides: Any) -> MacroConfig:
    """The CI preset (about a minute on the loaded 2-core VM): MLP and CNN eager, MLP compiled, 5 rounds
    of half the steps (CI's gate allows 2x, so a short run is enough to catch what it is for)."""
    base = MacroConfig(groups=(("mlp", "eager"), ("cnn1d", "eager"), ("mlp", "compile")), repeats=5, step_scale=0.5)
    return replace(base, **overrides)


def restrict_macro(config: MacroConfig, groups: set[tuple[str, str]], repeats: int) -> MacroConfig:
    """Only `groups` (kept in the config's order), with `repeats` rounds: for re-measurements."""
    return replace(config, groups=tuple(g for g in config.groups if g in groups), repeats=repeats)


# --------------------------------------------------------------------------- candidates


def _native_relu() -> nn.Module:
    return nn.ReLU()


def macro_model(model: str, data, act) -> nn.Module:
    """The same initial weights for every candidate of a model (seed 0)."""
    spec = MODELS[model]
    torch.manual_seed(0)
    return build_model(spec.model, input_shape=data.input_shape, num_classes=data.num_classes, act=act,
                       kind=data.kind, **spec.params)


def hand_loop(model: nn.Module, forward: Callable, opt: torch.optim.Optimizer, data, steps: int, batch_size: int,
              gen: torch.Generator) -> None:
    """The hand-written loop the harness is measured against (plus one final evaluation)."""
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(forward(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    evaluate(model, data.x_test, data.y_test, 2048)


def hand_candidate(model: str, data, act, steps: int, batch_size: int, compile: bool) -> Callable[[], None]:
    """One round of the hand-written loop; torch's Adam with the trainer's default flags."""
    net = macro_model(model, data, act)
    opt = torch.optim.Adam(net.parameters(), lr=LR, foreach=True)
    forward = torch.compile(net) if compile else net
    gen = torch.Generator().manual_seed(0)
    return lambda: hand_loop(net, forward, opt, data, steps, batch_size, gen)


def harness_candidate(model: str, data, act, steps: int, batch_size: int, compile: bool) -> Callable[[], Any]:
    """One round of the harness Trainer (one fit() of `steps` steps), built once."""
    net = macro_model(model, data, act)
    opt = build_optimizer("adam", net, lr=LR)
    settings = TrainerSettings(steps=steps, batch_size=batch_size, eval_every=steps, timing_warmup=0,
                               diagnostics_points=0, compile=compile)
    trainer = Trainer(net, data, opt, build_scheduler("constant", opt, total_steps=steps), settings,
                      generator=torch.Generator().manual_seed(0))
    return trainer.fit


def candidates(model: str, mode: str, rules: tuple[str, ...], data, steps: int, batch_size: int) -> dict[str, Callable]:
    """The candidates of one group, reference first (builders only: nothing runs here)."""
    compile = mode == "compile"
    shared = dict(model=model, data=data, steps=steps, batch_size=batch_size)
    out: dict[str, Callable[[], Callable]] = {REFERENCE: partial(hand_candidate, act=_native_relu, compile=compile, **shared)}
    if not compile:
        out["hand/exact"] = partial(hand_candidate, act=ActFactory("relu", "exact"), compile=False, **shared)
    out["harness/native"] = partial(harness_candidate, act=_native_relu, compile=compile, **shared)
    if compile:
        out[NOISE_FLOOR] = partial(harness_candidate, act=_native_relu, compile=True, **shared)
    for rule in ("exact", *rules):
        out[f"harness/{rule}"] = partial(harness_candidate, act=ActFactory("relu", rule), compile=compile, **shared)
    return out


# --------------------------------------------------------------------------- measurement


def _first_calls(builders: dict[str, Callable], log: Callable[[str], None] | None) -> tuple[dict, dict, dict]:
    """Build each candidate and call it once (compilation happens here): (ready, seconds, errors)."""
    ready, first_s, errors = {}, {}, {}
    for name, build in builders.items():
        try:
            run = build()
            start = time.perf_counter()
            run()
            first_s[name] = time.perf_counter() - start
            ready[name] = run
        except Exception as exc:  # a candidate that cannot run (e.g. compilation fails) is reported, not fatal
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            if log:
                log(f"macro: {name} failed: {errors[name]}")
    return ready, first_s, errors


def _target(mode: str, name: str) -> tuple[float | None, str]:
    """(target, the candidate it is measured against) for candidate `name` in `mode`."""
    if name == NOISE_FLOOR:
        return None, COMPILED_NATIVE  # no target: its ratio to harness/native is the noise floor
    if mode == "compile" and name.startswith("harness/") and name != COMPILED_NATIVE:
        return COMPILED_PAIR_TARGET, COMPILED_NATIVE
    return (TARGET if name.startswith("harness/") else None), REFERENCE


def ratio_key(candidate: str) -> str:
    """The `ratios` / `intervals` key of per-round ratios against `candidate`."""
    return "vs_reference" if candidate == REFERENCE else f"vs_{candidate.replace('/', '_')}"


def target_status(entry: dict[str, Any], ratios: dict[str, float], intervals: dict[str, list[float]] | None = None) -> str:
    """The entry's ratio against its `target_vs` (median of per-round ratios) judged by its target:
    PASS at or below it; UNCLEAR above it while the ratio's interval (from `intervals`) still
    reaches it; MISS above it otherwise (or without an interval). "-" without a target or without
    that candidate's ratio."""
    key = ratio_key(entry["target_vs"])
    against, interval = ratios.get(key), (intervals or {}).get(key)
    if entry["target"] is None or against is None:
        return "-"
    if against <= entry["target"]:
        return "PASS"
    return "UNCLEAR" if interval is not None and interval[0] <= entry["target"] else "MISS"


def _entry(model: str, mode: str, name: str, config: MacroConfig, steps: int) -> dict[str, Any]:
    target, target_vs = _target(mode, name)
    return {
        "kind": "macro", "pair": name, "candidate": name, "model": model, "shape": model, "mode": mode,
        "threads": str(config.threads), "num_threads": config.threads, "steps": steps, "batch_size": config.batch_size,
        "reference": REFERENCE, "target": target, "target_vs": target_vs,
    }


def measure_group(model: str, mode: str, config: MacroConfig, data, log: Callable[[str], None] | None = None) -> list[dict]:
    """Entries for one (model, mode) group: every candidate, with its ratios or its error."""
    steps = config.steps(model)
    builders = candidates(model, mode, config.rules, data, steps, config.batch_size)
    if log:
        log(f"macro: {model} {mode}, {len(builders)} candidates x {config.repeats} rounds of {steps} steps, "
            f"{config.threads} thread(s)")
    ready, first_s, errors = _first_calls(builders, log)
    if REFERENCE in errors:
        ready = {}  # no reference, no ratio
    samples = interleaved_rounds(ready, repeats=config.repeats, warmup=config.warmup) if ready else {}
    entries = []
    for name in builders:
        entry = _entry(model, mode, name, config, steps)
        if name not in samples:
            entry.update(status="error", error=errors.get(name) or f"reference {REFERENCE} failed", ratios={},
                         intervals={}, seconds=None)
            entries.append(entry)
            continue
        values, ref = samples[name], samples[REFERENCE]
        ratios = {"vs_reference_of_mins": min(values) / min(ref), "vs_reference_of_medians": median(values) / median(ref)}
        intervals = {}
        for base in RATIO_BASES:
            if base in samples:
                per_round = round_ratios(values, samples[base])
                ratios[ratio_key(base)] = median(per_round)
                intervals[ratio_key(base)] = list(median_interval(per_round, INTERVAL_LEVEL))
        compile_s = first_s[name] - median(values) if mode == "compile" else None
        status = target_status(entry, ratios, intervals)
        entry.update(status=status, error=None, ratios=ratios, intervals=intervals,
                     interval_coverage=median_interval_coverage(len(values), INTERVAL_LEVEL), seconds=summarize(values),
                     steps_per_s=steps / median(values), compile_time_s=compile_s)
        entries.append(entry)
    return entries


def run_macro(config: MacroConfig | None = None, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure every group of `config` (default: all models, eager and compiled) at its thread count."""
    config = config or MacroConfig()
    data = load_dataset("mnist1d")
    entries: list[dict[str, Any]] = []
    with num_threads(config.threads), _flush_denormal(config.flush_denormal):
        for model, mode in config.groups:
            entries.extend(measure_group(model, mode, config, data, log))
    return entries


@contextmanager
def _flush_denormal(on: bool):
    """torch.set_flush_denormal(True) inside, off after (torch does not report the mode before)."""
    if not on:
        yield
        return
    supported = torch.set_flush_denormal(True)  # whether the CPU supports it, not the previous mode
    if not supported:
        raise ValueError("macro: --macro-flush-denormal needs a CPU with flush-to-zero support (SSE3)")
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def format_macro(entries: list[dict[str, Any]]) -> str:
    """A plain-text table of the macro results (ratios: medians of per-round time ratios)."""
    def f(v):
        return "-" if v is None else f"{v:.3f}"

    def target(e):
        vs = e.get("target_vs", REFERENCE)
        against = "" if vs == REFERENCE else f" x {vs.split('/')[0]} native"
        if e["target"] is None:
            return "-" if vs == REFERENCE else "noise floor" + against
        return f"<={e['target']:.2f}" + against

    def interval(e):
        # The interval of the ratio the row's target (or noise floor) is about.
        lo_hi = (e.get("intervals") or {}).get(ratio_key(e.get("target_vs", REFERENCE)))
        if not lo_hi or (e["target"] is None and e.get("target_vs", REFERENCE) == REFERENCE):
            return "-"
        short = e.get("interval_coverage", INTERVAL_LEVEL) < INTERVAL_LEVEL  # too few rounds: min-max
        return f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}" + (" (min-max)" if short else "")

    rows = [("model", "mode", "candidate", "steps/s", "x hand native", "x hand native min", "x hand exact",
             "x harness exact", "x harness native", "target", "95% interval", "")]
    for e in entries:
        r = e.get("ratios") or {}
        rows.append((e["model"], e["mode"], e["candidate"], "-" if e.get("steps_per_s") is None else f"{e['steps_per_s']:.0f}",
                     f(r.get("vs_reference")), f(r.get("vs_reference_of_mins")), f(r.get("vs_hand_exact")),
                     f(r.get("vs_harness_exact")), f(r.get("vs_harness_native")), target(e), interval(e),
                     e["status"] + (f" ({e['error']})" if e.get("error") else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    short = sorted({e["interval_coverage"] for e in entries if e.get("interval_coverage", INTERVAL_LEVEL) < INTERVAL_LEVEL})
    if short:
        lines.append(f"(min-max): too few rounds for a {INTERVAL_LEVEL:.0%} interval; (min, max) covers "
                     + ", ".join(f"{c:.1%}" for c in short) + " here")
    if any(e["status"] == "UNCLEAR" for e in entries):
        lines.append(f"UNCLEAR: above the target, but the {INTERVAL_LEVEL:.0%} interval of its per-round ratio "
                     "reaches the target (more rounds can tell)")
    compiled = [e for e in entries if e.get("compile_time_s") is not None]
    if compiled:
        lines.append("compile time (first call, excluded from the timings): "
                     + ", ".join(f"{e['model']} {e['candidate']} {max(0.0, e['compile_time_s']):.1f} s" for e in compiled)
                     + " (first call minus the median round; near 0 where the compile caches already held the graph)")
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - manual entry point: python -m harness.bench.macro
    """Print the macro table for the default config."""
    print(format_macro(run_macro(log=print)))


if __name__ == "__main__":  # pragma: no cover
    main()

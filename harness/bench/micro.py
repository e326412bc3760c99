"""Micro benchmark: forward + backward of one activation pair, side by side with native torch ops.

For each (shape, thread setting) one group of candidates is timed in interleaved rounds
(timing.py): a plain tensor copy (the bandwidth limit), native ReLU and SiLU, the native op of
every pair's forward ("native exact"), the same forward with `backward=exact` through our
machinery ("our exact"), every pair, and, when asked, the compiled pairs and installed peers.
A candidate's call is `torch.autograd.grad(f(x), x, grad_out)`: one forward and one backward,
no accumulation into `.grad`.

One entry per (pair, shape, threads, mode) reports:
- time medians and IQRs of the pair and its comparison points (docs/DESIGN.md section 5: always
  native exact, our exact and the pair under test side by side);
- ratios; the headline `ratios.vs_reference` is the median of per-round ratios pair / reference
  (robust to load bursts), `*_of_medians` the ratio of the medians, `*_of_mins` the ratio of the
  fastest calls (least disturbed; what --compare checks by default, see compare.py);
- the reference: native ReLU for rules storing nothing, 1 bit or b-bit codes; native SiLU for
  rules storing x or y (smooth g). Target: ratio <= 1.15 eager, <= 1.0 compiled vs native eager;
- bytes saved for backward per element (memory.py), next to the native reference's;
- bandwidth: effective bytes / pair time as a fraction of copy bytes / copy time, where
  effective bytes = forward reads x and writes y (2 n e), backward reads grad_out and writes
  grad_in (2 n e), plus the saved state read back in backward, plus the saved state written in
  forward when it is a new tensor (saving x or y itself writes nothing); e = element size.
  Copy bytes = 2 n e (read and write). A fraction of 1 means the pair moves its data as fast as a
  copy does;
- contention (multi-thread groups): native ReLU is also timed at one thread inside the same
  rounds; when N threads are > 1.5x slower than one, another process holds a core and the
  group's entries are flagged `contention.contended` (compare.py does not fail on them).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.activations import ActivationPair, FORWARDS, compile_model
from harness.activations.definitions import BoundForward
from harness.measure import iqr, median, num_threads, summarize

from .memory import SavedState, expected_bytes_per_element, measure_saved
from .peers import Peer, available_peers
from .specs import (
    DEFAULT_PAIRS, SHAPES, TARGET_COMPILE, TARGET_EAGER, BenchPair, ThreadSetting, parse_pairs, parse_threads,
)
from .timing import interleaved_rounds, round_ratios

# Full run: both shapes, many rounds. Quick run (CI): flat shape only, still >= 20 rounds.
FULL_REPEATS, FULL_WARMUP = 100, 10
QUICK_REPEATS, QUICK_WARMUP = 30, 3
MIN_REPEATS = 20
# A multi-thread group is "contended" when native ReLU at N threads is this much slower than the
# same call at one thread in the same rounds. On a shared VM a busy core stalls every parallel
# region (we saw 0.5 ms -> 16 ms at 2 threads), which changes ratios wholesale: numpy-based
# kernels are single-threaded and do not stall. Such entries are flagged, and --compare does not
# fail on them (see compare.py).
CONTENTION_LIMIT = 1.5
PROBE = "probe:native:relu@1thread"


@dataclass
class MicroConfig:
    """Settings of one micro-benchmark run (stored in the JSON under `settings`)."""

    pairs: tuple[str, ...] = DEFAULT_PAIRS  # pair specs, 'forward/rule[:k=v,...]'
    shapes: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(SHAPES))  # name -> dims
    threads: tuple[ThreadSetting, ...] | None = None  # None: '1' and 'all' (torch's count at start)
    repeats: int = FULL_REPEATS  # timed interleaved rounds per (shape, threads) group
    warmup: int = FULL_WARMUP  # untimed rounds first
    number: int = 1  # calls per timing sample (raise for tiny shapes)
    compile: bool = False  # also time torch.compile'd pairs (compile time reported separately)
    peers: bool = True  # also time installed peers (freegrad, snntorch)
    dtype: str = "float32"
    seed: int = 0  # inputs are torch.randn from this seed
    quick: bool = False  # informational: the run used the quick preset

    def thread_settings(self) -> tuple[ThreadSetting, ...]:
        """The thread settings, defaulting to one thread and all threads."""
        return self.threads if self.threads is not None else tuple(parse_threads("1,all"))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready settings."""
        out = asdict(self)
        out["pairs"] = list(self.pairs)
        out["shapes"] = {k: list(v) for k, v in self.shapes.items()}
        out["threads"] = [{"label": t.label, "num_threads": t.num_threads} for t in self.thread_settings()]
        return out


def quick_config(**overrides: Any) -> MicroConfig:
    """The `--quick` preset: flat shape only, 30 rounds after 3 warm-up rounds."""
    base = MicroConfig(shapes={"flat": SHAPES["flat"]}, repeats=QUICK_REPEATS, warmup=QUICK_WARMUP, quick=True)
    return replace(base, **overrides)


def restrict(config: MicroConfig, *, pairs=None, shapes=None, threads=None, repeats=None) -> MicroConfig:
    """A copy of `config` narrowed to some pairs / shape names / thread labels (re-measurement)."""
    return replace(
        config,
        pairs=tuple(pairs) if pairs is not None else config.pairs,
        shapes={k: v for k, v in config.shapes.items() if shapes is None or k in shapes},
        threads=tuple(t for t in config.thread_settings() if threads is None or t.label in threads),
        repeats=repeats if repeats is not None else config.repeats,
    )


# --------------------------------------------------------------------------- candidates


# Forwards whose native torch op is a smooth function with a fused backward kernel.
SMOOTH_NATIVE = {"silu", "gelu", "tanh", "sigmoid", "elu", "selu", "celu", "mish", "softplus", "hardswish"}


def _native_key(forward: BoundForward) -> str:
    # Default parameters -> the bare name, so that silu's native op and the SiLU reference
    # (same function) are one candidate and are timed once.
    defaults = {k: p.default for k, p in FORWARDS.get(forward.name).params.items()}
    return forward.name if forward.params == defaults else forward.describe()


def _natively_differentiable(forward: BoundForward, dtype: torch.dtype) -> bool:
    probe = torch.zeros(8, dtype=dtype, requires_grad=True)
    return forward(probe).grad_fn is not None  # step/sign: no autograd graph, no native backward


def _fwd_bwd(fn: Callable[[Tensor], Tensor], x: Tensor, grad: Tensor) -> Callable[[], object]:
    def call():
        """One forward and one backward; grad() avoids accumulating into x.grad."""
        return torch.autograd.grad(fn(x), x, grad)

    return call


@contextlib.contextmanager
def _compile_limits(enabled: bool) -> Iterator[None]:
    """Raise Dynamo's recompile limit: every (pair, shape) is one cache entry on the same code
    object (ActivationPair.forward), and the default limit (8) would silently fall back to eager."""
    if not enabled:
        yield
        return
    import torch._dynamo

    cfg = torch._dynamo.config
    names = ("recompile_limit", "accumulated_recompile_limit", "cache_size_limit", "accumulated_cache_size_limit")
    patch = {n: max(getattr(cfg, n), 1024) for n in names if hasattr(cfg, n)}
    with cfg.patch(**patch):
        yield


@dataclass
class _Compiled:
    fn: Callable[[Tensor], Tensor] | None
    compile_time_s: float | None
    error: str | None


@dataclass
class _Plan:
    """Candidates of one group and, per reported entry, which candidate plays which role."""

    candidates: dict[str, Callable[[], object]] = field(default_factory=dict)
    entries: list[dict[str, Any]] = field(default_factory=list)  # role -> candidate name, plus metadata

    def add(self, name: str, make: Callable[[], Callable[[], object]]) -> str:
        """Register candidate `name` (built by `make` once; later adds reuse it); returns the name."""
        if name not in self.candidates:
            self.candidates[name] = make()
        return name


def _plan_group(
    pairs: list[BenchPair], peers: list[Peer], x: Tensor, grad: Tensor, compiled: dict[str, _Compiled], dst: Tensor,
) -> _Plan:
    plan = _Plan()
    xd = x.detach()
    plan.add("copy", lambda: (lambda: dst.copy_(xd)))
    plan.add("native:relu", lambda: _fwd_bwd(torch.relu, x, grad))
    plan.add("native:silu", lambda: _fwd_bwd(F.silu, x, grad))
    for p in pairs:
        fwd = p.spec.forward
        key = _native_key(fwd)
        native_exact = None
        if _natively_differentiable(fwd, x.dtype):
            native_exact = plan.add(f"native:{key}", lambda fwd=fwd: _fwd_bwd(fwd, x, grad))
        exact_module = ActivationPair(p.forward, "exact", forward_params=dict(fwd.params))
        our_exact = plan.add(f"exact:{key}", lambda m=exact_module: _fwd_bwd(m, x, grad))
        if p.rule == "exact" and not p.params:
            pair_name = our_exact  # the pair is our exact: time it once
        else:
            pair_name = plan.add(f"pair:{p.name}", lambda p=p: _fwd_bwd(ActivationPair.from_spec(p.spec), x, grad))
        # A smooth pair is held to the native op of its own forward when that forward is itself
        # a smooth native op (tanh/exact against torch.tanh: the "op of the same cost"), and to
        # SiLU otherwise (relu/b_silu, step/fast_sigmoid).
        reference = f"native:{p.reference}"
        if p.reference == "silu" and native_exact is not None and fwd.name in SMOOTH_NATIVE:
            reference = native_exact
        roles = dict(pair=pair_name, reference=reference, native_relu="native:relu",
                     our_exact=our_exact, native_exact=native_exact, copy="copy")
        plan.entries.append(dict(kind="pair", mode="eager", bench_pair=p, roles=roles))
        if p.name in compiled:
            c = compiled[p.name]
            if c.fn is not None:
                name = plan.add(f"compiled:{p.name}", lambda c=c: _fwd_bwd(c.fn, x, grad))
            else:
                name = None
            plan.entries.append(dict(kind="pair", mode="compile", bench_pair=p, compiled=c,
                                     roles={**roles, "pair": name, "eager": pair_name}))
    for peer in peers:
        fn = peer.build()
        name = plan.add(peer.name, lambda fn=fn: _fwd_bwd(fn, x, grad))
        eq = next((e["roles"]["pair"] for e in plan.entries
                   if e["kind"] == "pair" and e["mode"] == "eager" and e["bench_pair"].name == peer.equivalent), None)
        roles = dict(pair=name, reference=f"native:{peer.reference}", native_relu="native:relu",
                     our_exact=None, native_exact=None, copy="copy", equivalent=eq)
        plan.entries.append(dict(kind="peer", mode="eager", peer=peer, peer_fn=fn, roles=roles))
    return plan


def _compile_pair(p: BenchPair, x: Tensor, grad: Tensor) -> _Compiled:
    """torch.compile the pair's module; the first fwd+bwd call (Dynamo + AOTAutograd + Inductor
    for forward and backward) is timed as the compile time and kept out of the measurements."""
    module = compile_model(ActivationPair.from_spec(p.spec), dynamic=False)
    start = time.perf_counter()
    try:
        torch.autograd.grad(module(x), x, grad)
    except Exception as exc:  # report, don't abort the run: compile support varies by torch version
        return _Compiled(None, None, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    return _Compiled(module, time.perf_counter() - start, None)


# --------------------------------------------------------------------------- entries


def effective_bytes(numel: int, element_size: int, state: SavedState | None) -> int:
    """Bytes a fwd+bwd must move at least: x, y, grad_out, grad_in, plus saved state (see module doc)."""
    extra = 0 if state is None else state.bytes + state.new_bytes
    return 4 * numel * element_size + extra


def copy_bytes(numel: int, element_size: int) -> int:
    """Bytes a plain copy moves: read n elements, write n elements."""
    return 2 * numel * element_size


def bandwidth_fraction(eff_bytes: int, t_pair: float, cp_bytes: int, t_copy: float) -> float:
    """(effective bytes / pair time) / (copy bytes / copy time)."""
    return (eff_bytes / t_pair) / (cp_bytes / t_copy)


def _ratio(samples: dict[str, list[float]], num: str | None, den: str | None) -> tuple[float | None, float | None, float | None]:
    """(median of per-round ratios, ratio of medians, IQR of per-round ratios), or Nones."""
    if num is None or den is None:
        return None, None, None
    rounds = round_ratios(samples[num], samples[den])
    return median(rounds), median(samples[num]) / median(samples[den]), iqr(rounds)


def _ratio_of_mins(samples: dict[str, list[float]], num: str | None, den: str | None) -> float | None:
    """min(num) / min(den): the ratio of the least disturbed calls (the regression check's default)."""
    if num is None or den is None:
        return None
    return min(samples[num]) / min(samples[den])


def _make_entry(
    spec: dict[str, Any], samples: dict[str, list[float]], shape_name: str, dims: tuple[int, ...],
    threads: ThreadSetting, memory: dict[str, SavedState | None], numel: int, element_size: int,
) -> dict[str, Any]:
    roles = spec["roles"]
    kind, mode = spec["kind"], spec["mode"]
    if kind == "pair":
        p: BenchPair = spec["bench_pair"]
        name, describe, saves, bits = p.name, p.describe(), p.saves.value, p.spec.rule.bits
        target = TARGET_EAGER if mode == "eager" else TARGET_COMPILE
        expected = expected_bytes_per_element(p.saves, bits, element_size)
        state = memory.get(f"pair:{p.name}")
    else:
        peer: Peer = spec["peer"]
        name, describe, saves, bits, target, expected = peer.name, f"{peer.package} {peer.version() or ''}".strip(), "input", 0, None, None
        state = memory.get(peer.name)
    entry: dict[str, Any] = {
        "pair": name, "describe": describe, "kind": kind, "mode": mode,
        "shape": shape_name, "dims": list(dims), "threads": threads.label, "num_threads": threads.num_threads,
        "saves": saves, "bits": bits, "reference": roles["reference"], "target": target,
        "status": None, "error": None, "compile_time_s": None,
    }
    if mode == "compile":
        entry["compile_time_s"] = spec["compiled"].compile_time_s
        entry["error"] = spec["compiled"].error
    times = {role: (summarize(samples[cand]) if cand is not None and cand in samples else None)
             for role, cand in roles.items()}
    entry["time_s"] = times
    r = {}
    r["vs_reference"], r["vs_reference_of_medians"], r["vs_reference_rounds_iqr"] = _ratio(samples, roles["pair"], roles["reference"])
    r["vs_reference_of_mins"] = _ratio_of_mins(samples, roles["pair"], roles["reference"])
    r["vs_native_relu"], r["vs_native_relu_of_medians"], _ = _ratio(samples, roles["pair"], roles["native_relu"])
    r["vs_native_relu_of_mins"] = _ratio_of_mins(samples, roles["pair"], roles["native_relu"])
    r["our_exact_vs_native_exact"], _, _ = _ratio(samples, roles.get("our_exact"), roles.get("native_exact"))
    r["our_exact_vs_reference"], _, _ = _ratio(samples, roles.get("our_exact"), roles["reference"])
    r["vs_our_exact"], _, _ = _ratio(samples, roles["pair"], roles.get("our_exact"))
    if mode == "compile":
        r["vs_eager"], _, _ = _ratio(samples, roles["pair"], roles["eager"])
    if kind == "peer":
        r["vs_equivalent"], _, _ = _ratio(samples, roles["pair"], roles.get("equivalent"))
    entry["ratios"] = r

    ref_state = memory.get(roles["reference"])
    native_exact_state = memory.get(roles["native_exact"]) if roles.get("native_exact") else None
    # Compiled graphs are partitioned by AOTAutograd; their saved tensors are not observable
    # through the hooks, so memory is reported for eager entries only.
    measured = state.per_element if (state is not None and mode == "eager") else None
    entry["memory"] = {
        "saved_bytes_per_element": measured,
        "expected_bytes_per_element": expected,
        "matches_expected": None if measured is None or expected is None else measured == expected,
        "reference_saved_bytes_per_element": ref_state.per_element if ref_state else None,
        "native_exact_saved_bytes_per_element": native_exact_state.per_element if native_exact_state else None,
    }

    bw: dict[str, Any] = {"effective_bytes": None, "copy_bytes": copy_bytes(numel, element_size),
                          "fraction": None, "reference_fraction": None}
    if roles["pair"] is not None and state is not None:
        bw["effective_bytes"] = effective_bytes(numel, element_size, state)
        t_copy = median(samples["copy"])
        bw["fraction"] = bandwidth_fraction(bw["effective_bytes"], median(samples[roles["pair"]]), bw["copy_bytes"], t_copy)
        if ref_state is not None:
            bw["reference_fraction"] = bandwidth_fraction(
                effective_bytes(numel, element_size, ref_state), median(samples[roles["reference"]]), bw["copy_bytes"], t_copy)
    entry["bandwidth"] = bw

    if entry["error"] is not None:
        entry["status"] = "ERROR"
    elif target is None:
        entry["status"] = "INFO"
    else:
        entry["status"] = "PASS" if r["vs_reference"] <= target else "MISS"
    return entry


# --------------------------------------------------------------------------- driver


def run_micro(config: MicroConfig, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure every (pair, shape, threads[, compile]) of `config`; returns the JSON entries.

    This is the default measurer of the CLI; tests call it with tiny shapes and few repeats.
    """
    log = log or (lambda msg: None)
    pairs = parse_pairs(config.pairs)
    peers = available_peers() if config.peers else []
    dtype = getattr(torch, config.dtype)
    element_size = torch.empty((), dtype=dtype).element_size()
    entries: list[dict[str, Any]] = []
    with _compile_limits(config.compile):
        for shape_name, dims in config.shapes.items():
            gen = torch.Generator().manual_seed(config.seed)
            x = torch.randn(dims, generator=gen, dtype=dtype).requires_grad_(True)
            grad = torch.randn(dims, generator=gen, dtype=dtype)
            dst = torch.empty_like(x, requires_grad=False)
            numel = x.numel()
            compiled: dict[str, _Compiled] = {}
            if config.compile:
                for p in pairs:
                    log(f"compiling {p.name} for {shape_name} {tuple(dims)} ...")
                    compiled[p.name] = _compile_pair(p, x, grad)
            plan = _plan_group(pairs, peers, x, grad, compiled, dst)
            memory = _measure_memory(plan, pairs, peers, x)
            for threads in config.thread_settings():
                log(f"[{shape_name} {tuple(dims)}, threads={threads.label} ({threads.num_threads})] "
                    f"{len(plan.candidates)} candidates x {config.repeats} rounds (+{config.warmup} warm-up)")
                candidates = dict(plan.candidates)
                if threads.num_threads > 1:
                    candidates[PROBE] = _at_one_thread(plan.candidates["native:relu"])
                with num_threads(threads.num_threads):
                    samples = interleaved_rounds(candidates, repeats=config.repeats, warmup=config.warmup, number=config.number)
                contention = contention_of(samples)
                if contention["contended"]:
                    log(f"warning: threads={threads.label} looks contended (native relu {contention['thread_scaling']:.1f}x "
                        "slower than at one thread): another process holds a core; these rows are flagged")
                for spec in plan.entries:
                    entry = _make_entry(spec, samples, shape_name, tuple(dims), threads, memory, numel, element_size)
                    entry["contention"] = contention
                    entries.append(entry)
    return entries


def _at_one_thread(fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` run at one thread inside an N-thread group (set_num_threads costs ~nothing)."""

    def call():
        """fn at one thread, then back to the group's n threads."""
        with num_threads(1):
            return fn()

    return call


def contention_of(samples: dict[str, list[float]]) -> dict[str, Any]:
    """{'thread_scaling': median per-round native relu (N threads) / native relu (1 thread),
    'contended': scaling > CONTENTION_LIMIT}; Nones/False for one-thread groups (no probe)."""
    if PROBE not in samples:
        return {"thread_scaling": None, "contended": False, "one_thread_relu_s": None}
    scaling = median(round_ratios(samples["native:relu"], samples[PROBE]))
    return {"thread_scaling": scaling, "contended": scaling > CONTENTION_LIMIT, "one_thread_relu_s": summarize(samples[PROBE])}


def _measure_memory(plan: _Plan, pairs: list[BenchPair], peers: list[Peer], x: Tensor) -> dict[str, SavedState | None]:
    """Saved-for-backward state of every eager candidate, keyed by candidate name."""
    fns: dict[str, Callable[[Tensor], Tensor]] = {"native:relu": torch.relu, "native:silu": F.silu}
    for p in pairs:
        key = _native_key(p.spec.forward)
        if f"native:{key}" in plan.candidates:
            fns[f"native:{key}"] = p.spec.forward
        fns[f"pair:{p.name}"] = ActivationPair.from_spec(p.spec)
    for spec in plan.entries:
        if spec["kind"] == "peer":
            fns[spec["peer"].name] = spec["peer_fn"]
    return {name: measure_saved(fn, x) for name, fn in fns.items()}

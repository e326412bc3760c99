"""Macro benchmark: training steps/s of whole models, harness trainer against a hand-written loop.

For each model (MNIST-1D MLP and CNN by default) these candidates run side by side,
interleaved (harness.bench.timing), each for `steps` training steps per round:

- `hand/exact`: a minimal PyTorch loop (index batching, forward, loss, backward, step) with
  our relu/exact pair: the floor any trainer could reach with this model and data.
- `harness/exact`: the harness Trainer on the same model and data (evaluation only once at the
  end, diagnostics off), so `harness_overhead = time(harness/exact) / time(hand/exact) - 1`.
- `harness/native`: the trainer with torch's own nn.ReLU, i.e. "native exact".
- `harness/<rule>`: the trainer with relu/<rule> for each rule under test (rectangular by
  default), reported against relu/exact in the same model.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.activations import ActFactory
from harness.data import load_dataset
from harness.measure import median, num_threads, summarize
from harness.models import build_model
from harness.train.trainer import Trainer, TrainerSettings, evaluate

from .timing import interleaved_rounds, round_ratios

DEFAULT_MODELS = ("mlp", "cnn1d")
DEFAULT_RULES = ("rectangular",)


def _native_factory(forward: str | None = None) -> nn.Module:
    return {None: nn.ReLU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[forward]()


def _make(model_name: str, data, act, seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = build_model(model_name, input_shape=data.input_shape, num_classes=data.num_classes, act=act, kind=data.kind)
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def hand_loop(model: nn.Module, opt: torch.optim.Optimizer, data, steps: int, batch_size: int, gen: torch.Generator) -> None:
    """The minimal training loop the harness is measured against (plus one final evaluation)."""
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos : pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    evaluate(model, data.x_test, data.y_test, 2048)


def _harness_candidate(model_name: str, data, act, steps: int, batch_size: int) -> Callable[[], Any]:
    model, opt = _make(model_name, data, act)
    settings = TrainerSettings(steps=steps, batch_size=batch_size, eval_every=steps, timing_warmup=0, diagnostics_points=0)
    gen = torch.Generator().manual_seed(0)

    def run():
        from harness.train.schedules import build_scheduler

        Trainer(model, data, opt, build_scheduler("constant", opt, total_steps=steps), settings, generator=gen).fit()

    return run


def _hand_candidate(model_name: str, data, act, steps: int, batch_size: int) -> Callable[[], Any]:
    model, opt = _make(model_name, data, act)
    gen = torch.Generator().manual_seed(0)
    return lambda: hand_loop(model, opt, data, steps, batch_size, gen)


def run_macro(
    models: tuple[str, ...] = DEFAULT_MODELS,
    rules: tuple[str, ...] = DEFAULT_RULES,
    *,
    steps: int = 200,
    repeats: int = 7,
    warmup: int = 1,
    threads: int = 1,
    batch_size: int = 100,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure every model; one result entry per (model, candidate) with ratios."""
    data = load_dataset("mnist1d")
    entries = []
    with num_threads(threads):
        for model_name in models:
            candidates = {
                "hand/exact": _hand_candidate(model_name, data, ActFactory("relu", "exact"), steps, batch_size),
                "harness/exact": _harness_candidate(model_name, data, ActFactory("relu", "exact"), steps, batch_size),
                "harness/native": _harness_candidate(model_name, data, _native_factory, steps, batch_size),
            }
            for rule in rules:
                candidates[f"harness/{rule}"] = _harness_candidate(model_name, data, ActFactory("relu", rule), steps, batch_size)
            if log:
                log(f"macro: {model_name}, {len(candidates)} candidates x {repeats} rounds of {steps} steps, {threads} thread(s)")
            samples = interleaved_rounds(candidates, repeats=repeats, warmup=warmup)
            for name, values in samples.items():
                entry = {
                    "kind": "macro", "model": model_name, "candidate": name, "threads": threads, "steps": steps,
                    "batch_size": batch_size, "seconds": summarize(values),
                    "steps_per_s": steps / median(values),
                    "vs_hand_exact": median(values) / median(samples["hand/exact"]),
                    "vs_hand_exact_rounds": median(round_ratios(values, samples["hand/exact"])),
                    "vs_harness_exact": median(values) / median(samples["harness/exact"]),
                    "vs_harness_exact_rounds": median(round_ratios(values, samples["harness/exact"])),
                }
                entries.append(entry)
    return entries


def format_macro(entries: list[dict[str, Any]]) -> str:
    """A plain-text table of the macro results."""
    rows = [("model", "candidate", "threads", "steps/s", "vs hand exact", "vs harness exact")]
    for e in entries:
        rows.append((e["model"], e["candidate"], str(e["threads"]), f"{e['steps_per_s']:.0f}",
                     f"{e['vs_hand_exact_rounds']:.3f}", f"{e['vs_harness_exact_rounds']:.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main() -> None:  # pragma: no cover - manual entry point: python -m harness.bench.macro
    """Print the macro table for both models at 1 thread."""
    print(format_macro(run_macro(log=print)))


if __name__ == "__main__":  # pragma: no cover
    main()

"""Whole compiled training steps: our gate pairs against compiled native ReLU (issue #14).

MLP in-W-W-10 (two hidden layers of width W), batch 256, SGD; the step is the trainer's compile
path (harness.train): `compile_model(model)` forward, eager cross-entropy, backward, optimizer
step, gradients dropped. Candidates run in interleaved rounds in one process, in a fresh random
order each round (harness.bench.timing); each round times one block of `--steps` steps per
candidate (a sample is the block's mean step time; before 1246f5e it was the median step of the
block, so older numbers are not directly comparable), and the reported ratio is the median over
rounds of (candidate step time / native step time in the same round), with its distribution-free
95 % interval (harness.measure.median_interval).

    .venv/bin/python scripts/compiled_step_bench.py --widths 128 1024 --rounds 15
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import torch
import torch._functorch.config  # noqa: F401  (the compile caches, patched per variant below)
import torch._inductor.config  # noqa: F401
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.activations import ActFactory, compile_model  # noqa: E402
from harness.allocator import keep_freed_memory  # noqa: E402
from harness.bench.timing import interleaved_rounds, round_ratios  # noqa: E402
from harness.measure import median_interval  # noqa: E402
from harness.activations.backends import graph  # noqa: E402
from harness.models.mlp import MLP  # noqa: E402

BATCH, IN_FEATURES, CLASSES = 256, 256, 10
PAIRS = {"native relu": None,
         # A second, identical native model: its ratio is this host's noise floor.
         "native relu again": None,
         "relu/exact": ("relu", "exact"), "relu/rectangular": ("relu", "rectangular"),
         # The same pair keeping the gate's bits instead of y (graph.RELU_KEEPS_Y off), as graphs
         # did before: words from Inductor's fused pack (W=128) or the C++ kernels as graph ops
         # (large gates, ops.EXTERN_MIN_ELEMENTS).
         "relu/rect bits": ("relu", "rectangular", "bits")}


def build_step(pair, width: int):
    """The training step of one candidate, compiled and warmed up."""
    torch.manual_seed(0)
    act = (lambda: nn.ReLU()) if pair is None else ActFactory(*pair[:2])
    model = MLP(IN_FEATURES, CLASSES, act, depth=2, width=width, residual=False, bias=True)
    compiled = compile_model(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, IN_FEATURES, generator=gen)
    y = torch.randint(0, CLASSES, (BATCH,), generator=gen)

    # The bits variant holds graph.RELU_KEEPS_Y off through every call, not only while tracing:
    # Dynamo guards on the switch, so with it back on the model's next call would match (and
    # time) the default variant's graph, which another model of the same structure compiled.
    keeps_y = not (pair is not None and pair[2:] == ("bits",))

    def step():
        graph.RELU_KEEPS_Y = keeps_y
        try:
            loss = F.cross_entropy(compiled(x), y)
            loss.backward()
            opt.step()
            for p in params:
                p.grad = None
        finally:
            graph.RELU_KEEPS_Y = True

    # The variant changes what the graph backend traces, which the compile caches do not key on:
    # without this it would reuse the default's cached graphs.
    with contextlib.ExitStack() as caches_off:
        if pair is not None and len(pair) > 2:
            caches_off.enter_context(torch._functorch.config.patch(enable_autograd_cache=False))
            caches_off.enter_context(torch._inductor.config.patch(fx_graph_cache=False))
        for _ in range(5):  # compile (forward and backward graphs) and warm up
            step()
    return step


def repeat(step, n: int):
    """One round of a candidate: `n` steps."""
    def run():
        for _ in range(n):
            step()
    return run


def main(argv=None) -> None:
    """Print per-width medians and ratios to compiled native ReLU."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 1024])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=20, help="steps per candidate per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--system-malloc", action="store_true",
                    help="keep glibc's malloc thresholds (by default raised, as harness-run and harness-bench do)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    malloc = "system" if args.system_malloc else ("keep_freed" if keep_freed_memory()["tuned"] else "system (mallopt failed)")
    print(f"MLP {IN_FEATURES}-W-W-{CLASSES}, batch {BATCH}, SGD, compiled (harness compile_model), "
          f"threads={args.threads}, malloc={malloc}, {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'width':>5}  {'pair':<18} {'step ms':>8}  {'x native':>8}  {'95% interval':>13}  {'x native min':>12}")
    for width in args.widths:
        # Each width compiles afresh: a second shape would make Dynamo trace every model of the
        # same forward code with dynamic shapes, native ReLU included.
        torch._dynamo.reset()
        rounds = {name: repeat(build_step(pair, width), args.steps) for name, pair in PAIRS.items()}
        per_round = interleaved_rounds(rounds, repeats=args.rounds, warmup=1)
        native = per_round["native relu"]
        for name, times in per_round.items():
            ratios = round_ratios(times, native)
            lo, hi = median_interval(ratios)
            print(f"{width:>5}  {name:<18} {statistics.median(times) / args.steps * 1e3:8.3f}  "
                  f"{statistics.median(ratios):8.3f}  {lo:6.3f}-{hi:6.3f}  {min(times) / min(native):12.3f}")


if __name__ == "__main__":
    main()

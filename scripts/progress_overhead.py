"""A/B: what the progress display costs the training loop (harness/sweep/progress.py).

Three candidates train the same MNIST-1D MLP with the harness Trainer, interleaved in a seeded
random order (harness.bench.timing), and the script prints the median per-round time ratio of
each display to no display at all:

    .venv/bin/python scripts/progress_overhead.py [--steps 1000] [--repeats 9]

`tty` draws a real tqdm bar (into /dev/null, as a terminal would get it); `lines` is the no-TTY
fallback (one line per evaluation). The target is at most 1 % (issue #8).
"""
from __future__ import annotations

import argparse
import io
import os
import time

import torch

from harness.activations import ActFactory
from harness.bench.timing import interleaved_rounds, round_ratios
from harness.data import load_dataset
from harness.measure import median, num_threads
from harness.models import build_model
from harness.sweep.progress import RunProgress
from harness.train.schedules import build_scheduler
from harness.train.trainer import Trainer, TrainerSettings


def candidate(data, steps: int, display: str):
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes, act=ActFactory("relu", "exact"), kind=data.kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    settings = TrainerSettings(steps=steps, batch_size=100, eval_every=settings_eval_every(steps), timing_warmup=0, diagnostics_points=0)
    sink = open(os.devnull, "w") if display == "tty" else io.StringIO()

    def run():
        progress = None if display == "none" else RunProgress(steps, label="ab", stream=sink, tty=display == "tty")
        Trainer(model, data, opt, build_scheduler("constant", opt, total_steps=steps), settings, generator=torch.Generator().manual_seed(0),
                log=progress.row if progress else None, progress=progress.step if progress else None).fit()
        if progress:
            progress.close()
    return run


def settings_eval_every(steps: int) -> int:
    """Steps between evaluations in these candidates (as `candidate` sets them)."""
    return max(steps // 4, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    with num_threads(1):
        # "none (again)" is a second copy of the baseline: its ratio is the noise floor of the A/B
        # (each candidate has its own model and optimizer, so memory placement differs).
        names = {"none": "none", "none (again)": "none", "lines": "lines", "tty": "tty"}
        samples = interleaved_rounds({n: candidate(data, args.steps, d) for n, d in names.items()}, repeats=args.repeats, warmup=1)
    base = median(samples["none"])
    step_s = base / args.steps
    print(f"no display: {step_s * 1000:.3f} ms/step (median of {args.repeats} rounds of {args.steps} steps)")
    for name in ("none (again)", "lines", "tty"):
        ratio = median(round_ratios(samples[name], samples["none"]))
        print(f"{name:>5}: {ratio:.4f}x no display ({(ratio - 1) * 100:+.2f} %), whole runs side by side")
    # The A/B above cannot resolve much below the machine's noise (about 2 % here), so also time
    # what the display adds per step directly: the trainer's step() call, and a row() per evaluation.
    for name in ("lines", "tty"):
        n = 200_000
        progress = RunProgress(n, label="ab", stream=open(os.devnull, "w") if name == "tty" else io.StringIO(), tty=name == "tty")
        t0 = time.perf_counter()
        for done in range(1, n + 1):
            progress.step(done)
        per_step = (time.perf_counter() - t0) / n
        rows = 200
        t0 = time.perf_counter()
        for i in range(rows):
            progress.row({"step": i, "train_loss": 1.0, "train_acc": 0.5, "test_acc": 0.5})
        per_row = (time.perf_counter() - t0) / rows
        progress.close()
        per_train_step = per_step + per_row / settings_eval_every(args.steps)
        print(f"{name:>5}: {per_step * 1e9:.0f} ns per step() + {per_row * 1e6:.0f} us per row(): "
              f"{per_train_step / step_s * 100:.3f} % of a training step")


if __name__ == "__main__":
    main()

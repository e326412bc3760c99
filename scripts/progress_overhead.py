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

import torch

from harness.activations import ActFactory
from harness.bench.timing import interleaved_rounds, median, num_threads, round_ratios
from harness.data import load_dataset
from harness.models import build_model
from harness.sweep.progress import RunProgress
from harness.train.schedules import build_scheduler
from harness.train.trainer import Trainer, TrainerSettings


def candidate(data, steps: int, display: str):
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes, act=ActFactory("relu", "exact"), kind=data.kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    settings = TrainerSettings(steps=steps, batch_size=100, eval_every=max(steps // 4, 1), timing_warmup=0, diagnostics_points=0)
    sink = open(os.devnull, "w") if display == "tty" else io.StringIO()

    def run():
        progress = None if display == "none" else RunProgress(steps, label="ab", stream=sink, tty=display == "tty")
        Trainer(model, data, opt, build_scheduler("constant", opt, total_steps=steps), settings, generator=torch.Generator().manual_seed(0),
                log=progress.row if progress else None, progress=progress.step if progress else None).fit()
        if progress:
            progress.close()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    data = load_dataset("mnist1d")
    with num_threads(1):
        samples = interleaved_rounds({d: candidate(data, args.steps, d) for d in ("none", "lines", "tty")}, repeats=args.repeats, warmup=1)
    base = median(samples["none"])
    print(f"no display: {base * 1000 / args.steps:.3f} ms/step (median of {args.repeats} rounds of {args.steps} steps)")
    for name in ("lines", "tty"):
        ratio = median(round_ratios(samples[name], samples["none"]))
        print(f"{name:>5}: {ratio:.4f}x no display ({(ratio - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()

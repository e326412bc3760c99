"""Timing discipline for side-by-side measurements on a shared, noisy machine.

- Every candidate runs once per round, in a fresh seeded random order each round, so load from
  other processes that drifts over seconds hits all candidates alike (docs/DESIGN.md section 4).
- Warm-up rounds first (allocator caches, lazy init, branch predictors), then `repeats` timed
  rounds; garbage collection is off while timing so a collection never lands in one sample.
- Ratios are computed from the same rounds: the ratio of medians, and the median of per-round
  ratios (each round's candidates ran within a few milliseconds of each other, so a burst of
  foreign load cancels out of that round's ratio).

The statistics of the samples (median, spread summary) and the thread setting live in
harness.measure, shared with the trainer's step timer, so a benchmark and a run record compute
the same number the same way.
"""
from __future__ import annotations

import gc
import random
import time
from typing import Callable, Mapping


def interleaved_rounds(
    candidates: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int,
    number: int = 1,
    timer: Callable[[], float] = time.perf_counter,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Time each candidate once per round, in a seeded random order; returns seconds per call per round.

    `number` calls are timed together per sample (for very short calls); the sample is their mean.
    """
    if repeats < 1 or warmup < 0 or number < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, number >= 1 (got {repeats}, {warmup}, {number})")
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    rng = random.Random(seed)
    # The young generations only, where the warm-up's garbage is: a full collection walks every
    # object of a process that imported torch (~0.5 M, 0.3-1 s a call, measured) and frees nothing
    # the samples depend on; what keeps collections out of the samples is disabling gc below.
    gc.collect(1)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            # A random order, not a rotation: rotating keeps each candidate behind the same
            # neighbour every round, and a neighbour's cache and allocator footprint then biases
            # it systematically (seen: relu/exact 1.2-1.5x vs 0.8x for the identical-cost
            # relu/rectangular, only because it always ran right after native SiLU).
            for name in rng.sample(names, len(names)):
                fn = candidates[name]
                start = timer()
                for _ in range(number):
                    fn()
                samples[name].append((timer() - start) / number)
    finally:
        if was_enabled:
            gc.enable()
    return samples


def round_ratios(num: list[float], den: list[float]) -> list[float]:
    """Per-round ratios num[r] / den[r]; both lists must come from the same interleaved rounds."""
    if len(num) != len(den):
        raise ValueError(f"per-round ratios need samples from the same rounds ({len(num)} != {len(den)})")
    return [a / b for a, b in zip(num, den)]

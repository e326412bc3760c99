"""Per-step training time, split into phases, with the discipline of docs/DESIGN.md section 4 (airbench).

- Warm-up: the first `warmup_steps` completed steps are discarded (allocator growth, kernel
  selection, lazy initialisation and cache misses make them unrepresentative).
- Synchronize: on CUDA (and MPS) kernels run asynchronously, so the device is synchronized at every
  phase boundary; otherwise a phase would be charged for work queued by the previous one. On CPU
  every op finishes before it returns, so no synchronization is needed (or done).
- Exclude evaluation: a step's time is the sum of its phase times, so anything outside a phase
  (evaluation, logging, checkpointing, data shuffling) is never counted. There is deliberately no
  pause()/resume(): keep evaluation outside `phase(...)` blocks and it is excluded by construction.
- Report spread, not only a mean: harness.measure's `summarize` gives median, IQR, quartiles,
  p10/p90, min, max and mean (the benchmark summarizes its samples with the same function).

Typical use in a training loop::

    timer = StepTimer(device, warmup_steps=10)
    for xb, yb in batches:
        with timer.phase("forward"):
            loss = loss_fn(model(xb), yb)
        with timer.phase("backward"):
            loss.backward()
        with timer.phase("optimizer"):
            opt.step(); opt.zero_grad(set_to_none=True)
        timer.end_step()
    timer.summary()
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import torch

from harness.measure import summarize  # the one spread summary, shared with the benchmark

#: The phases a training step is split into; `summary()` always reports these (plus any other
#: phase names that were used).
PHASES: tuple[str, ...] = ("forward", "backward", "optimizer")

_NS_PER_MS = 1e6


def _synchronizer(device: torch.device | str) -> Callable[[], None] | None:
    """The device barrier for asynchronous backends; None where ops complete on return (CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return None


class StepTimer:
    """Times training steps phase by phase; see the module docstring for the discipline.

    `clock` returns nanoseconds (default `time.perf_counter_ns`); tests inject a fake clock.
    A phase entered several times within one step (e.g. gradient accumulation) is summed.
    Phases may not nest: nesting would count the inner time twice.
    """

    def __init__(self, device: torch.device | str = "cpu", warmup_steps: int = 10, clock: Callable[[], int] | None = None):
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.device = torch.device(device)
        self.warmup_steps = int(warmup_steps)
        self._clock = clock or time.perf_counter_ns
        self._sync = _synchronizer(self.device)
        self._current: dict[str, int] = {}  # ns per phase in the step being measured
        self._steps: list[dict[str, int]] = []  # kept steps (after warm-up), ns per phase
        self._whole: list[float] = []  # kept add_steps() samples: ns per step (mean over the run of steps)
        self._whole_steps = 0  # steps in those samples
        self._phase_names: list[str] = list(PHASES)
        self._active: str | None = None
        self.steps_seen = 0  # completed steps, warm-up included

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the enclosed block as phase `name` of the current step.

        The device is synchronized before the start time is read (so earlier queued work is not
        charged here) and before the end time is read (so this phase's kernels are). If the block
        raises, nothing is recorded.
        """
        if name == "step":
            raise ValueError("'step' is reserved for the whole step (the sum of its phases)")
        if self._active is not None:
            raise RuntimeError(f"phase {name!r} started inside phase {self._active!r}; phases may not nest")
        self._active = name
        try:
            if self._sync is not None:
                self._sync()
            start = self._clock()
            yield
            if self._sync is not None:
                self._sync()
            elapsed = self._clock() - start
        finally:
            self._active = None
        self._current[name] = self._current.get(name, 0) + elapsed
        if name not in self._phase_names:
            self._phase_names.append(name)

    @property
    def synchronizes(self) -> bool:
        """True on asynchronous devices (CUDA, MPS), where now() waits for queued work."""
        return self._sync is not None

    def sync(self) -> None:
        """Wait for queued device work (no-op on CPU): call before reading the clock."""
        if self._sync is not None:
            self._sync()

    def now(self) -> int:
        """The clock in ns, after a device sync: for loops that time phases inline."""
        if self._sync is not None:
            self._sync()
        return self._clock()

    def add_step(self, **phase_ns: int) -> None:
        """Record one whole step from phase durations measured inline (ns), e.g.
        `add_step(forward=t1 - t0, backward=t2 - t1, optimizer=t3 - t2)`.

        The cheap path for hot training loops: no context managers per phase (they cost ~20 us
        per step in Python, a few percent of a small model's step). Warm-up applies as usual.
        """
        if self._active is not None or self._current:
            raise RuntimeError("add_step() cannot be mixed with an open phase() step")
        if self._whole_steps:
            raise RuntimeError("add_step() cannot be mixed with add_steps() (whole steps without phases)")
        for name in phase_ns:
            if name not in self._phase_names:
                self._phase_names.append(name)
        self.steps_seen += 1
        if self.steps_seen > self.warmup_steps:
            self._steps.append(phase_ns)

    def add_steps(self, total_ns: int, count: int = 1) -> None:
        """Record `count` consecutive whole steps that took `total_ns` together, without phases.

        The cheapest path (two clock reads per step, or per run of steps where the device is only
        synchronized at the ends): one sample of total_ns / count per call. A run that includes a
        warm-up step is dropped whole. The phase statistics stay empty (n = 0).
        """
        if count < 1:
            raise ValueError(f"add_steps() needs count >= 1, got {count}")
        if self._steps or self._current or self._active is not None:
            raise RuntimeError("add_steps() cannot be mixed with phase-timed steps")
        self.steps_seen += count
        if self.steps_seen - count >= self.warmup_steps:
            self._whole.append(total_ns / count)
            self._whole_steps += count

    def end_step(self) -> None:
        """Close the current step. Warm-up steps are counted but their times are dropped.

        A step in which no phase ran (e.g. end_step called twice) is ignored entirely.
        """
        if self._active is not None:
            raise RuntimeError(f"end_step() called inside phase {self._active!r}")
        if not self._current:
            return
        if self._whole_steps:
            raise RuntimeError("phase() steps cannot be mixed with add_steps() (whole steps without phases)")
        self.steps_seen += 1
        if self.steps_seen > self.warmup_steps:
            self._steps.append(self._current)
        self._current = {}

    @property
    def steps_timed(self) -> int:
        """Number of steps kept (after warm-up)."""
        return len(self._steps) + self._whole_steps

    def samples_ms(self) -> dict[str, list[float]]:
        """Per kept step, in milliseconds: {"step": [...], "<phase>": [...]} for every phase name.

        A phase that did not run in a step counts 0 ms there, so all lists have the same length.
        The step time is the sum of the step's phase times. Steps recorded with add_steps() give
        one "step" value per call (the mean over its steps) and empty phase lists.
        """
        if self._whole_steps:
            return {"step": [ns / _NS_PER_MS for ns in self._whole], **{name: [] for name in self._phase_names}}
        out: dict[str, list[float]] = {"step": [sum(s.values()) / _NS_PER_MS for s in self._steps]}
        for name in self._phase_names:
            out[name] = [s.get(name, 0) / _NS_PER_MS for s in self._steps]
        return out

    def summary(self) -> dict:
        """{"steps_timed", "warmup_steps", "steps_seen", "synchronized", "step_ms", "<phase>_ms"...}.

        Each "*_ms" value is a `summarize` dict (median, iqr, q25, q75, p10, p90, min, max, mean, n) over the kept
        steps; "forward_ms", "backward_ms" and "optimizer_ms" are always present (statistics None
        when nothing was timed), other phase names appear when used.
        """
        samples = self.samples_ms()
        out: dict = {
            "steps_timed": self.steps_timed,
            "warmup_steps": self.warmup_steps,
            "steps_seen": self.steps_seen,
            "synchronized": self._sync is not None,
        }
        for name, values in samples.items():
            out[f"{name}_ms"] = summarize(values)
        return out


__all__ = ["PHASES", "StepTimer"]

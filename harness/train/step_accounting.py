"""The trainer's per-step bookkeeping, kept off the hot path: running loss/accuracy and the clock.

Both exist because a small model's step is short (the MNIST-1D MLP's is about 0.6 ms on one CPU
thread), so every Python call and every tiny tensor op in the loop shows up in its speed:

- `RunningStats` keeps the steps' losses and logits as detached references and folds them into
  device-side sums every few steps (a handful of ops per flush instead of six ops per step), with
  no host sync until a caller reads a value.
- `StepClock` reads the clock as little as the requested detail needs: two reads per step by
  default; four synchronized reads per step with phase timing; on asynchronous devices (CUDA,
  MPS) without phase timing, one synchronized read at each end of a run of steps ("window"),
  so nothing waits for the device inside the run.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .timing import StepTimer

#: Timing modes, as recorded in metrics["speed"]["timing"].
PHASES, STEPS, WINDOWS = "phases", "steps", "windows"


class RunningStats:
    """Mean training loss and accuracy over the steps since the last `take()`, on the device.

    `add()` only keeps references (the loss and logits detached, so no autograd graph is held);
    `flush()` folds them into the sums. Up to one flush interval of logits stays alive, which is
    why the trainer flushes at every divergence check.
    """

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.steps = 0
        self._losses: list[Tensor] = []
        self._logits: list[Tensor] = []
        self._labels: list[Tensor] = []

    def add(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Count one step (no computation here: see flush)."""
        self._losses.append(loss.detach())
        self._logits.append(logits.detach())
        self._labels.append(labels)
        self.steps += 1

    def flush(self) -> None:
        """Fold the pending steps into the device-side sums (a NaN loss poisons the sum, as it should)."""
        if not self._losses:
            return
        self.loss_sum += torch.stack(self._losses).sum()
        self.correct += (torch.cat(self._logits).argmax(1) == torch.cat(self._labels)).sum()
        self._losses.clear()
        self._logits.clear()
        self._labels.clear()

    def mean_loss(self) -> float:
        """Mean loss of the counted steps (one host sync); NaN when none were counted."""
        self.flush()
        return float(self.loss_sum) / self.steps if self.steps else float("nan")

    def take(self, batch_size: int) -> tuple[float, float]:
        """(mean loss, accuracy) of the counted steps, then start a new window."""
        self.flush()
        n = max(self.steps, 1)
        out = self.loss_sum.item() / n, self.correct.item() / (n * batch_size)
        self.loss_sum.zero_()
        self.correct.zero_()
        self.steps = 0
        return out


class StepClock:
    """Reads the clock around training steps and records them in a StepTimer.

    Protocol per step: `t0 = start()` before the forward pass, `skip(ns)` for work inside the step
    that is not training (gradient diagnostics), `end(t0, t1, t2)` after the optimizer (t1, t2:
    the synchronized phase marks, only read in phase mode), and `close()` at points where the
    loop leaves the steps (evaluation, diagnostics, divergence checks). `train_ns` is the training
    time so far (steps only) and `first_step_s` the first step's duration (compile time included).
    """

    def __init__(self, timer: StepTimer, phases: bool):
        self.timer = timer
        self.now = timer.now
        self.mode = PHASES if phases else (WINDOWS if timer.synchronizes else STEPS)
        self.train_ns = 0
        self.first_step_s: float | None = None
        self._skipped = 0  # ns of non-training work inside the open step or window
        self._window_start: int | None = None
        self._window_steps = 0
        self._recorded = False  # any step recorded yet (the first one is timed on its own)

    def start(self) -> int:
        """Clock at the start of a step (windows: opens a window if none is open; returns 0)."""
        if self.mode != WINDOWS:
            return self.now()
        if self._window_start is None:
            self._window_start = self.now()
        return 0

    def skip(self, ns: int) -> None:
        """Exclude `ns` spent inside the current step (e.g. diagnostics) from its time."""
        self._skipped += ns

    def end(self, t0: int, t1: int = 0, t2: int = 0) -> None:
        """Close the step started at `t0` (phase mode: forward ended at t1, backward at t2)."""
        if self.mode == WINDOWS:
            self._window_steps += 1
            if not self._recorded:  # the first step is a window of its own: first_step_s
                self.close()
            return
        t3 = self.now()
        elapsed = t3 - t0 - self._skipped
        if self.mode == PHASES:
            self.timer.add_step(forward=t1 - t0, backward=t2 - t1, optimizer=t3 - t2 - self._skipped)
        else:
            self.timer.add_steps(elapsed)
        self._record(elapsed, 1)

    def close(self) -> None:
        """End the open window (windows mode: one synchronized clock read); a no-op otherwise."""
        if self._window_start is None:
            return
        elapsed = self.now() - self._window_start - self._skipped
        self.timer.add_steps(elapsed, self._window_steps)
        self._record(elapsed, self._window_steps)
        self._window_start, self._window_steps = None, 0

    def _record(self, elapsed: int, steps: int) -> None:
        self._skipped = 0
        self.train_ns += elapsed
        if not self._recorded:
            self._recorded = True
            self.first_step_s = elapsed / 1e9 if steps == 1 else None


__all__ = ["PHASES", "RunningStats", "STEPS", "StepClock", "WINDOWS"]

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
    """Mean training loss and accuracy over the steps since the last `take()`.

    `add()` only keeps references: a small model's step feels every tensor op, and inside a
    training loop each one costs ~5x what it costs alone (folding the accuracy in torch ops every
    ten steps cost the MNIST-1D MLP ~10 us a step, 1.4 %). Pending steps are folded when a caller
    reads the loss (every divergence check), at `take()` (every evaluation), and when
    `max_pending_bytes` of logits wait (256 KiB: logits held longer make every step write cold
    memory). Two ways to fold:

    - host (CPU tensors, float32 logits, int64 labels, compiled kernels built): one C++ call sums
      the losses in float64 and counts correct predictions with argmax's rule
      (`kernels.fold_steps`); the references hold the steps' graphs (their saved tensors already
      freed by backward) until then.
    - device (everything else): losses and logits are kept detached and folded in torch ops into
      device-side sums: no host sync per step on a GPU.
    A NaN or infinite loss poisons the sum either way, which is what the divergence check reads.
    """

    def __init__(self, device: torch.device, max_pending_bytes: int = 256 << 10, host: bool | None = None):
        self.device = torch.device(device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.steps = 0
        self.max_pending_bytes = max_pending_bytes
        self.host = host  # None: decided by the first step's tensors (_setup)
        self._host_loss_sum, self._host_correct = 0.0, 0
        self._max_pending: int | None = None  # steps kept before a fold (set by the first add)
        self._losses: list[Tensor] = []
        self._logits: list[Tensor] = []
        self._labels: list[Tensor] = []

    def add(self, loss: Tensor, logits: Tensor, labels: Tensor) -> None:
        """Count one step (no computation here, except a fold when the pending logits reach the cap)."""
        if self._max_pending is None:
            self._setup(logits, labels)
        if self.host:
            self._losses.append(loss)
            self._logits.append(logits)
        else:
            self._losses.append(loss.detach())
            self._logits.append(logits.detach())
        self._labels.append(labels)
        self.steps += 1
        if len(self._logits) >= self._max_pending:
            self.flush()

    def _setup(self, logits: Tensor, labels: Tensor) -> None:
        """On the first step: how steps are folded, and how many may wait."""
        from harness.activations import kernels

        suits = (self.device.type == "cpu" and logits.is_cpu and logits.dtype == torch.float32 and logits.dim() == 2
                 and labels.dtype == torch.int64)
        if self.host is None:
            self.host = suits and kernels.load() is not None
        elif self.host and not suits:
            raise ValueError("RunningStats(host=True) needs CPU float32 (N, C) logits and int64 labels")
        # By storage: a view keeps its whole base alive (logits sliced out of a larger output).
        self._max_pending = max(1, self.max_pending_bytes // max(logits.untyped_storage().nbytes(), 1))

    def flush(self) -> None:
        """Fold every pending step into the sums."""
        if not self._losses:
            return
        if self.host:
            from harness.activations import kernels

            loss_sum, correct = kernels.fold_steps(self._losses, self._logits, self._labels)
            self._host_loss_sum += loss_sum
            self._host_correct += correct
        else:
            self.loss_sum += torch.stack(self._losses).sum()
            self.correct += (torch.cat(self._logits).argmax(1) == torch.cat(self._labels)).sum()
        self._losses.clear()
        self._logits.clear()
        self._labels.clear()

    def _totals(self) -> tuple[float, int]:
        self.flush()
        if self.host:
            return self._host_loss_sum, self._host_correct
        return float(self.loss_sum), int(self.correct.item())

    def mean_loss(self) -> float:
        """Mean loss of the counted steps (one host sync off the CPU); NaN when none were counted."""
        return self._totals()[0] / self.steps if self.steps else float("nan")

    def take(self, batch_size: int) -> tuple[float, float]:
        """(mean loss, accuracy) of the counted steps, then start a new window."""
        loss_sum, correct = self._totals()
        n = max(self.steps, 1)
        out = loss_sum / n, correct / (n * batch_size)
        self.loss_sum.zero_()
        self.correct.zero_()
        self._host_loss_sum, self._host_correct = 0.0, 0
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

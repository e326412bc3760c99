"""The training loop: steps, periodic evaluation, timing, memory and gradient diagnostics.

The loop is plain PyTorch on tensors that live on the device (no DataLoader). Timing covers
only the training step (forward, backward, optimizer), never evaluation or diagnostics, and
starts after a warm-up (airbench's discipline, docs/DESIGN.md section 4).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.activations import compile_model
from harness.data import BatchIterator, DataSplits
from harness.errors import ParameterTypeError

from .diagnostics import activation_stats, gradient_fidelity, gradient_norms, preserved_state
from .memory import PeakMemory, model_saved_memory, saved_bytes_by_activation
from .step_accounting import PHASES, RunningStats, StepClock
from .timing import StepTimer


# A non-finite or exploded loss is looked for every this many steps (and at every evaluation).
DIVERGENCE_CHECK_EVERY = 10
# Time-to-target accuracy per dataset (AlgoPerf-style: a target the reference model reaches), used
# when trainer.target_acc is null. Measured here, reference MLP, Adam lr 1e-2, relu/exact, seeds
# 0-2, 2000 steps (README "Time to target"): see harness/conf/trainer/default.yaml.
DEFAULT_TARGETS = {"mnist1d": 0.6, "digits": 0.95}


class TrainingInterrupted(Exception):
    """Raised out of the loop on Ctrl-C, carrying the partial result so it can be recorded."""

    def __init__(self, result: "TrainResult"):
        super().__init__("training interrupted")
        self.result = result


@dataclass
class TrainerSettings:
    """How long to train and what to measure (the `trainer` config group)."""

    steps: int | None = 6000  # total optimizer steps; None: use `epochs`
    epochs: int | None = None  # epochs over the train split, when `steps` is None
    batch_size: int = 100
    eval_every: int = 500  # evaluate test (and val) accuracy every N steps, and at the end
    eval_batch_size: int = 2048
    # time-to-target: first evaluated step (and training seconds) reaching this test accuracy;
    # None: the dataset's default in target_by_dataset (no target where it has none)
    target_acc: float | None = None
    target_by_dataset: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))
    timing_warmup: int = 20  # steps excluded from timing statistics
    diagnostics_points: int = 3  # gradient diagnostics at this many evenly spaced steps (incl. 0 and last)
    probe_batch_size: int = 256  # probe batch for gradient fidelity and activation statistics
    compile: bool = False  # torch.compile the model (compile time recorded separately)
    # Diverged: the mean training loss since the last check exceeds this factor times the loss of
    # the first step (or is not finite). A loss of 1e20 at chance accuracy is not a result.
    divergence_factor: float = 1e4

    def __post_init__(self):
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"trainer: set exactly one of steps or epochs (got steps={self.steps}, epochs={self.epochs}).")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"trainer.{name} must be an integer >= 1, got {value!r}.")
        for name in ("batch_size", "eval_every", "eval_batch_size", "probe_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"trainer.{name} must be an integer >= 1, got {value!r}.")
        if self.target_acc is not None and not 0.0 <= self.target_acc <= 1.0:
            raise ValueError(f"trainer.target_acc must be in [0, 1], got {self.target_acc}.")
        for name, target in dict(self.target_by_dataset).items():
            if not (isinstance(target, (int, float)) and 0.0 <= target <= 1.0):
                raise ValueError(f"trainer.target_by_dataset.{name} must be in [0, 1], got {target!r}.")
        if not (isinstance(self.divergence_factor, (int, float)) and self.divergence_factor > 1):
            raise ValueError(f"trainer.divergence_factor must be a number > 1, got {self.divergence_factor!r}.")
        if self.timing_warmup < 0 or self.diagnostics_points < 0:
            raise ValueError("trainer.timing_warmup and trainer.diagnostics_points must be >= 0.")


@dataclass
class TrainResult:
    """Everything a run measured; the run record is built from this."""

    status: str = "ok"  # ok | diverged | interrupted
    steps_done: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list] = field(default_factory=dict)
    diagnostics: dict[str, list] = field(default_factory=dict)


def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy on class logits."""
    return F.cross_entropy(logits, y)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` on (x, y), in eval mode, batched."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = model(xb)
        total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(dim=1) == yb).sum().item()
    model.train(was_training)
    n = max(x.shape[0], 1)
    return total_loss / n, correct / n


def _diagnostic_steps(total: int, points: int) -> set[int]:
    if points <= 0:
        return set()
    if points == 1:
        return {0}
    return {round(i * total / (points - 1)) for i in range(points)}


class Trainer:
    """Train one model on one dataset with one optimizer/schedule, measuring as it goes."""

    def __init__(
        self,
        model: nn.Module,
        data: DataSplits,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        settings: TrainerSettings,
        *,
        generator: torch.Generator,
        log: Callable[[dict[str, Any]], None] | None = None,
        progress: Callable[[int], None] | None = None,
        phase_timing: bool = False,
    ):
        if not isinstance(phase_timing, bool):
            raise ParameterTypeError(f"phase_timing must be true or false, got {phase_timing!r}")
        self.model = model
        self.data = data
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.settings = settings
        self.generator = generator
        # A model-specific hook after every optimizer step (e.g. the BNN's weight clipping).
        self.after_step = getattr(model, "after_step", None)
        self.log = log or (lambda _: None)
        self.progress = progress  # called with the number of steps done, every step (must be cheap)
        # Forward/backward/optimizer times per step (four synchronized clock reads a step) instead
        # of whole steps only (two unsynchronized reads; on CUDA/MPS one synchronized read per ten
        # steps): a setting because the split costs a little on small models and serialises GPUs.
        self.phase_timing = phase_timing
        self.device = data.x_train.device
        self.batches = BatchIterator(data.x_train, data.y_train, settings.batch_size, generator=generator)
        self.total_steps = settings.steps if settings.steps is not None else settings.epochs * len(self.batches)
        # The probe batch is fixed (the first samples of train), so diagnostics compare like with like.
        n_probe = min(settings.probe_batch_size, data.x_train.shape[0])
        self.probe = (data.x_train[:n_probe], data.y_train[:n_probe])
        self.step_fn = compile_model(model) if settings.compile else model
        self._saved_memory: dict[str, Any] | None = None  # saved_memory(), measured once

    def saved_memory(self) -> dict[str, Any]:
        """Bytes autograd saves for one training step: {"saved_bytes_per_step", "model"} (see
        harness.train.memory). Measured on the first call (three probe forwards of one batch, the
        graph freed without backward) and kept: they depend on the model and the batch shape, which
        a Trainer never changes, not on the weights."""
        if self._saved_memory is None:
            model = self.model
            xb0, yb0 = next(iter(self.batches))
            with preserved_state(model):  # the probe forward must not move BatchNorm stats or RNGs
                saved = saved_bytes_by_activation(model, lambda: loss_fn(model(xb0), yb0))
                model_memory = model_saved_memory(model, lambda: loss_fn(model(xb0), yb0))
            self._saved_memory = {"saved_bytes_per_step": saved, "model": model_memory}
        return self._saved_memory

    def _evaluate(self, result: TrainResult, step: int, train_loss: float, train_acc: float) -> None:
        s, c = self.settings, result.curves
        test_loss, test_acc = evaluate(self.model, self.data.x_test, self.data.y_test, s.eval_batch_size)
        c["step"].append(step)
        c["train_loss"].append(train_loss)  # mean over the steps since the previous evaluation
        c["train_acc"].append(train_acc)
        c["test_loss"].append(test_loss)
        c["test_acc"].append(test_acc)
        c["lr"].append(self.optimizer.param_groups[0]["lr"])
        c["lr_scale"].append(float(getattr(self.scheduler, "last_scale", 1.0)))
        if self.data.x_val is not None:
            val_loss, val_acc = evaluate(self.model, self.data.x_val, self.data.y_val, s.eval_batch_size)
            c.setdefault("val_loss", []).append(val_loss)
            c.setdefault("val_acc", []).append(val_acc)
        self.log({k: v[-1] for k, v in c.items()})

    def _diagnose(self, result: TrainResult, step: int) -> None:
        xb, yb = self.probe
        fidelity = gradient_fidelity(self.model, loss_fn, xb, yb)
        result.diagnostics["fidelity"].append({"step": step, **fidelity})
        result.diagnostics["activations"].append({"step": step, **activation_stats(self.model, xb)})

    def fit(self) -> TrainResult:
        """Run the whole schedule and return what was measured (never raises on divergence)."""
        s = self.settings
        result = TrainResult(curves={k: [] for k in ("step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "lr_scale")},
                             diagnostics={"fidelity": [], "grad_norms": [], "activations": []})
        timer = StepTimer(self.device, warmup_steps=min(s.timing_warmup, max(self.total_steps - 1, 0)))
        diag_steps = _diagnostic_steps(self.total_steps, s.diagnostics_points)
        model, opt = self.model, self.optimizer
        model.train()
        result.metrics["memory"] = dict(self.saved_memory())
        # Loss and accuracy: the steps are kept by reference and folded when the divergence check
        # reads them (every DIVERGENCE_CHECK_EVERY steps), in one C++ call on the CPU and in device
        # ops elsewhere: no tensor op and no host sync per step (RunningStats). A NaN/inf loss
        # poisons the sum, which the check sees.
        stats = RunningStats(self.device)
        # Wall-clock figures go to metrics["speed"] only (curves and the rest stay reproducible):
        # training seconds so far (steps only, no evaluation or probes) at each evaluation.
        best_acc, best_step, target_step, target_s, eval_train_s = -1.0, None, None, None, []
        target = s.target_acc if s.target_acc is not None else dict(s.target_by_dataset).get(self.data.name)
        # The hot loop reads only locals: each attribute or global lookup is a few tens of ns, and
        # a small model's step is short enough for them to add up (README, "Speed").
        clock = StepClock(timer, self.phase_timing)
        phases, now = clock.mode == PHASES, timer.now
        next_batch = self.batches.forever().__next__
        step_fn, compute_loss, after_step, progress = self.step_fn, loss_fn, self.after_step, self.progress
        opt_step, scheduler_step = opt.step, self.scheduler.step
        # Gradients are cleared by dropping them, as opt.zero_grad(set_to_none=True) does, without
        # its per-call profiler scope and group loop (about 8 us a step on this machine).
        params = [p for group in opt.param_groups for p in group["params"]]
        total, eval_every, check_every = self.total_steps, s.eval_every, DIVERGENCE_CHECK_EVERY
        wall_start = time.perf_counter()
        peak = PeakMemory(self.device)
        peak.start()
        step = 0
        loss_bound, first_loss = None, None
        try:
            for step in range(total):
                diagnose_now = step in diag_steps
                if diagnose_now:
                    self._diagnose(result, step)
                xb, yb = next_batch()
                t0 = clock.start()
                logits = step_fn(xb)
                loss = compute_loss(logits, yb)
                t1 = now() if phases else 0
                loss.backward()
                t2 = now() if phases else 0
                if diagnose_now:
                    t_diag = now()
                    result.diagnostics["grad_norms"].append({"step": step, **gradient_norms(model)})
                    clock.skip(now() - t_diag)  # diagnostics are not part of the step
                opt_step()
                scheduler_step()
                for p in params:
                    p.grad = None
                if after_step is not None:
                    after_step()
                clock.end(t0, t1, t2)
                stats.add(loss, logits, yb)
                done = step + 1
                if loss_bound is None:  # one host sync, once: the bound is relative to the first loss
                    first_loss = float(loss.detach())
                    loss_bound = s.divergence_factor * max(abs(first_loss), 1e-3) if math.isfinite(first_loss) else -math.inf
                evaluate_now = done % eval_every == 0 or done == total
                if evaluate_now or done % check_every == 0 or done in diag_steps:
                    clock.close()  # the loop leaves the steps here (windows mode: one device sync)
                if evaluate_now or done % check_every == 0:
                    mean_loss = stats.mean_loss()
                    if not mean_loss <= loss_bound:  # NaN compares false: caught here too
                        result.status = "diverged"
                        result.metrics["diverged_by_step"] = done  # first check that saw it
                        result.metrics["divergence"] = {"mean_loss": mean_loss if math.isfinite(mean_loss) else None,
                                                        "first_loss": first_loss, "factor": s.divergence_factor}
                        step = done  # steps completed
                        break
                if progress is not None:
                    progress(done)
                if evaluate_now:
                    train_loss, train_acc = stats.take(s.batch_size)
                    self._evaluate(result, done, train_loss, train_acc)
                    eval_train_s.append(clock.train_ns / 1e9)
                    acc = result.curves["test_acc"][-1]
                    if acc > best_acc:
                        best_acc, best_step = acc, done
                    if target_step is None and target is not None and acc >= target:
                        target_step, target_s = done, clock.train_ns / 1e9
            else:
                step = self.total_steps
                if self.total_steps in diag_steps:
                    self._diagnose(result, self.total_steps)
        except KeyboardInterrupt:
            result.status = "interrupted"
        result.steps_done = step if result.status != "ok" else self.total_steps
        wall = time.perf_counter() - wall_start
        speed = timer.summary()
        speed["timing"] = clock.mode  # phases | steps | windows (see harness/train/step_accounting.py)
        first_step_s = clock.first_step_s
        median_step_ms = (speed.get("step_ms") or {}).get("median")
        speed["samples_per_s"] = s.batch_size / (median_step_ms / 1000.0) if median_step_ms else None
        speed["wall_time_s"] = wall
        speed["first_step_s"] = first_step_s
        speed["train_time_s_at_eval"] = eval_train_s  # aligned with curves["step"]
        speed["time_to_target_s"] = target_s  # training seconds to metrics["time_to_target"]["target"]
        if s.compile and first_step_s is not None and median_step_ms:
            speed["compile_time_s"] = max(first_step_s - median_step_ms / 1000.0, 0.0)
        result.metrics["speed"] = speed
        result.metrics["memory"]["peak"] = peak.stop()
        curves = result.curves
        result.metrics.update(
            final_test_acc=curves["test_acc"][-1] if curves["test_acc"] else None,
            final_test_loss=curves["test_loss"][-1] if curves["test_loss"] else None,
            final_train_loss=next((v for v in reversed(curves["train_loss"]) if v is not None), None),
            best_test_acc=best_acc if best_acc >= 0 else None,
            best_step=best_step,
            time_to_target={"target": target, "step": target_step, "resolution_steps": s.eval_every},
            total_steps=self.total_steps,
        )
        if "val_acc" in curves:
            result.metrics["final_val_acc"] = curves["val_acc"][-1]
        if result.status == "interrupted":
            raise TrainingInterrupted(result)
        return result

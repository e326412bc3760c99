"""`LRSchedule`: a torch learning-rate scheduler with the harness's conventions on top.

The learning rate after ``t`` calls to ``step()`` comes from a ``torch.optim.lr_scheduler``
scheduler built in closed form (LambdaLR, or SequentialLR over LambdaLRs), so it is a pure function
of ``t`` and of each group's ``initial_lr``. On top: ``last_scale``, a factor the trainer logs for
every schedule (1 here; ``snr_adaptive`` moves it), ``get_last_lr()`` as a copy, ``total_steps``,
and a ``state_dict`` that resumes exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler


@dataclasses.dataclass(frozen=True)
class ConstantFactor:
    """The factor of a constant schedule, lr(t) = base * 1 (a class, not a lambda, so that
    `LRSchedule` can tell that stepping changes nothing)."""

    def __call__(self, step: int) -> float:
        return 1.0


def is_constant(scheduler: LRScheduler) -> bool:
    """True for a LambdaLR whose every factor is a ConstantFactor."""
    return isinstance(scheduler, LambdaLR) and all(isinstance(f, ConstantFactor) for f in scheduler.lr_lambdas)


class LRSchedule:
    """Steps ``scheduler`` once per optimizer step and applies ``last_scale`` to its rates.

    Attributes:
        optimizer: the optimizer being scheduled.
        scheduler: the torch scheduler giving the base rate of step ``t``.
        total_steps: the run length the schedule was built for.
        base_lrs: per-group base learning rates (``group["initial_lr"]``).
        last_step: number of completed ``step()`` calls.
        last_scale: factor on top of the scheduler's rates (1.0 unless a subclass moves it).
    """

    def __init__(self, scheduler: LRScheduler, *, total_steps: int) -> None:
        """Wrap ``scheduler``, which has already applied the step-0 learning rate."""
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer
        self.total_steps = int(total_steps)
        self.base_lrs: list[float] = [float(g["initial_lr"]) for g in self.optimizer.param_groups]
        self.last_step = 0
        self.last_scale = 1.0
        self._last_lr = [float(lr) for lr in scheduler.get_last_lr()]
        # A constant schedule at an unchanged scale sets the same rates every step: only the step
        # counts move (torch's step() costs 2-15 us a call, 1-2 % of a small model's step).
        self._constant = is_constant(scheduler)
        self._applied_scale = self.last_scale

    def step(self) -> None:
        """Advance one optimizer step; call once per training step, after ``optimizer.step()``."""
        self.last_step += 1
        if self._constant and self.last_scale == self._applied_scale:
            self.scheduler.last_epoch += 1
            return
        self.scheduler.step()
        self._applied_scale = self.last_scale
        self._apply([float(lr) * self.last_scale for lr in self.scheduler.get_last_lr()])

    def get_last_lr(self) -> list[float]:
        """The per-group learning rates currently set on the optimizer (a copy)."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the torch scheduler's state, step count, scale and rates."""
        return {"scheduler": self.scheduler.state_dict(), "last_step": self.last_step,
                "last_scale": self.last_scale, "last_lr": list(self._last_lr)}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` and re-apply the learning rates of the restored step."""
        if len(state_dict["last_lr"]) != len(self.optimizer.param_groups):
            raise ValueError(f"state_dict has {len(state_dict['last_lr'])} learning rates but the optimizer has "
                             f"{len(self.optimizer.param_groups)} param groups")
        self.scheduler.load_state_dict(dict(state_dict["scheduler"]))
        self.last_step = int(state_dict["last_step"])
        self.last_scale = float(state_dict.get("last_scale", 1.0))
        self._applied_scale = self.last_scale
        self._apply([float(lr) for lr in state_dict["last_lr"]])

    def _apply(self, lrs: list[float]) -> None:
        """Write ``lrs`` into the optimizer's param groups."""
        self._last_lr = lrs
        for group, lr in zip(self.optimizer.param_groups, lrs):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # tensor lrs (capturable / compiled optimizers) stay the same tensor
            else:
                group["lr"] = lr

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(scheduler={type(self.scheduler).__name__}, total_steps={self.total_steps}, "
                f"last_step={self.last_step})")

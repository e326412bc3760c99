"""Training: optimizers and schedules, the loop, and what it measures.

- `optimizers.py`, `schedules.py`: tables of optimizers and learning-rate schedules over torch.optim
  and torch.optim.lr_scheduler (`settings.py`: their checks; `lr_schedule.py`: the schedule
  wrapper); `snr_adaptive.py`: the one schedule that is ours.
- `trainer.py`: the loop (`Trainer`, `TrainerSettings`).
- `timing.py`, `memory.py`, `diagnostics.py`: step timing, saved/peak memory, gradient fidelity.
"""

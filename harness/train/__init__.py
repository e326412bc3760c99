"""Training: optimizers and schedules, the loop, and what it measures.

- `optimizers.py`, `schedules.py`: registries of optimizers and learning-rate schedules.
- `trainer.py`: the loop (`Trainer`, `TrainerSettings`).
- `timing.py`, `memory.py`, `diagnostics.py`: step timing, saved/peak memory, gradient fidelity.
"""

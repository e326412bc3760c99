"""What a person watching a run or a sweep sees.

A run on a terminal gets a tqdm bar (step, steps/s, ETA; loss and accuracies from the last
evaluation), redrawn at most 4 times a second. Without a terminal (CI, SLURM logs, joblib
workers) it prints one plain line per evaluation instead. A sweep prints, before each run, how
many of its runs are done (cached ones included), the run's overrides and the sweep's ETA.

Cost: the trainer calls `step()` once per training step; it only compares a counter, so the
display costs nothing measurable (see the README's progress note for the A/B measurement).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

PLAN_NAME = "plan.json"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class RunProgress:
    """Progress of one training run (see the module docstring)."""

    def __init__(self, total_steps: int, label: str = "", stream: TextIO | None = None, tty: bool | None = None):
        self.total = max(int(total_steps), 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.bar = None
        self._next_check = 0
        self._started = time.perf_counter()
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=label or "train", unit="step", file=self.stream,
                            mininterval=0.25, dynamic_ncols=True, leave=True)

    def step(self, done: int) -> None:
        """Called by the trainer after every step: a counter check, and a redraw now and then."""
        if done >= self._next_check and self.bar is not None:
            self.bar.update(done - self.bar.n)
            self._next_check = done + max(1, self.total // 400)

    def row(self, row: dict[str, Any]) -> None:
        """An evaluation row (step, train_loss, train_acc, test_acc, ...)."""
        step = int(row.get("step", 0))
        fields = {k: row[k] for k in ("train_loss", "train_acc", "test_acc") if isinstance(row.get(k), (int, float))}
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in fields.items()}, refresh=False)
            return
        elapsed = time.perf_counter() - self._started
        rate = step / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else None
        parts = " ".join(f"{k}={v:.4g}" for k, v in fields.items())
        print(f"{self.label} step {step}/{self.total} {parts} {rate:.0f} steps/s ETA {_fmt_duration(eta)}".strip(),
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_plan(folder: str | Path, plan: dict[str, Any]) -> Path:
    """The sweep's plan (total, cached, keys to run, start time), read by each job for its progress line."""
    path = Path(folder) / PLAN_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan))
    tmp.replace(path)
    return path


def sweep_line(plan_folder: str | Path, store: str | Path, overrides: list[str]) -> str | None:
    """'[sweep 7/24 done, 4 cached] backward=exact seed=1 | ETA 3m10s' from the plan and the store."""
    from harness.store.layout import record_path

    path = Path(plan_folder) / PLAN_NAME
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    todo = plan.get("to_run", [])
    started = plan.get("started", time.time())

    def finished_now(key: str) -> bool:  # a record written by this sweep, not an older failure
        try:
            return record_path(store, key).stat().st_mtime >= started
        except OSError:
            return False
    finished = sum(1 for key in todo if finished_now(key))
    done = plan.get("cached", 0) + plan.get("invalid", 0) + finished
    elapsed = time.time() - started
    eta = elapsed / finished * (len(todo) - finished) if finished else None
    return (f"[sweep {done}/{plan.get('total', '?')} done, {plan.get('cached', 0)} cached] "
            f"{' '.join(overrides)} | ETA {_fmt_duration(eta)}")

"""Tests for harness.train.timing: exact statistics with a fake clock, warm-up discard, phase rules.

No test asserts a wall-clock duration: the fake clock makes every number exact, and the one test
with the real clock checks structure only.
"""
from __future__ import annotations

import pytest
import torch

from harness.activations import ActFactory
from harness.models import build_model
from harness.measure import SUMMARY_KEYS
from harness.train.timing import PHASES, StepTimer


class FakeClock:
    """A nanosecond clock that moves only when the test says so."""

    def __init__(self):
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += int(round(ms * 1e6))


def _run_steps(timer: StepTimer, clock: FakeClock, durations, eval_ms: float = 0.0) -> None:
    """One step per (forward, backward, optimizer) triple of ms; `eval_ms` passes between steps."""
    for fwd, bwd, opt in durations:
        with timer.phase("forward"):
            clock.advance_ms(fwd)
        with timer.phase("backward"):
            clock.advance_ms(bwd)
        with timer.phase("optimizer"):
            clock.advance_ms(opt)
        timer.end_step()
        clock.advance_ms(eval_ms)  # evaluation, logging: outside every phase


def test_warmup_steps_discarded_and_statistics_exact():
    clock = FakeClock()
    timer = StepTimer("cpu", warmup_steps=2, clock=clock)
    # Two slow warm-up steps, then forward 1..5 ms, backward 2x, optimizer 0.5 ms.
    warmup = [(1000.0, 1000.0, 1000.0)] * 2
    timed = [(f, 2.0 * f, 0.5) for f in (3.0, 1.0, 5.0, 2.0, 4.0)]
    _run_steps(timer, clock, warmup + timed, eval_ms=500.0)

    s = timer.summary()
    assert s["steps_timed"] == 5 and s["warmup_steps"] == 2 and s["steps_seen"] == 7
    assert s["synchronized"] is False
    assert s["forward_ms"] == pytest.approx({"median": 3.0, "iqr": 2.0, "q25": 2.0, "q75": 4.0, "p10": 1.4, "p90": 4.6, "min": 1.0, "max": 5.0, "mean": 3.0, "n": 5})
    assert s["backward_ms"] == pytest.approx({"median": 6.0, "iqr": 4.0, "q25": 4.0, "q75": 8.0, "p10": 2.8, "p90": 9.2, "min": 2.0, "max": 10.0, "mean": 6.0, "n": 5})
    assert s["optimizer_ms"] == pytest.approx({"median": 0.5, "iqr": 0.0, "q25": 0.5, "q75": 0.5, "p10": 0.5, "p90": 0.5, "min": 0.5, "max": 0.5, "mean": 0.5, "n": 5})
    # Step = f + 2f + 0.5 = 3f + 0.5 with f in 1..5: the 500 ms of evaluation never counts.
    assert s["step_ms"] == pytest.approx({"median": 9.5, "iqr": 6.0, "q25": 6.5, "q75": 12.5, "p10": 4.7, "p90": 14.3, "min": 3.5, "max": 15.5, "mean": 9.5, "n": 5})
    assert timer.samples_ms()["forward"] == pytest.approx([3.0, 1.0, 5.0, 2.0, 4.0])


def test_zero_warmup_and_nothing_timed():
    clock = FakeClock()
    timer = StepTimer("cpu", warmup_steps=0, clock=clock)
    empty = timer.summary()
    assert empty["steps_timed"] == 0
    assert {f"{p}_ms" for p in PHASES} | {"step_ms"} <= set(empty)
    assert empty["forward_ms"]["median"] is None
    _run_steps(timer, clock, [(1.0, 1.0, 1.0)])
    assert timer.summary()["steps_timed"] == 1


def test_fewer_steps_than_warmup_times_nothing():
    clock = FakeClock()
    timer = StepTimer("cpu", warmup_steps=10, clock=clock)
    _run_steps(timer, clock, [(1.0, 1.0, 1.0)] * 3)
    s = timer.summary()
    assert s["steps_seen"] == 3 and s["steps_timed"] == 0 and s["step_ms"]["n"] == 0


def test_repeated_phase_is_summed_and_missing_phase_counts_zero():
    clock = FakeClock()
    timer = StepTimer("cpu", warmup_steps=0, clock=clock)
    for _ in range(2):  # gradient accumulation: two forward/backward rounds in one step
        with timer.phase("forward"):
            clock.advance_ms(1.0)
        with timer.phase("backward"):
            clock.advance_ms(2.0)
    timer.end_step()  # no optimizer phase in this step
    with timer.phase("data"):  # an extra phase name is reported too
        clock.advance_ms(4.0)
    timer.end_step()
    samples = timer.samples_ms()
    assert samples["forward"] == [2.0, 0.0]
    assert samples["backward"] == [4.0, 0.0]
    assert samples["optimizer"] == [0.0, 0.0]
    assert samples["data"] == [0.0, 4.0]
    assert samples["step"] == [6.0, 4.0]
    assert timer.summary()["data_ms"]["median"] == 2.0


def test_empty_end_step_is_ignored():
    clock = FakeClock()
    timer = StepTimer("cpu", warmup_steps=1, clock=clock)
    timer.end_step()
    timer.end_step()
    assert timer.steps_seen == 0
    _run_steps(timer, clock, [(5.0, 5.0, 5.0), (1.0, 1.0, 1.0)])
    assert timer.samples_ms()["step"] == [3.0]


def test_phase_rules():
    timer = StepTimer("cpu", clock=FakeClock())
    with pytest.raises(RuntimeError, match="may not nest"):
        with timer.phase("forward"):
            with timer.phase("backward"):
                pass
    with pytest.raises(ValueError, match="reserved"):
        with timer.phase("step"):
            pass
    with pytest.raises(ZeroDivisionError):
        with timer.phase("forward"):
            1 / 0
    with pytest.raises(RuntimeError, match="inside phase"):
        with timer.phase("forward"):
            timer.end_step()
    # None of the failed phases left anything behind.
    timer.end_step()
    assert timer.steps_seen == 0
    with pytest.raises(ValueError):
        StepTimer("cpu", warmup_steps=-1)


def test_cuda_device_synchronizes_at_every_phase_boundary(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    clock = FakeClock()
    timer = StepTimer("cuda", warmup_steps=0, clock=clock)
    _run_steps(timer, clock, [(1.0, 1.0, 1.0)])
    assert len(calls) == 6  # before and after each of the three phases
    assert timer.summary()["synchronized"] is True


def test_cpu_device_never_synchronizes(monkeypatch):
    def boom(*_, **__):
        raise AssertionError("synchronize called on CPU")

    monkeypatch.setattr(torch.cuda, "synchronize", boom)
    clock = FakeClock()
    timer = StepTimer(torch.device("cpu"), warmup_steps=0, clock=clock)
    _run_steps(timer, clock, [(1.0, 1.0, 1.0)])
    assert timer.steps_timed == 1


def test_real_clock_training_loop_structure():
    model = build_model("mlp", input_shape=(40,), num_classes=10, act=ActFactory("relu", "rectangular"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xb, yb = torch.randn(32, 40), torch.randint(0, 10, (32,))
    loss_fn = torch.nn.functional.cross_entropy
    timer = StepTimer("cpu", warmup_steps=2)
    for _ in range(5):
        with timer.phase("forward"):
            loss = loss_fn(model(xb), yb)
        with timer.phase("backward"):
            loss.backward()
        with timer.phase("optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)
        timer.end_step()
    s = timer.summary()
    assert s["steps_timed"] == 3
    for key in ("step_ms", "forward_ms", "backward_ms", "optimizer_ms"):
        assert tuple(s[key]) == SUMMARY_KEYS
        assert s[key]["n"] == 3 and s[key]["median"] >= 0.0 and s[key]["iqr"] >= 0.0
    # The step is exactly the sum of its phases, step by step.
    samples = timer.samples_ms()
    for i in range(3):
        assert samples["step"][i] == pytest.approx(sum(samples[p][i] for p in PHASES))


def test_whole_steps_without_phases_give_step_statistics_only():
    """add_steps(): one sample per call (mean per step); a run touching the warm-up is dropped."""
    timer = StepTimer("cpu", warmup_steps=2)
    timer.add_steps(5_000_000, 1)   # warm-up step 1: dropped
    timer.add_steps(8_000_000, 2)   # steps 2-3: includes warm-up step 2, dropped whole
    timer.add_steps(6_000_000, 3)   # 2 ms per step
    timer.add_steps(4_000_000, 1)   # 4 ms
    s = timer.summary()
    assert (s["steps_seen"], s["steps_timed"]) == (7, 4)
    assert s["step_ms"]["n"] == 2 and s["step_ms"]["median"] == pytest.approx(3.0)
    assert all(s[f"{p}_ms"]["n"] == 0 and s[f"{p}_ms"]["median"] is None for p in PHASES)
    with pytest.raises(RuntimeError, match="cannot be mixed"):
        timer.add_step(forward=1, backward=1, optimizer=1)
    with pytest.raises(ValueError, match="count >= 1"):
        timer.add_steps(1, 0)

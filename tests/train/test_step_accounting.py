"""Tests for harness.train.step_accounting: deferred loss/accuracy sums and the clock's three modes.

A fake clock makes every duration exact; a fake synchronizer counts device syncs, so the
windows mode is checked for what it promises (no sync inside a run of steps) without a GPU.
"""
from __future__ import annotations

import math

import pytest
import torch

from harness.train.step_accounting import PHASES, STEPS, WINDOWS, RunningStats, StepClock
from harness.train.timing import StepTimer


class FakeClock:
    """Nanoseconds that move only when the test says so."""

    def __init__(self):
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance(self, ms: float) -> None:
        self.ns += int(ms * 1e6)


def _clock(phases: bool = False, synchronizing: bool = False):
    fake, syncs = FakeClock(), []
    timer = StepTimer("cpu", warmup_steps=0, clock=fake)
    if synchronizing:  # what StepTimer does on CUDA/MPS, observed instead of performed
        timer._sync = lambda: syncs.append(fake.ns)
    return StepClock(timer, phases), timer, fake, syncs


@pytest.mark.parametrize("host", [None, False])  # CPU default (host, C++ fold) / the device path of GPUs
def test_running_stats_are_the_window_means_and_reset_on_take(host):
    stats = RunningStats(torch.device("cpu"), host=host)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    for loss, labels in ((1.0, [0, 1]), (3.0, [0, 0])):  # 2 + 1 of 4 predictions right
        stats.add(torch.tensor(loss, requires_grad=True) * 1, logits * 1, torch.tensor(labels))
    assert stats.mean_loss() == pytest.approx(2.0)
    from harness.activations import kernels

    assert stats.host is (host is None and kernels.load() is not None)
    stats.add(torch.tensor(5.0), logits, torch.tensor([1, 1]))
    assert stats.take(batch_size=2) == pytest.approx((3.0, 4 / 6))
    assert stats.steps == 0 and math.isnan(stats.mean_loss())
    stats.add(torch.tensor(float("nan")), logits, torch.tensor([0, 1]))
    assert math.isnan(stats.mean_loss())  # a NaN loss poisons the sum: the divergence check sees it


def test_running_stats_keep_logits_until_the_byte_cap_and_losses_until_read():
    """Logits wait for take() unless max_pending_bytes of them (by storage) are pending; reading the
    mean loss folds only the losses. The result does not depend on when folds happen."""
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # 16 bytes of storage
    stream = [(float(i), [0, 1] if i % 3 else [1, 0]) for i in range(7)]  # 4 of 7 steps fully right, 3 fully wrong
    results = []
    for cap in (16, 40, 1 << 20):  # a fold every step, every 2 steps, never before take()
        stats = RunningStats(torch.device("cpu"), max_pending_bytes=cap, host=False)
        pending = []
        for loss, labels in stream:
            stats.add(torch.tensor(loss), logits, torch.tensor(labels))
            pending.append(len(stats._logits))
        assert max(pending) == (cap // 16 - 1 if cap < 1 << 20 else 7)  # a fold empties the list
        assert stats.mean_loss() == pytest.approx(3.0) and not stats._losses
        results.append(stats.take(batch_size=2))
    assert results == [pytest.approx((3.0, 8 / 14))] * 3
    big = torch.zeros(100, 2)  # a view's whole base counts: 800 bytes per step
    stats = RunningStats(torch.device("cpu"), max_pending_bytes=1600, host=False)
    for _ in range(3):
        stats.add(torch.tensor(1.0), big[:2], torch.tensor([0, 0]))
    assert len(stats._logits) == 1  # folded at 2 steps, one pending


def test_steps_mode_reads_two_clocks_per_step_and_excludes_skipped_work():
    clock, timer, fake, syncs = _clock()
    assert clock.mode == STEPS
    for ms in (2.0, 4.0):
        t0 = clock.start()
        fake.advance(ms)
        clock.skip(int(1e6))  # 1 ms of diagnostics inside the step
        fake.advance(1.0)
        clock.end(t0)
    assert timer.summary()["step_ms"]["median"] == pytest.approx(3.0)
    assert clock.train_ns == int(6e6) and clock.first_step_s == pytest.approx(2e-3)


def test_phase_mode_splits_each_step():
    clock, timer, fake, _ = _clock(phases=True)
    assert clock.mode == PHASES
    t0 = clock.start()
    fake.advance(1.0)
    t1 = clock.now()
    fake.advance(2.0)
    t2 = clock.now()
    fake.advance(0.5)
    clock.end(t0, t1, t2)
    s = timer.summary()
    assert (s["forward_ms"]["median"], s["backward_ms"]["median"], s["optimizer_ms"]["median"]) == pytest.approx((1.0, 2.0, 0.5))


def test_windows_mode_syncs_only_at_window_ends_and_times_the_first_step_alone():
    clock, timer, fake, syncs = _clock(synchronizing=True)
    assert clock.mode == WINDOWS
    for step in range(21):
        t0 = clock.start()
        fake.advance(2.0 if step == 0 else 1.0)  # the first step carries compilation, say
        clock.end(t0)
        if (step + 1) % 10 == 0:
            clock.close()
    clock.close()
    assert len(syncs) == 2 * 4  # windows [0], [1..9], [10..19], [20]: a sync at each end, none inside
    s = timer.summary()
    assert s["steps_timed"] == 21 and s["step_ms"]["n"] == 4
    assert clock.first_step_s == pytest.approx(2e-3) and clock.train_ns == int(22e6)

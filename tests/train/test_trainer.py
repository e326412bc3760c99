"""The training loop: evaluation schedule, curves, interruption, compile, settings validation."""
import pytest
import torch

import harness.train.trainer as trainer_module
from harness.store.record import load_record
from harness.sweep.run import build_run, execute
from harness.train.trainer import Trainer, TrainerSettings, TrainingInterrupted
from support.configs import tiny_config


def make_trainer(*overrides):
    run = build_run(tiny_config(*overrides))
    return Trainer(run["model"], run["data"], run["optimizer"], run["scheduler"], run["settings"], generator=run["generator"])


def test_curves_have_one_point_per_evaluation_and_train_stats_per_window():
    result = make_trainer("trainer.steps=50", "trainer.eval_every=20").fit()
    c = result.curves
    assert c["step"] == [20, 40, 50]
    assert all(len(v) == 3 for v in c.values())
    assert all(0 <= a <= 1 for a in c["train_acc"] + c["test_acc"]) and all(v > 0 for v in c["train_loss"])
    assert result.metrics["speed"]["steps_timed"] == 45 and result.steps_done == 50
    assert [d["step"] for d in result.diagnostics["fidelity"]] == [0, 25, 50]
    assert [d["step"] for d in result.diagnostics["grad_norms"]] == [0, 25]


def test_train_loss_curve_is_the_mean_loss_of_its_window(monkeypatch):
    seen = []
    real = trainer_module.loss_fn

    def recording(logits, y):
        loss = real(logits, y)
        if logits.requires_grad and torch.is_grad_enabled():
            seen.append(loss.item())
        return loss

    monkeypatch.setattr(trainer_module, "loss_fn", recording)
    result = make_trainer("trainer.steps=20", "trainer.eval_every=10", "trainer.diagnostics_points=0").fit()
    train_losses = seen[-20:]  # the 20 training steps; the calls before them are the saved-bytes probes
    assert result.curves["train_loss"] == pytest.approx([sum(train_losses[:10]) / 10, sum(train_losses[10:20]) / 10], rel=1e-5)


def test_ctrl_c_stops_cleanly_and_records_an_interrupted_run(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = trainer_module.loss_fn

    def interrupt_later(logits, y):
        calls["n"] += 1
        if calls["n"] == 30:
            raise KeyboardInterrupt
        return real(logits, y)

    monkeypatch.setattr(trainer_module, "loss_fn", interrupt_later)
    with pytest.raises(KeyboardInterrupt):
        execute(tiny_config("trainer.diagnostics_points=0"), tmp_path)
    record = load_record(tmp_path)
    assert record["status"] == "interrupted"
    assert 0 < record["metrics"]["steps_done"] < 60 and record["curves"]["step"] == [20]


def test_interrupted_trainer_carries_its_partial_result(monkeypatch):
    t = make_trainer("trainer.diagnostics_points=0")
    monkeypatch.setattr(t, "scheduler", type("S", (), {"step": lambda self: (_ for _ in ()).throw(KeyboardInterrupt())})())
    with pytest.raises(TrainingInterrupted) as stop:
        t.fit()
    assert stop.value.result.status == "interrupted" and stop.value.result.steps_done == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=None, epochs=None), "exactly one of steps or epochs"),
    (dict(steps=10, epochs=2), "exactly one of steps or epochs"),
    (dict(steps=0), "trainer.steps must be an integer >= 1"),
    (dict(batch_size=0), "trainer.batch_size must be an integer >= 1"),
    (dict(target_acc=1.5), r"target_acc must be in \[0, 1\]"),
])
def test_bad_settings_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainerSettings(**kwargs)


@pytest.mark.slow
def test_compiled_training_records_compile_time_and_matches_eager_accuracy(tmp_path):
    eager = execute(tiny_config("trainer.diagnostics_points=0"), tmp_path / "eager")
    compiled = execute(tiny_config("trainer.diagnostics_points=0", "trainer.compile=true"), tmp_path / "compiled")
    assert compiled["status"] == "ok"
    speed = compiled["metrics"]["speed"]
    assert speed["compile_time_s"] > 0 and speed["first_step_s"] > speed["step_ms"]["median"] / 1000
    assert "compile_time_s" not in eager["metrics"]["speed"]
    assert abs(compiled["metrics"]["final_test_acc"] - eager["metrics"]["final_test_acc"]) < 0.05

"""The training loop: evaluation schedule, curves, interruption, compile, settings validation,
and that the bookkeeping taken off the hot path leaves the training itself unchanged."""
import pytest
import torch

import harness.train.trainer as trainer_module
from harness.data import BatchIterator
from harness.errors import ParameterTypeError
from harness.store.record import load_record
from harness.sweep.run import build_run, execute
from harness.train.trainer import Trainer, TrainerSettings, TrainingInterrupted
from support.configs import tiny_config


def make_trainer(*overrides, **kwargs):
    run = build_run(tiny_config(*overrides))
    return Trainer(run["model"], run["data"], run["optimizer"], run["scheduler"], run["settings"], generator=run["generator"],
                   **kwargs)


def _record_training_losses(monkeypatch) -> list[float]:
    """Patch the trainer's loss so that every training-step loss is appended to the returned list."""
    seen = []
    real = trainer_module.loss_fn

    def recording(logits, y):
        loss = real(logits, y)
        if logits.requires_grad and torch.is_grad_enabled():
            seen.append(loss.item())
        return loss

    monkeypatch.setattr(trainer_module, "loss_fn", recording)
    return seen


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
    seen = _record_training_losses(monkeypatch)
    result = make_trainer("trainer.steps=20", "trainer.eval_every=10", "trainer.diagnostics_points=0").fit()
    train_losses = seen[-20:]  # the 20 training steps; the calls before them are the saved-bytes probes
    assert result.curves["train_loss"] == pytest.approx([sum(train_losses[:10]) / 10, sum(train_losses[10:20]) / 10], rel=1e-5)


def test_training_is_exactly_a_plain_loop_with_torch_default_adam(monkeypatch):
    """Same seed: every step's loss and the final weights equal a plain loop over the same batches
    with torch's default (single-tensor) Adam, so the default foreach optimizer, the dropped-gradient
    clearing and the deferred bookkeeping change nothing that is trained."""
    seen = _record_training_losses(monkeypatch)
    steps = 25
    trainer = make_trainer(f"trainer.steps={steps}", "trainer.eval_every=10", "trainer.diagnostics_points=0")
    assert trainer.optimizer.param_groups[0]["foreach"] is True
    result = trainer.fit()

    run = build_run(tiny_config(f"trainer.steps={steps}", "trainer.diagnostics_points=0"))
    model, data = run["model"], run["data"]
    opt = torch.optim.Adam(model.parameters(), lr=run["optimizer"].param_groups[0]["lr"], foreach=False)
    batches = BatchIterator(data.x_train, data.y_train, run["settings"].batch_size, generator=run["generator"])
    next(iter(batches))  # the trainer's memory probe draws one epoch's order first
    stream, want = batches.forever(), []
    for _ in range(steps):
        xb, yb = next(stream)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        want.append(loss.item())
    assert seen[-steps:] == want
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.parameters(), model.parameters()))
    assert result.curves["train_loss"] == pytest.approx([sum(want[:10]) / 10, sum(want[10:20]) / 10, sum(want[20:]) / 5],
                                                        rel=1e-6)


def test_whole_steps_are_timed_by_default_and_phases_on_request():
    """Default: whole-step times only (phase statistics empty); phase_timing=True splits every step."""
    cheap = make_trainer("trainer.steps=30", "trainer.diagnostics_points=2").fit().metrics["speed"]
    assert cheap["timing"] == "steps" and cheap["steps_timed"] == 25 and cheap["step_ms"]["n"] == 25
    assert cheap["forward_ms"]["n"] == 0 and cheap["forward_ms"]["median"] is None
    assert 0 < cheap["first_step_s"] and cheap["train_time_s_at_eval"][-1] > 0
    split = make_trainer("trainer.steps=30", phase_timing=True).fit().metrics["speed"]
    assert split["timing"] == "phases" and split["steps_timed"] == 25
    assert all(split[f"{p}_ms"]["n"] == 25 and split[f"{p}_ms"]["median"] > 0 for p in ("forward", "backward", "optimizer"))
    with pytest.raises(ParameterTypeError, match="phase_timing must be true or false, got 'yes'"):
        make_trainer(phase_timing="yes")


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


def test_phase_timing_from_the_config_is_recorded_and_not_part_of_the_run_key(tmp_path):
    from harness.store.keys import run_key

    record = execute(tiny_config("trainer.steps=12", "trainer.diagnostics_points=0", "phase_timing=true"), tmp_path)
    assert record["metrics"]["speed"]["timing"] == "phases" and record["metrics"]["speed"]["forward_ms"]["n"] == 7
    assert run_key(tiny_config("phase_timing=true")) == run_key(tiny_config())

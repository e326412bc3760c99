"""One run end to end through `execute`: records, determinism, divergence, failures, errors."""
import sys

import pytest

from harness.store.record import load_record
from harness.errors import ConfigError
from harness.sweep.run import execute
from support.configs import tiny_config


def strip_timings(record):
    """Everything but wall-clock measurements and identifiers."""
    drop_metrics = {"speed", "memory"}
    return {
        "metrics": {k: v for k, v in record["metrics"].items() if k not in drop_metrics},
        "curves": record["curves"],
        "diagnostics": record["diagnostics"],
        "pair": record["pair"],
    }


def test_run_writes_a_complete_valid_record(tmp_path):
    record = execute(tiny_config("forward=step", "backward=rectangular", "seed=1"), tmp_path)
    on_disk = load_record(tmp_path)
    assert on_disk["status"] == record["status"] == "ok"
    m = on_disk["metrics"]
    assert m["steps_done"] == 60 and m["params"] == 15210
    assert on_disk["curves"]["step"] == [20, 40, 60]
    assert 0.0 <= m["final_test_acc"] <= 1.0 and m["best_test_acc"] >= m["final_test_acc"]
    assert m["speed"]["step_ms"]["median"] > 0 and m["speed"]["steps_timed"] == 55
    assert m["memory"]["saved_bytes_per_step"]["activations"] == 2 * 100 * 100 // 8  # 1 bit per unit
    assert m["memory"]["peak"]["method"]
    assert on_disk["pair"] == {"forward": "step", "forward_params": {}, "backward": "rectangular",
                               "backward_params": {"a": -0.5, "b": 0.5}, "saves": "bits", "bits": 1,
                               "stochastic": False, "label": "step/rectangular(a=-0.5, b=0.5)", "flat": True,
                               "used": ["step/rectangular(a=-0.5, b=0.5)"]}
    env = on_disk["environment"]
    assert env["torch_threads"] == 1 and env["torch"] and env["cpu_model"] and "git_commit" in env
    # Step forward: the exact gradient below the last activation is zero, and fidelity says so
    # instead of dividing by zero; the head's gradient does not pass through a pair.
    layers = on_disk["diagnostics"]["fidelity"][0]["layers"]
    assert layers["layers.0.weight"]["cosine"] is None and "zero" in layers["layers.0.weight"]["note"]
    assert layers["head.weight"]["cosine"] == pytest.approx(1.0)


def test_same_seed_gives_identical_records_apart_from_timings(tmp_path):
    cfg = tiny_config("backward=full_jam", "seed=3")
    a = execute(cfg, tmp_path / "a")
    b = execute(cfg, tmp_path / "b")
    c = execute(tiny_config("backward=full_jam", "seed=4"), tmp_path / "c")
    assert strip_timings(a) == strip_timings(b)
    assert a["curves"]["train_loss"] != c["curves"]["train_loss"]


def test_huge_learning_rate_is_recorded_as_diverged_not_raised(tmp_path):
    record = execute(tiny_config("optimizer=sgd", "optimizer.lr=1e12", "backward=constant"), tmp_path)
    assert record["status"] == "diverged"
    assert load_record(tmp_path)["metrics"]["diverged_by_step"] <= 60


def test_a_crash_is_recorded_as_failed_with_the_traceback(tmp_path, monkeypatch):
    import harness.train.trainer as trainer

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash in the loop")

    monkeypatch.setattr(trainer, "loss_fn", boom)
    record = execute(tiny_config(), tmp_path)
    assert record["status"] == "failed"
    on_disk = load_record(tmp_path)
    assert on_disk["error"]["type"] == "RuntimeError" and "simulated crash" in on_disk["error"]["message"]
    assert "Traceback" in on_disk["error"]["traceback"] and on_disk["error"]["stage"] == "training"


def test_model_that_does_not_fit_the_data_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="cnn1d"):
        execute(tiny_config("model=cnn1d", "dataset=spirals"), tmp_path, raise_config_errors=True)
    record = load_record(tmp_path)
    assert record["status"] == "failed" and record["error"]["stage"] == "setup"
    assert record["metrics"] == {}


def test_bad_pair_parameter_fails_before_training_with_a_clear_message(tmp_path):
    with pytest.raises(ConfigError, match="bits=12 is out of range"):
        execute(tiny_config("backward=quantized", "backward.bits=12"), tmp_path, raise_config_errors=True)


def test_offline_dataset_fails_with_the_folder_and_files(tmp_path):
    cfg = tiny_config("dataset=cifar10", "model=vgg", "dataset.download=false")
    cfg["paths"]["data"] = str(tmp_path / "data")
    record = execute(cfg, tmp_path / "run")  # sweep mode: recorded, not raised
    assert record["status"] == "failed"
    assert "cifar-10-batches-py" in record["error"]["message"] and str(tmp_path / "data") in record["error"]["message"]


def test_epochs_mode_and_time_to_target(tmp_path):
    record = execute(tiny_config("trainer.steps=null", "trainer.epochs=2", "trainer.batch_size=400",
                                 "trainer.eval_every=5", "trainer.target_acc=0.2"), tmp_path)
    assert record["metrics"]["steps_done"] == 20  # 4000 // 400 * 2
    ttt = record["metrics"]["time_to_target"]
    accs = record["curves"]["test_acc"]
    first = next(s for s, a in zip(record["curves"]["step"], accs) if a >= 0.2)
    assert ttt == {"target": 0.2, "step": first, "resolution_steps": 5}


def test_a_failing_logger_never_costs_the_record(tmp_path):
    class BrokenLogger:
        def start(self, cfg, pair):
            pass

        def log(self, row):
            pass

        def finish(self, record):
            raise RuntimeError("wandb is down")

    record = execute(tiny_config(), tmp_path, logger=BrokenLogger())
    assert record["status"] == "ok" and load_record(tmp_path)["status"] == "ok"


def test_bad_logger_config_is_recorded_as_a_setup_failure(tmp_path):
    record = execute(tiny_config("logger=wandb", "logger.mode=bogus"), tmp_path)
    assert record["status"] == "failed" and record["error"]["stage"] == "setup"
    assert "online, offline or disabled" in load_record(tmp_path)["error"]["message"]


def test_diverged_run_counts_the_steps_it_completed(tmp_path):
    record = execute(tiny_config("optimizer=sgd", "optimizer.lr=1e12", "backward=constant"), tmp_path)
    m = record["metrics"]
    assert record["status"] == "diverged" and m["steps_done"] == m["diverged_by_step"]


def test_record_says_which_kernels_were_used(tmp_path):
    from harness.activations import kernels

    env = execute(tiny_config(), tmp_path)["environment"]
    assert env["activation_kernels"]["loaded"] == (kernels.load() is not None)
    assert env["fused_smooth_backward"] in (True, False)
    if sys.platform.startswith("linux"):  # glibc: freed tensor memory is kept (harness/allocator.py)
        assert env["malloc"]["tuned"] is True and env["malloc"]["mmap_threshold"] == 32 << 20


def test_unknown_malloc_setting_fails_before_training(tmp_path):
    cfg = tiny_config()
    cfg["malloc"] = "jemalloc"
    with pytest.raises(ConfigError, match="malloc must be 'keep_freed' or 'system', got 'jemalloc'"):
        execute(cfg, tmp_path, raise_config_errors=True)


def test_validation_split_is_evaluated_alongside_test(tmp_path):
    record = execute(tiny_config("dataset.val_fraction=0.1"), tmp_path)
    c = record["curves"]
    assert len(c["val_acc"]) == len(c["val_loss"]) == len(c["step"]) == 3
    assert record["metrics"]["final_val_acc"] == c["val_acc"][-1]
    assert (record["data"]["num_train"], record["data"]["num_val"]) == (3600, 400)


def test_system_malloc_after_keep_freed_in_one_process_is_refused(tmp_path):
    from harness import allocator

    if not allocator.keep_freed_memory()["tuned"]:
        pytest.skip("no glibc mallopt here")
    cfg = tiny_config()
    cfg["malloc"] = "system"
    with pytest.raises(ConfigError, match="malloc=system was asked for, but an earlier run in this process"):
        execute(cfg, tmp_path, raise_config_errors=True)


@pytest.mark.parametrize("seed,match", [
    (1.5, r"seed must be an integer in \[0, 2\^63\), got 1.5 \(float\)"),
    ("abc", r"seed must be an integer in \[0, 2\^63\), got 'abc' \(str\)"),
    (2**64, r"seed must be an integer in \[0, 2\^63\), got 18446744073709551616"),
    (-1, r"seed must be an integer in \[0, 2\^63\), got -1"),
])
def test_a_seed_that_is_not_an_integer_is_an_error_before_training(tmp_path, seed, match):
    with pytest.raises(ConfigError, match=match):
        execute({**tiny_config(), "seed": seed}, tmp_path, raise_config_errors=True)
    assert load_record(tmp_path)["error"]["stage"] == "setup"


def test_a_batch_larger_than_the_data_is_an_error_with_advice_that_can_be_followed(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.batch_size=5000 is larger than the 4000 training samples .* trainer.batch_size<=4000"):
        execute(tiny_config("trainer.batch_size=5000"), tmp_path, raise_config_errors=True)


def test_an_exploding_loss_is_diverged_not_ok(tmp_path):
    record = execute(tiny_config("optimizer.lr=1e6"), tmp_path)
    assert record["status"] == "diverged"
    div = record["metrics"]["divergence"]
    assert div["factor"] == 1e4 and (div["mean_loss"] is None or div["mean_loss"] > 1e4 * div["first_loss"])


def test_more_threads_than_cores_warns_and_marks_the_timing(tmp_path, caplog):
    import os
    many = len(os.sched_getaffinity(0)) + 1
    with caplog.at_level("WARNING", logger="harness"):
        record = execute({**tiny_config("trainer.steps=25", "trainer.eval_every=25"), "threads": many}, tmp_path)
    assert "oversubscribed" in caplog.text
    assert record["environment"]["threads"]["oversubscribed"] and record["metrics"]["speed"]["oversubscribed"]
    assert record["environment"]["threads"]["chosen_by"] == "user"


def test_a_store_run_is_done_once_then_read_from_the_cache(tmp_path):
    from harness.store.layout import record_path
    cfg = tiny_config("backward=rectangular", "trainer.steps=25", "trainer.eval_every=25")
    first = execute(cfg, store=tmp_path)
    key = first["identity"]["run_key"]
    assert record_path(tmp_path, key).is_file() and "cached" not in first
    second = execute(cfg, store=tmp_path)
    assert second["cached"] and second["run_id"] == first["run_id"]
    again = execute(cfg, store=tmp_path, rerun="all")
    assert "cached" not in again and again["run_id"] != first["run_id"]
    assert load_record(record_path(tmp_path, key))["run_id"] == again["run_id"]  # one record per key


def test_a_failed_store_run_runs_again(tmp_path, monkeypatch):
    import harness.train.trainer as trainer
    cfg = tiny_config("trainer.steps=25", "trainer.eval_every=25")
    real = trainer.loss_fn

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")
    monkeypatch.setattr(trainer, "loss_fn", boom)
    assert execute(cfg, store=tmp_path)["status"] == "failed"
    monkeypatch.setattr(trainer, "loss_fn", real)
    rerun = execute(cfg, store=tmp_path)
    assert rerun["status"] == "ok" and "cached" not in rerun


def test_a_model_that_ignores_the_forward_records_what_it_really_uses(tmp_path):
    record = execute(tiny_config("model=gru", "backward=rectangular", "trainer.steps=10", "trainer.eval_every=10"), tmp_path)
    pair = record["pair"]
    assert pair["used"] == ["sigmoid/rectangular(a=-0.5, b=0.5)", "tanh/rectangular(a=-0.5, b=0.5)"]
    assert pair["label"] == "sigmoid/rectangular(a=-0.5, b=0.5) + tanh/rectangular(a=-0.5, b=0.5)"


def test_a_model_without_activations_says_so(tmp_path):
    record = execute(tiny_config("model=logistic", "trainer.steps=10", "trainer.eval_every=10"), tmp_path)
    assert record["pair"]["used"] == [] and record["pair"]["label"] == "no activation"

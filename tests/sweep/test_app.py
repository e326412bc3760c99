"""The Hydra app: config groups, generated options, CLI behaviour and sweeps."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import MissingConfigException

from harness.activations import FORWARDS, RULES
from harness.store.record import find_records, load_record
from support.configs import CONF, compose_config, group_option

REPO = Path(CONF).parents[1]


def harness_run(*args, cwd, timeout=240):
    env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "harness.sweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_config_has_every_group_with_the_documented_defaults():
    cfg = compose_config()
    for group in ("forward", "backward", "dataset", "model", "optimizer", "scheduler", "trainer", "logger"):
        assert group in cfg, group
    assert (cfg["forward"]["name"], cfg["backward"]["name"], cfg["dataset"]["name"], cfg["model"]["name"],
            cfg["optimizer"]["name"]) == ("relu", "exact", "mnist1d", "mlp", "adam")


@pytest.mark.parametrize("forward", FORWARDS.names())
def test_every_registered_forward_is_an_option(forward):
    assert group_option("forward", forward) == {"name": forward, **{k: p.default for k, p in FORWARDS.get(forward).params.items()}}


@pytest.mark.parametrize("rule", RULES.names())
def test_every_registered_rule_is_an_option_with_its_defaults(rule):
    cfg = group_option("backward", rule)
    assert cfg == {"name": rule, **{k: p.default for k, p in RULES.get(rule).params.items()}}


@pytest.mark.parametrize("group, name", [("forward", "gelu"), ("forward", "swish"), ("backward", "rectangular"),
                                         ("backward", "quantized"), ("backward", "fewbit3")])
def test_an_option_composes_into_the_run_config_as_hydra_looks_it_up(group, name):
    # The per-entry tests above use Hydra's lookup; composing the whole run config adds nothing to a group.
    assert compose_config(f"{group}={name}")[group] == group_option(group, name)


def test_looking_up_an_unknown_option_fails():
    with pytest.raises(MissingConfigException, match="rectangulr"):
        group_option("backward", "rectangulr")


@pytest.mark.parametrize("group", ["dataset", "model", "optimizer", "scheduler", "trainer", "logger", "backward"])
def test_every_config_file_composes(group):
    for path in sorted((Path(CONF) / group).glob("*.yaml")):
        cfg = compose_config(f"{group}={path.stem}")
        assert cfg[group], path


def test_presets_build_valid_pairs():
    from harness.activations import make_pair

    for path in sorted((Path(CONF) / "backward").glob("*.yaml")):
        b = compose_config(f"backward={path.stem}")["backward"]
        make_pair("relu", b.pop("name"), backward_params=b)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(MissingConfigException) as err:
        compose_config("backward=rectangulr")
    message = str(err.value)
    assert "rectangulr" in message and "rectangular" in message and "b_silu" in message


@pytest.mark.slow  # subprocess or large model: runs with make test-slow (CI)
def test_cli_single_run_writes_a_record(tmp_path):
    out = tmp_path / "run"
    proc = harness_run("forward=step", "backward=rectangular", "dataset=mnist1d", "model=mlp", "optimizer=adam", "seed=1",
                       "trainer=quick", "trainer.steps=40", "trainer.eval_every=20", f"hydra.run.dir={out}", cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    record = load_record(out)
    assert record["status"] == "ok" and record["config"]["seed"] == 1 and record["pair"]["backward"] == "rectangular"
    assert "[ok] step/rectangular" in proc.stdout + proc.stderr


@pytest.mark.slow  # subprocess or large model: runs with make test-slow (CI)
def test_cli_config_error_exits_non_zero_with_a_clear_message(tmp_path):
    proc = harness_run("model=cnn1d", "dataset=digits", f"hydra.run.dir={tmp_path}", cwd=REPO)
    assert proc.returncode != 0
    assert "ModelDataMismatch" in proc.stderr and "cnn1d" in proc.stderr and "Traceback" not in proc.stderr
    assert load_record(tmp_path)["status"] == "failed"


def test_multirun_checks_every_run_first_keeps_going_and_exits_nonzero(tmp_path):
    sweep = tmp_path / "sweep"
    proc = harness_run("-m", "backward=quantized", "backward.bits=12,2", "trainer=quick", "trainer.steps=30",
                       "trainer.eval_every=10", f"hydra.sweep.dir={sweep}", cwd=REPO)
    assert proc.returncode == 1, proc.stderr  # a failed run: the sweep says so with its exit code
    # The invalid combination is named before the first run starts, with its override string.
    listed = proc.stderr.index("1 of 2 runs cannot run")
    assert listed < proc.stderr.index("[sweep 1/2 done") and "backward.bits=12" in proc.stderr[listed:listed + 300]
    assert "sweep done: 1 ok, 1 failed" in proc.stderr and "FAILED backward=quantized backward.bits=12" in proc.stderr
    records = sorted((load_record(p) for p in find_records(sweep)), key=lambda r: r["config"]["backward"]["bits"])
    assert [(r["config"]["backward"]["bits"], r["status"]) for r in records] == [(2, "ok"), (12, "failed")]
    assert "bits=12 is out of range" in records[1]["error"]["message"] and records[1]["error"]["stage"] == "preflight"
    assert records[0]["metrics"]["steps_done"] == 30  # the valid run still ran


@pytest.mark.slow
def test_strict_sweep_starts_nothing_when_a_combination_is_invalid(tmp_path):
    sweep = tmp_path / "sweep"
    proc = harness_run("-m", "backward=quantized", "backward.bits=12,2", "trainer=quick", "trainer.steps=30",
                       "+strict=true", f"hydra.sweep.dir={sweep}", cwd=REPO)
    assert proc.returncode == 2 and "+strict=true: nothing was started" in proc.stderr
    assert find_records(sweep) == []


@pytest.mark.parametrize("preset,target", [
    ("local", "BasicLauncher"), ("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher"), ("submitit_local_preset", "LocalLauncher"),
])
def test_launcher_presets_compose_to_the_right_launcher(preset, target):
    from hydra import compose, initialize_config_dir

    from harness.sweep.configs import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra/launcher={preset}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    if preset == "slurm":
        assert cfg.hydra.launcher.timeout_min == 120 and cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.parametrize("overrides,target", [
    ([], "hydra_plugins.harness_sweeper.harness_sweeper.HarnessSweeper"),
    (["+experiment=pareto_mnist1d"], "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"),
])
def test_grid_sweeps_use_the_store_sweeper_and_experiments_can_switch(overrides, target):
    from hydra import compose, initialize_config_dir

    from harness.sweep.configs import register_configs

    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == target
    if overrides:
        assert cfg.hydra.sweeper.sampler._target_ == "optuna.samplers.NSGAIISampler"
        assert list(cfg.hydra.sweeper.direction) == ["maximize", "minimize"] and list(cfg.objective) == ["final_test_acc", "saved_bytes"]


def test_the_sweep_composer_gives_what_hydra_composes_for_every_combination():
    """The sweeper asks Hydra once per shape of overrides and sets values itself: same configs."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from harness.sweep.configs import register_configs
    from harness.sweep.sweeper import JobComposer

    register_configs()
    jobs = [[f"backward={b}", f"seed={s}", "trainer.steps=30", f"optimizer.lr={lr}", "trainer=quick"]
            for b in ("exact", "rectangular") for s in (0, 7) for lr in ("1e-3", "0.5")]
    jobs.append(["backward=quantized", "backward.bits=3", "seed=1", "objective=[final_test_acc,step_ms]", "+experiment=quick"])
    jobs.append(["backward=quantized", "backward.bits=2", "seed=2", "objective=[final_test_acc,step_ms]", "+experiment=quick"])
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        loader = hydra.config_loader
        master = loader.load_configuration("config", [], run_mode=__import__("hydra").types.RunMode.MULTIRUN)
        composer = JobComposer(loader, master)
        fast = [composer(job) for job in jobs]
        assert composer.hydra_compositions == 3  # 2 group choices x one key set, plus the quantized job
        for job, got in zip(jobs, fast):
            assert got == composer._compose(job), job
    assert fast[1]["seed"] == 0 and fast[3]["seed"] == 7 and fast[1]["optimizer"]["lr"] == 0.5

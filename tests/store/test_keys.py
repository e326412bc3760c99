"""The run key: one key per run, whatever the spelling of its config; none for what does not matter."""
import pytest

from harness.store.keys import code_hash, config_id, run_key, run_label, semantic_config
from harness.sweep.resolve import complete_config
from support.configs import tiny_config


@pytest.fixture(scope="module")
def cfg():
    return tiny_config("backward=rectangular", "seed=3")


def test_key_ignores_key_order_paths_logger_launcher_and_speed_knobs(cfg):
    reordered = dict(reversed(list(cfg.items())))
    reordered["backward"] = dict(reversed(list(cfg["backward"].items())))
    assert run_key(reordered) == run_key(cfg)
    other = {**cfg, "paths": {"data": "/elsewhere"}, "logger": {"name": "wandb"}, "hydra": {"x": 1},
             "threads": 2, "malloc": "system", "store": {"dir": "/s"}, "progress": False}
    assert run_key(other) == run_key(cfg)


@pytest.mark.parametrize("change", [
    lambda c: c["backward"].update(a=-0.25),
    lambda c: c["forward"].update(name="step"),
    lambda c: c["optimizer"].update(lr=0.02),
    lambda c: c["trainer"].update(steps=61),
    lambda c: c["model"].update(width=99),
    lambda c: c["dataset"].update(num_train=3000),
    lambda c: c.update(seed=4),
    lambda c: c.update(device="cuda"),
    lambda c: c.update(dtype="float64"),
])
def test_every_semantic_change_changes_the_key(cfg, change):
    import copy
    changed = copy.deepcopy(cfg)
    change(changed)
    assert run_key(changed) != run_key(cfg)


def test_integral_floats_and_ints_are_one_run(cfg):
    import copy
    a, b = copy.deepcopy(cfg), copy.deepcopy(cfg)
    a["optimizer"]["lr"], b["optimizer"]["lr"] = 1, 1.0
    assert run_key(a) == run_key(b)


def test_a_parameter_left_out_equals_it_given_at_its_default(cfg):
    import copy
    partial = copy.deepcopy(cfg)
    del partial["backward"]["a"], partial["trainer"]["eval_batch_size"], partial["model"]["width"]
    assert run_key(complete_config(partial)) == run_key(complete_config(cfg)) == run_key(cfg)


def test_auto_device_means_what_it_resolves_to_here(cfg):
    import torch
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert run_key({**cfg, "device": "auto"}) == run_key({**cfg, "device": here})
    assert semantic_config({**cfg, "device": "cuda:1"})["device"] == "cuda"


def test_config_id_groups_seeds_and_label_is_readable(cfg):
    assert config_id({**cfg, "seed": 9}) == config_id(cfg) and run_key({**cfg, "seed": 9}) != run_key(cfg)
    assert run_label(cfg) == "relu-rectangular_mnist1d_mlp_s3"


def test_code_hash_follows_the_result_code(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "loop.py").write_text("x = 1\n")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "page.py").write_text("y = 1\n")
    before = code_hash(str(tmp_path))
    (tmp_path / "report" / "page.py").write_text("y = 2\n")  # the report does not decide results
    code_hash.cache_clear()
    assert code_hash(str(tmp_path)) == before
    (tmp_path / "train" / "loop.py").write_text("x = 2\n")
    code_hash.cache_clear()
    assert code_hash(str(tmp_path)) != before
    code_hash.cache_clear()


def test_an_alias_and_its_target_are_one_run(cfg):
    import copy
    tied, exact = copy.deepcopy(cfg), copy.deepcopy(cfg)
    tied["backward"], exact["backward"] = {"name": "tied"}, {"name": "exact"}
    tied["forward"], exact["forward"] = {"name": "swish"}, {"name": "silu"}
    assert run_key(complete_config(tied)) == run_key(complete_config(exact))
    assert complete_config(tied)["backward"]["name"] == "exact"

"""Compose real run configs from conf/ (as harness-run would) for tests."""
import copy
import functools
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from harness.sweep.configs import register_configs

CONF = str(Path(__file__).resolve().parents[2] / "harness" / "conf")


def compose_config(*overrides: str) -> dict:
    """The resolved config dict for `overrides`, without the hydra section.

    A Hydra compose costs 0.2-0.3 s and many tests compose the same overrides (the tiny run, every
    backward preset twice), so each distinct override list is composed once per session; callers
    get their own deep copy and may change it.
    """
    return copy.deepcopy(_composed(tuple(overrides)))


@functools.lru_cache(maxsize=None)
def _composed(overrides: tuple[str, ...]) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def group_option(group: str, name: str) -> dict:
    """The config Hydra picks for the override `group=name`, resolved, without composing a run config.

    It is Hydra's own lookup (the config repository compose uses: the first source on the search
    path that has `group/name`, so a conf/ file shadows a registry entry of the same name), at a
    twentieth of a compose's cost: the check for every registered forward and rule. That an option
    then composes into the whole run config is checked with compose_config once per group.
    """
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        found = GlobalHydra.instance().config_loader().repository.load_config(f"{group}/{name}")
    if found is None:
        raise MissingConfigException(f"no option {name!r} in config group {group!r}", missing_cfg_file=f"{group}/{name}")
    return OmegaConf.to_container(found.config, resolve=True)


def tiny_config(*overrides: str) -> dict:
    """A seconds-long MNIST-1D run: 60 steps, eval every 20."""
    return compose_config("trainer=quick", "trainer.steps=60", "trainer.eval_every=20", "trainer.timing_warmup=5", *overrides)

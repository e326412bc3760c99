"""Compose real run configs from conf/ (as harness-run would) for tests."""
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from harness.sweep.configs import register_configs

CONF = str(Path(__file__).resolve().parents[2] / "harness" / "conf")


def compose_config(*overrides: str) -> dict:
    """The resolved config dict for `overrides`, without the hydra section."""
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg, resolve=True)


def tiny_config(*overrides: str) -> dict:
    """A seconds-long MNIST-1D run: 60 steps, eval every 20."""
    return compose_config("trainer=quick", "trainer.steps=60", "trainer.eval_every=20", "trainer.timing_warmup=5", *overrides)

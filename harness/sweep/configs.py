"""Hydra config options generated from the registries, so a newly registered forward or rule
is a sweep option with no config file to write.

`forward=<name>` and `backward=<name>` select a registry entry with its default parameters;
override them as usual (`backward=rectangular backward.a=-1`). Files in conf/backward/ add
named presets on top (a preset with a registry name would shadow the generated option).
Plug-ins: set HARNESS_PLUGINS=pkg.module[,other.module] to import modules that register extra
forwards or rules before the configs are generated.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, List

from hydra.core.config_store import ConfigStore

from harness.activations import FORWARDS, RULES

PLUGINS_ENV = "HARNESS_PLUGINS"


def import_plugins() -> list[str]:
    """Import the modules named in $HARNESS_PLUGINS (comma-separated); return their names."""
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{PLUGINS_ENV} names module {name!r}, which cannot be imported: {exc}") from exc
    return names


def registry_nodes() -> dict[str, dict[str, dict]]:
    """{group: {option: node}} for every registered forward and backward rule."""
    return {
        "forward": {n: {"name": n, **{k: p.default for k, p in FORWARDS.get(n).params.items()}} for n in FORWARDS.names()},
        "backward": {n: {"name": n, **{k: p.default for k, p in RULES.get(n).params.items()}} for n in RULES.names()},
    }


def register_configs() -> None:
    """Store one config per registry entry in Hydra's ConfigStore (idempotent)."""
    import_plugins()
    store = ConfigStore.instance()
    for group, options in registry_nodes().items():
        for name, node in options.items():
            store.store(group=group, name=name, node=node)
    register_search_sweeper()


def register_search_sweeper() -> None:
    """`hydra/sweeper=optuna_nsga2`: Optuna's sweeper with the NSGA-II sampler as its default.

    An experiment cannot say `override /hydra/sweeper/sampler: nsgaii` after switching the sweeper
    (Hydra collects overrides before the new sweeper's own defaults exist), so the pairing is one
    option instead.
    """
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    except ImportError:  # the Optuna sweeper is not installed: grid sweeps still work
        return

    @dataclass
    class OptunaNSGA2Conf(OptunaSweeperConf):
        defaults: List[Any] = field(default_factory=lambda: [{"sampler": "nsgaii"}])

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna_nsga2", node=OptunaNSGA2Conf, provider="harness")

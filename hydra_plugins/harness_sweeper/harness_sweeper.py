"""`hydra/sweeper=harness`: Hydra's grid sweeper plus the result store (harness/sweep/sweeper.py).

Hydra only instantiates plugin classes defined under `hydra_plugins`, so the class lives here
and the behaviour in the harness package.
"""
from dataclasses import dataclass
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore

from harness.sweep.sweeper import StoreSweeper


@dataclass
class HarnessSweeperConf:
    _target_: str = "hydra_plugins.harness_sweeper.harness_sweeper.HarnessSweeper"
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once (None: all)
    params: Optional[Dict[str, str]] = None  # sweep axes, as for Hydra's basic sweeper


ConfigStore.instance().store(group="hydra/sweeper", name="harness", node=HarnessSweeperConf, provider="harness")
# Also under Hydra's own name `basic`, the default sweeper, so every grid sweep (-m) gets pre-flight,
# resume and a summary without an override in config.yaml: such an override would win over an
# experiment's own `override /hydra/sweeper: ...` (Hydra keeps the first override of a group).
# Hydra's plugin scan imports its core plugins before hydra_plugins, so this entry is the one kept.
ConfigStore.instance().store(group="hydra/sweeper", name="basic", node=HarnessSweeperConf, provider="harness")


class HarnessSweeper(StoreSweeper):
    """Grid sweep that checks every run before the first starts, skips cached runs, and ends
    with a summary and a non-zero exit code when any run failed."""

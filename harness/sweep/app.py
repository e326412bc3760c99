"""`harness-run`: the Hydra app. One run per config; `-m` sweeps every combination.

    harness-run forward=step backward=rectangular dataset=mnist1d model=mlp optimizer=adam seed=1
    harness-run -m backward=exact,rectangular,b_silu seed=0,1,2 hydra/launcher=parallel
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from harness.errors import ConfigError

from .configs import register_configs
from .progress import sweep_line
from .run import Terminated, execute
from .search import objective_values
from .sweeper import PLAN_FOLDER, store_dir

log = logging.getLogger("harness")
# The configs ship inside the package (harness/conf/), so an installed wheel finds them from any
# working directory. HARNESS_CONF replaces the folder; to add your own groups next to ours, use
# Hydra's search path: `harness-run 'hydra.searchpath=[file:///path/to/my_conf]'`.
CONF_DIR = os.environ.get("HARNESS_CONF", str(Path(__file__).resolve().parents[1] / "conf"))
register_configs()


def summary_line(record: dict) -> str:
    """One line per run for the console."""
    m, pair = record.get("metrics", {}), record.get("pair", {})
    acc = m.get("final_test_acc")
    step_ms = (m.get("speed") or {}).get("step_ms", {}) or {}
    parts = [f"[{record['status']}]", pair.get("label", "?"), f"seed={record['config'].get('seed')}"]
    if acc is not None:
        parts.append(f"test_acc={acc:.4f}")
    if step_ms.get("median") is not None:
        parts.append(f"step={step_ms['median']:.3f}ms")
    if record.get("error"):
        parts.append(f"error={record['error']['type']}: {record['error']['message']}")
    return " ".join(parts)


NOT_RUN_CONFIG = ("store", "rerun", "strict", "progress", "objective")  # how to run, not what (see harness/store/keys.py)


def _progress(cfg: dict, label: str):
    """A RunProgress for this run, or None when `progress=false`."""
    from .progress import RunProgress

    if cfg.get("progress", True) in (False, "false", "off", "none"):
        return None
    trainer = cfg.get("trainer") or {}
    steps = trainer.get("steps") or 0
    return RunProgress(steps, label=label) if steps else None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def task(cfg: DictConfig) -> float | list[float] | None:
    """Hydra task: resolve the config, run it (or find it in the store), report one line."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    container = OmegaConf.to_container(cfg, resolve=True)
    rerun = str(container.get("rerun", "none"))
    run_cfg = {k: v for k, v in container.items() if k not in NOT_RUN_CONFIG}
    out_dir = hc.runtime.output_dir
    if multirun:
        store = store_dir(container, hc.sweep.dir)
        line = sweep_line(Path(hc.sweep.dir) / PLAN_FOLDER, store, list(hc.overrides.task))
        if line:
            print(line, file=sys.stderr, flush=True)
    else:
        chosen = (container.get("store") or {}).get("dir")
        store = Path(chosen) if chosen else None
    label = " ".join(hc.overrides.task) or "defaults"
    logger_cfg = run_cfg.get("logger")
    if multirun and isinstance(logger_cfg, dict) and logger_cfg.get("name") == "wandb" and not logger_cfg.get("group"):
        experiment = hc.runtime.choices.get("experiment") or "sweep"
        run_cfg["logger"] = {**logger_cfg, "group": f"{experiment}-{'_'.join(Path(hc.sweep.dir).parts[-2:])}"}
    try:
        record = execute(run_cfg, out_dir, store=store, rerun=rerun, raise_config_errors=not multirun,
                         progress=_progress(container, label if multirun else ""))
    except ConfigError as exc:  # a single run's bad config: recorded, then said plainly
        where = store or out_dir
        raise SystemExit(f"harness-run: {type(exc).__name__}: {exc}\n(record written under {where})") from None
    if record.get("cached"):
        log.info("cached (skipped): %s; record %s", summary_line(record), record.get("record_path"))
    else:
        log.info(summary_line(record))
        log.info("record: %s", Path(store, record["identity"]["run_key"][:2], record["identity"]["run_key"]) if store else f"{out_dir}/record.json")
    return objective_values(record, container.get("objective"))


def main() -> None:
    """Console entry point: Ctrl-C exits 130 and SIGTERM 143, after the run recorded itself."""
    try:
        task()
    except Terminated:
        print("harness-run: terminated (SIGTERM); the run was recorded as 'interrupted'", file=sys.stderr)
        sys.exit(143)
    except KeyboardInterrupt:
        print("harness-run: interrupted; the run was recorded as 'interrupted'", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    sys.exit(main())

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

from .configs import register_configs
from .run import execute

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


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def task(cfg: DictConfig) -> float | None:
    """Hydra task: resolve the config, run it, write the record into the job's output folder."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    container = OmegaConf.to_container(cfg, resolve=True)
    out_dir = hc.runtime.output_dir
    try:
        record = execute(container, out_dir, raise_config_errors=not multirun)
    except (ValueError, RuntimeError, TypeError, OverflowError) as exc:  # config errors of a single run (recorded)
        raise SystemExit(f"harness-run: {type(exc).__name__}: {exc}\n(record written to {out_dir}/record.json)") from None
    log.info(summary_line(record))
    log.info("record: %s/record.json", out_dir)
    return record["metrics"].get("final_test_acc")


def main() -> None:
    """Console entry point."""
    task()


if __name__ == "__main__":
    sys.exit(main())

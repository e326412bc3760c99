"""The grid sweep with a result store: check every run first, skip what is done, say how it went.

Hydra's basic sweeper launches every combination and reports failures only at the end (hydra
#2284); a rerun starts again from job 0 (hydra #1407). `StoreSweeper` (Hydra option
`hydra/sweeper=harness`, the default in conf/config.yaml) adds, around the same launcher call:

1. **Pre-flight**: every combination is composed, completed with its defaults and checked
   (`resolve.check_config`) before the first run starts. Problems are listed together with their
   override strings. The valid runs then go ahead and each invalid one is recorded as `failed`;
   with `+strict=true` nothing starts.
2. **Resume**: combinations whose record in the store is a result (ok, diverged) are not
   launched at all (`+rerun=stale` / `+rerun=all` to redo them); the task checks again under the
   run's lock, so two sweeps sharing a store never train one run twice.
3. **Summary**: counts by status from the store (never from Hydra's `on_multirun_end`, which Hydra
   1.3 skips when a job fails), the failing overrides with their errors, where the records are;
   exit code 1 when any run failed or left no record.
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.plugins.sweeper import Sweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from harness.environment import usable_cpus
from harness.errors import ConfigError
from harness.store import layout
from harness.store.keys import run_key
from harness.store.record import RecordError, load_record

from .progress import write_plan
from .resolve import check_config, complete_config

PLAN_FOLDER = ".harness"


class JobComposer:
    """The run config of each combination, as the task will see it (without Hydra's own node).

    Hydra composes a config in about 0.2-0.7 s here (every generated forward/rule option is a
    config node), which would make checking a cached run cost more than 50 times its budget. A
    grid's combinations differ in a few group choices (`backward=rectangular`) and values
    (`seed=1`): the composer asks Hydra once per distinct set of group choices and value keys, and
    sets the values of the other combinations on a copy (`+group=option` counts as a group choice,
    `+key=value` as a value). Deletions (`~key`) and package overrides are composed by Hydra itself.
    """

    def __init__(self, config_loader: Any, master: Any):
        self.loader, self.master = config_loader, master
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.repo = config_loader.repository
        self._composed: dict[tuple, Any] = {}
        self.hydra_compositions = 0

    def _is_group(self, override: Any) -> bool:
        return self.repo.group_exists(override.key_or_group)

    def __call__(self, overrides: Sequence[str]) -> dict[str, Any]:
        parsed = self.parser.parse_overrides(list(overrides))
        if any(o.is_delete() or o.package is not None for o in parsed):
            return self._compose(overrides)
        groups = tuple(o.input_line for o in parsed if self._is_group(o))
        values = [o for o in parsed if not self._is_group(o) and not o.key_or_group.startswith("hydra.")]
        shape = (groups, tuple(o.key_or_group for o in values))
        if shape not in self._composed:  # Hydra itself, once per shape: it validates these keys
            self._composed[shape] = self._unresolved(overrides)
            return self._resolved(self._composed[shape])
        node = OmegaConf.create(self._composed[shape])
        for o in values:
            OmegaConf.update(node, o.key_or_group, o.value(), merge=False)
        return OmegaConf.to_container(node, resolve=True)

    def _unresolved(self, overrides: Sequence[str]) -> dict[str, Any]:
        self.hydra_compositions += 1
        cfg = self.loader.load_sweep_config(master_config=self.master, sweep_overrides=list(overrides))
        with_hydra = OmegaConf.to_container(cfg, resolve=False)
        with_hydra.pop("hydra", None)
        return with_hydra

    @staticmethod
    def _resolved(container: dict[str, Any]) -> dict[str, Any]:
        return OmegaConf.to_container(OmegaConf.create(container), resolve=True)

    def _compose(self, overrides: Sequence[str]) -> dict[str, Any]:
        return self._resolved(self._unresolved(overrides))


def store_dir(cfg: dict[str, Any], sweep_dir: str | Path) -> Path:
    """`store.dir` when set, else `<sweep dir>/records`."""
    chosen = (cfg.get("store") or {}).get("dir")
    return Path(chosen) if chosen else Path(sweep_dir) / "records"


def parallel_share(launcher_cfg: Any) -> tuple[int, int]:
    """(parallel jobs, torch threads per job for threads=auto) for the configured launcher."""
    cpus = usable_cpus()
    target = str(launcher_cfg.get("_target_", ""))
    if "joblib" in target.lower():
        n_jobs = int(launcher_cfg.get("n_jobs", 1) or 1)
        n_jobs = cpus if n_jobs < 1 else n_jobs
        return n_jobs, max(1, cpus // n_jobs)
    if "submitit" in target.lower():
        return 1, max(1, int(launcher_cfg.get("cpus_per_task", 1) or 1))
    return 1, 1


class StoreSweeper(Sweeper):
    """Hydra's grid sweep with pre-flight, resume from the store and a summary (module doc).

    Not a BasicSweeper subclass: Hydra re-executes its core plugin modules while scanning, so a
    subclass made before the scan would not match the BasicSweeper class it then calls. The grid
    itself is BasicSweeper's static `split_arguments`, unchanged.
    """

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        super().__init__()
        self.params = dict(params or {})
        self.max_batch_size = max_batch_size  # accepted for compatibility; the grid is launched at once
        self.hydra_context = self.config = self.launcher = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        params_conf = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        batches = BasicSweeper.split_arguments(parser.parse_overrides(params_conf), None)
        jobs = [list(job) for batch in batches for job in batch]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        tic = time.perf_counter()
        plan = self.plan(jobs)
        checked_ms = (time.perf_counter() - tic) * 1000
        store = plan["store"]
        if plan["invalid"]:
            print(f"harness: {len(plan['invalid'])} of {len(jobs)} runs cannot run (found before training):", file=sys.stderr)
            for overrides, message in plan["invalid"]:
                print(f"  {' '.join(overrides)}\n    {message}", file=sys.stderr)
            if plan["strict"]:
                print("harness: +strict=true: nothing was started.", file=sys.stderr)
                raise SystemExit(2)
            for (overrides, message), cfg in zip(plan["invalid"], plan["invalid_cfgs"]):
                from .run import record_invalid

                record_invalid(cfg, ConfigError(message), store)
        todo = plan["todo"]
        print(f"harness: sweep of {len(jobs)} runs: {len(plan['cached'])} cached, {len(todo)} to run, "
              f"{len(plan['invalid'])} invalid (checked in {checked_ms:.0f} ms, {checked_ms / max(len(jobs), 1):.1f} ms per run); "
              f"records in {store}", file=sys.stderr, flush=True)
        write_plan(sweep_dir / PLAN_FOLDER, {"total": len(jobs), "cached": len(plan["cached"]), "invalid": len(plan["invalid"]),
                                             "to_run": [key for key, _ in todo], "started": time.time(), "store": str(store)})
        returns = []
        if todo:
            n_jobs, threads = parallel_share(self.config.hydra.launcher)
            os.environ["HARNESS_PARALLEL_JOBS"], os.environ["HARNESS_AUTO_THREADS"] = str(n_jobs), str(threads)
            returns.append(self.launcher.launch([overrides for _, overrides in todo], initial_job_idx=0))
        code = self.summarize(jobs, plan, returns)
        if code:
            raise SystemExit(code)
        return returns

    def plan(self, jobs: list[list[str]]) -> dict[str, Any]:
        """Compose and check every job; split into invalid, cached and to-run."""
        compose = JobComposer(self.hydra_context.config_loader, self.config)
        plan: dict[str, Any] = {"invalid": [], "invalid_cfgs": [], "cached": [], "stale": 0, "todo": [], "keys": []}
        store, rerun, strict = None, "none", False
        for overrides in jobs:
            cfg = compose(overrides)
            if store is None:
                store = store_dir(cfg, self.config.hydra.sweep.dir)
                rerun, strict = str(cfg.get("rerun", "none")), bool(cfg.get("strict", False))
                layout.should_skip(None, rerun)  # a bad +rerun value stops the sweep at once
            cfg = complete_config(cfg)
            key = run_key(cfg)
            plan["keys"].append(key)
            try:
                check_config(cfg)
            except ConfigError as exc:
                plan["invalid"].append((overrides, str(exc)))
                plan["invalid_cfgs"].append(cfg)
                continue
            hit = layout.lookup(store, key)
            if hit is not None and hit.stale:
                plan["stale"] += 1
            if layout.should_skip(hit, rerun):
                plan["cached"].append(key)
            else:
                plan["todo"].append((key, overrides))
        plan.update(store=store or Path(self.config.hydra.sweep.dir) / "records", strict=strict)
        return plan

    def summarize(self, jobs: list[list[str]], plan: dict[str, Any], returns: list) -> int:
        """Print the sweep's outcome from the store; return the exit code (0: every run ok/diverged)."""
        store = plan["store"]
        counts: Counter[str] = Counter()
        failures = []
        cached = set(plan["cached"])
        for overrides, key in zip(jobs, plan["keys"]):
            path = layout.record_path(store, key)
            try:
                record = load_record(path)
            except RecordError:
                counts["missing"] += 1
                failures.append((overrides, "no record (the run was killed or its worker died)"))
                continue
            status = record["status"]
            counts["cached" if key in cached else status] += 1
            if status in ("failed", "interrupted"):
                err = record.get("error") or {}
                message = f"{err.get('type', status)}: {(err.get('message') or status).splitlines()[0][:300]}"
                failures.append((overrides, message))
        order = ("ok", "diverged", "cached", "failed", "interrupted", "missing")
        line = ", ".join(f"{counts[k]} {k}" for k in order if counts[k]) or "nothing"
        stale = f" ({plan['stale']} stale records: +rerun=stale runs them again)" if plan["stale"] else ""
        print(f"\nharness: sweep done: {line}{stale}; {len(jobs)} runs; records in {store}", file=sys.stderr)
        for overrides, message in failures:
            print(f"  FAILED {' '.join(overrides)}: {message}", file=sys.stderr)
        print(f"harness: status and Parquet: harness-store {store}; report: harness-report {store}", file=sys.stderr, flush=True)
        return 1 if failures else 0

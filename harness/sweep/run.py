"""One run: resolved config -> seeded data, model, optimizer -> Trainer -> record on disk.

Independent of Hydra (the app only hands over the composed config), so tests and scripts can
call `execute(cfg_dict, out_dir)` directly.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import signal
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from harness.activations import ActFactory, ActivationPair, kernels
from harness import allocator
from harness.allocator import keep_freed_memory
from harness.data import load_dataset
from harness.models import build_model, count_parameters
from harness.train.optimizers import build_optimizer
from harness.train.schedules import build_scheduler
from harness.train.trainer import Trainer, TrainerSettings, TrainingInterrupted

from harness.environment import environment, harness_version, usable_cpus
from harness.errors import ConfigError
from harness.store import layout
from harness.store.keys import code_hash, config_id, run_key, run_label
from harness.store.record import SCHEMA_VERSION, write_record

from .loggers import make_logger
from .resolve import check_config, check_seed, complete_config, group_params, resolve_threads

log = logging.getLogger("harness")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was requested but CUDA is not available; use device=cpu or device=auto.")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a generator for batch order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def pair_summary(factory: ActFactory, model: Any = None) -> dict[str, Any]:
    """The pair as recorded: names, parameters, storage kind, and what the model really uses.

    A model may ignore the configured forward in some or all of its slots (the GRU's gates are
    sigmoid and tanh with the configured rule): `used` lists every pair in the model, and the
    label says what ran when the configured forward is not among them.
    """
    spec = factory.spec
    used = sorted({m.spec.describe() for m in model.modules() if isinstance(m, ActivationPair)}) if model is not None else []
    label = spec.describe()
    if model is not None and not used:
        label = "no activation"  # e.g. logistic regression: the pair is configured but never used
    elif used and label not in used:
        label = " + ".join(used)
    return {
        "forward": spec.forward.name,
        "forward_params": dict(spec.forward.params),
        "backward": factory.backward,
        "backward_params": dict(factory.backward_params),
        "saves": spec.saves.value,
        "bits": spec.rule.bits,
        "stochastic": spec.rule.stochastic,
        "label": label,
        "used": used,
        "flat": spec.forward.flat,  # exact gradient zero almost everywhere (step, sign)
    }


def build_run(cfg: dict[str, Any]):
    """Validate and build everything a run needs, before any training (fail fast)."""
    seed = check_seed(cfg.get("seed", 0))
    device = resolve_device(str(cfg.get("device", "auto")))
    kernels.load()  # build/load the fused CPU kernels now, so the record says whether they are used
    malloc = cfg.get("malloc", "keep_freed")
    if malloc not in ("keep_freed", "system"):
        raise ConfigError(f"malloc must be 'keep_freed' or 'system', got {malloc!r}.")
    if malloc == "keep_freed":
        keep_freed_memory()  # no page faults on reused tensor memory (harness/allocator.py)
    elif allocator.status()["tuned"]:  # glibc cannot be put back: say so instead of mislabelling
        raise ConfigError("malloc=system was asked for, but an earlier run in this process already set "
                          "malloc=keep_freed, which cannot be undone; run it in a separate process "
                          "(e.g. hydra/launcher=parallel) or keep malloc the same across the sweep.")
    torch.set_num_threads(resolve_threads(cfg.get("threads", "auto")))
    generator = seed_everything(seed)
    data_cfg = dict(cfg["dataset"])
    data = load_dataset(data_cfg.pop("name"), root=cfg.get("paths", {}).get("data", "data"), device=device, seed=seed, **data_cfg)
    check_config(cfg, data=data)  # what the sweep's pre-flight checks, on the data as loaded
    factory = ActFactory(cfg["forward"]["name"], cfg["backward"]["name"], forward_params=group_params(cfg["forward"]),
                         backward_params=group_params(cfg["backward"]), seed=seed)
    model_cfg = dict(cfg["model"])
    model = build_model(model_cfg.pop("name"), input_shape=data.input_shape, num_classes=data.num_classes, act=factory, kind=data.kind, **model_cfg)
    model.to(device)
    opt_cfg = dict(cfg["optimizer"])
    optimizer = build_optimizer(opt_cfg.pop("name"), model.parameters(), **opt_cfg)
    settings = TrainerSettings(**cfg.get("trainer", {}))
    sched_cfg = dict(cfg.get("scheduler") or {"name": "constant"})
    # Same count the trainer uses: full batches per epoch (drop_last).
    total = settings.steps if settings.steps is not None else settings.epochs * (data.x_train.shape[0] // settings.batch_size)
    scheduler = build_scheduler(sched_cfg.pop("name"), optimizer, total_steps=max(total, 1), **sched_cfg)
    return dict(seed=seed, device=device, generator=generator, factory=factory, data=data, model=model,
                optimizer=optimizer, scheduler=scheduler, settings=settings)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM sends on preemption or time-out), handled like Ctrl-C: the run stops at
    the next step, records itself as 'interrupted', and the process exits non-zero."""


_signals_seen: list[str] = []


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` while the block runs (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _signals_seen.append("SIGTERM")  # the trainer turns interrupts into its own exception
        raise Terminated(f"signal {signum}")

    _signals_seen.clear()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def thread_plan(cfg: dict[str, Any]) -> dict[str, Any]:
    """The torch thread count a run gets, who chose it, and whether the machine is oversubscribed.

    With a parallel launcher of n jobs on C cores, `threads=auto` gives each run max(1, C // n)
    (the app sets HARNESS_AUTO_THREADS and HARNESS_PARALLEL_JOBS per job).
    """
    import os

    jobs = int(os.environ.get("HARNESS_PARALLEL_JOBS", "1"))
    threads = resolve_threads(cfg.get("threads", "auto"))
    cpus = usable_cpus()
    chosen_by = "user" if cfg.get("threads", "auto") not in (None, "auto") else ("launcher" if jobs > 1 else "auto")
    return {"threads": threads, "chosen_by": chosen_by, "parallel_jobs": jobs, "cpus": cpus,
            "oversubscribed": threads * jobs > cpus}


def identity(cfg: dict[str, Any]) -> dict[str, Any]:
    """What makes a record this run's (harness/store/keys.py)."""
    return {"run_key": run_key(cfg), "config_id": config_id(cfg), "code_hash": code_hash(), "harness_version": harness_version()}


def _train(cfg: dict[str, Any], record: dict[str, Any], out_dir: Path, logger: Any, raise_config_errors: bool,
           progress: Any) -> dict[str, Any]:
    """Build and train one run into `record` (mutated); write it to `out_dir`. See `execute`."""
    stage = "setup"
    started_logger = None
    try:
        plan = thread_plan(cfg)
        if plan["oversubscribed"]:
            log.warning("harness: %d torch threads x %d parallel jobs on %d CPUs: the machine is oversubscribed, "
                        "so step times are not comparable (the record marks them); use threads=auto or fewer jobs.",
                        plan["threads"], plan["parallel_jobs"], plan["cpus"])
        if logger == "from-config":
            logger = make_logger(cfg.get("logger"), out_dir=str(out_dir))
        run = build_run(cfg)
        record["environment"] = {**environment(run["device"]), "threads": plan}
        record["pair"] = pair_summary(run["factory"], run["model"])
        record["data"] = run["data"].summary()
        params = count_parameters(run["model"])
        if logger is not None:
            try:
                logger.start(cfg, record["pair"])
                started_logger = logger
            except Exception as exc:  # a logger never costs the run (e.g. wandb online without a login)
                log.warning("harness: logger failed to start, training without it: %s: %s", type(exc).__name__, exc)
        stage = "training"
        trainer = Trainer(run["model"], run["data"], run["optimizer"], run["scheduler"], run["settings"],
                          generator=run["generator"], log=_safe_log(started_logger, progress),
                          progress=progress.step if progress is not None else None,
                          phase_timing=cfg.get("phase_timing", False))
        try:
            result = trainer.fit()
        except TrainingInterrupted as stop:
            result = stop.result
            record["interrupted_by"] = "SIGTERM" if "SIGTERM" in _signals_seen else "SIGINT"
        finally:
            if progress is not None:
                progress.close()
        record.update(status=result.status, curves=result.curves, diagnostics=result.diagnostics)
        record["metrics"] = {**result.metrics, "params": params, "steps_done": result.steps_done}
        if plan["oversubscribed"] and isinstance(record["metrics"].get("speed"), dict):
            record["metrics"]["speed"]["oversubscribed"] = True
    except KeyboardInterrupt as stop:
        record["status"] = "interrupted"
        record["interrupted_by"] = "SIGTERM" if isinstance(stop, Terminated) or "SIGTERM" in _signals_seen else "SIGINT"
    except Exception as exc:  # recorded, not raised: a sweep keeps going
        record["status"] = "failed"
        record["error"] = {"stage": stage, "type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
        if not record["environment"]:
            record["environment"] = environment(torch.device("cpu"))
        if raise_config_errors and stage == "setup":
            record["ended_at"] = _now()
            write_record(record, out_dir)
            raise
    record["ended_at"] = _now()
    path = write_record(record, out_dir)  # before the logger: a logger failure must not lose the record
    if started_logger is not None:
        record["record_path"] = str(path)
        try:
            started_logger.finish(record)
        except Exception as exc:
            log.warning("logger failed to finish (the record is written): %s: %s", type(exc).__name__, exc)
    return record


def _safe_log(logger: Any, progress: Any = None) -> Callable[[dict], None] | None:
    """Each evaluation row to the progress display and the logger; a failing logger warns once
    and training goes on without it."""
    if logger is None and progress is None:
        return None
    failed = []

    def log_row(row: dict) -> None:
        if progress is not None:
            progress.row(row)
        if logger is None or failed:
            return
        try:
            logger.log(row)
        except Exception as exc:
            failed.append(exc)
            log.warning("harness: logger failed, training goes on without it: %s: %s", type(exc).__name__, exc)
    return log_row


def execute(cfg: dict[str, Any], out_dir: str | Path | None = None, *, store: str | Path | None = None, rerun: str = "none",
            logger: Any = "from-config", raise_config_errors: bool = False, progress: Any = None) -> dict[str, Any]:
    """Run one configuration and write its record; return the record.

    With a `store`, the record goes to the run's keyed place in it (harness/store/layout.py):
    an ok or diverged record already there means the run is done, and it is returned (with
    `"cached": True`, not written) unless `rerun` says otherwise ("stale": rerun records made by
    other code; "all": ignore the cache). The run's lock is held while it trains, so a second
    process asking for the same run waits and then finds it done. Without a store, the record
    goes to `out_dir/record.json`.

    Never raises for a run that fails or diverges: the failure is recorded (status 'failed'
    with the traceback, or 'diverged'), so one bad run cannot take a sweep down. Configuration
    errors are re-raised after recording when `raise_config_errors` (single runs), so the user
    sees them at once. Ctrl-C and SIGTERM write an 'interrupted' record, then propagate. The
    logger is built from `cfg["logger"]` unless one is passed; its failures never cost the record.
    `progress` (e.g. `progress.RunProgress`) gets `step(done)` every step and `row(eval_row)`.
    """
    if store is None and out_dir is None:
        raise ValueError("execute needs an out_dir or a store")
    if store is not None:
        layout.should_skip(None, rerun)  # a bad rerun value is an error before anything runs
    cfg = complete_config(cfg)
    started = _now()
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "status": "failed", "run_id": uuid.uuid4().hex[:12],
        "config": cfg, "identity": identity(cfg), "metrics": {}, "curves": {}, "diagnostics": {}, "error": None,
        "started_at": started, "ended_at": started, "environment": {},
    }
    key = record["identity"]["run_key"]
    with sigterm_interrupts():
        if store is None:
            record = _train(cfg, record, Path(out_dir), logger, raise_config_errors, progress)
        else:
            hit = layout.lookup(store, key)
            if layout.should_skip(hit, rerun):
                return {**hit.record, "cached": True, "record_path": str(hit.path)}
            with layout.claim(store, key, run_label(cfg)) as folder:
                hit = layout.lookup(store, key)  # another process may have finished it while we waited
                if layout.should_skip(hit, rerun):
                    return {**hit.record, "cached": True, "record_path": str(hit.path)}
                record = _train(cfg, record, folder, logger, raise_config_errors, progress)
    if record["status"] == "interrupted":
        raise Terminated() if record.get("interrupted_by") == "SIGTERM" else KeyboardInterrupt()
    return record


def record_invalid(cfg: dict[str, Any], error: Exception, store: str | Path) -> dict[str, Any]:
    """Record a run that the sweep's pre-flight found cannot run, as 'failed' with its reason."""
    cfg = complete_config(cfg)
    now = _now()
    record = {
        "schema_version": SCHEMA_VERSION, "status": "failed", "run_id": uuid.uuid4().hex[:12],
        "config": cfg, "identity": identity(cfg), "metrics": {}, "curves": {}, "diagnostics": {},
        "error": {"stage": "preflight", "type": type(error).__name__, "message": str(error), "traceback": ""},
        "started_at": now, "ended_at": now, "environment": environment(torch.device("cpu")),
    }
    key = record["identity"]["run_key"]
    with layout.claim(store, key, run_label(cfg)) as folder:
        if layout.lookup(store, key) is None:  # never replace a result with a pre-flight failure
            write_record(record, folder)
    return record

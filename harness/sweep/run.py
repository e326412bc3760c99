"""One run: resolved config -> seeded data, model, optimizer -> Trainer -> record on disk.

Independent of Hydra (the app only hands over the composed config), so tests and scripts can
call `execute(cfg_dict, out_dir)` directly.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import traceback
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.activations import ActFactory, kernels
from harness import allocator
from harness.allocator import keep_freed_memory
from harness.data import load_dataset
from harness.models import build_model, count_parameters
from harness.train.optimizers import build_optimizer
from harness.train.schedules import build_scheduler
from harness.train.trainer import Trainer, TrainerSettings, TrainingInterrupted

from harness.environment import environment
from harness.errors import ConfigError
from .loggers import make_logger
from harness.store.record import SCHEMA_VERSION, write_record

log = logging.getLogger("harness")


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda was requested but CUDA is not available; use device=cpu or device=auto.")
    return device


def resolve_threads(threads: Any) -> int:
    """'auto' -> 1 thread on CPU (see README: fastest for the small models here), else an int >= 1."""
    if threads in (None, "auto"):
        return 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be 'auto' or an integer >= 1, got {threads!r}.")
    return threads


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); return a generator for batch order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def _params(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "name"}


def pair_summary(factory: ActFactory) -> dict[str, Any]:
    """The pair as recorded: names, parameters, storage kind."""
    spec = factory.spec
    return {
        "forward": spec.forward.name,
        "forward_params": dict(spec.forward.params),
        "backward": factory.backward,
        "backward_params": dict(factory.backward_params),
        "saves": spec.saves.value,
        "bits": spec.rule.bits,
        "stochastic": spec.rule.stochastic,
        "label": spec.describe(),
    }


def build_run(cfg: dict[str, Any]):
    """Validate and build everything a run needs, before any training (fail fast)."""
    seed = int(cfg.get("seed", 0))
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
    try:
        factory = ActFactory(
            cfg["forward"]["name"], cfg["backward"]["name"],
            forward_params=_params(cfg["forward"]), backward_params=_params(cfg["backward"]), seed=seed,
        )
    except ValueError as exc:
        raise ConfigError(f"invalid activation pair: {exc}") from None
    data_cfg = dict(cfg["dataset"])
    data = load_dataset(data_cfg.pop("name"), root=cfg.get("paths", {}).get("data", "data"), device=device, seed=seed, **data_cfg)
    model_cfg = dict(cfg["model"])
    model = build_model(model_cfg.pop("name"), input_shape=data.input_shape, num_classes=data.num_classes, act=factory, kind=data.kind, **model_cfg)
    model.to(device)
    opt_cfg = dict(cfg["optimizer"])
    optimizer = build_optimizer(opt_cfg.pop("name"), model.parameters(), **opt_cfg)
    try:
        settings = TrainerSettings(**cfg.get("trainer", {}))
    except TypeError as exc:
        raise ConfigError(f"trainer: {exc}; valid keys: {', '.join(TrainerSettings.__dataclass_fields__)}") from None
    sched_cfg = dict(cfg.get("scheduler") or {"name": "constant"})
    # Same count the trainer uses: full batches per epoch (drop_last).
    total = settings.steps if settings.steps is not None else settings.epochs * (data.x_train.shape[0] // settings.batch_size)
    scheduler = build_scheduler(sched_cfg.pop("name"), optimizer, total_steps=max(total, 1), **sched_cfg)
    return dict(seed=seed, device=device, generator=generator, factory=factory, data=data, model=model,
                optimizer=optimizer, scheduler=scheduler, settings=settings)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def execute(cfg: dict[str, Any], out_dir: str | Path, *, logger: Any = "from-config", raise_config_errors: bool = False) -> dict[str, Any]:
    """Run one configuration and write its record to `out_dir/record.json`; return the record.

    Never raises for a run that fails or diverges: the failure is recorded (status 'failed'
    with the traceback, or 'diverged'), so one bad run cannot take a sweep down. Configuration
    errors are re-raised after recording when `raise_config_errors` (single runs), so the user
    sees them at once. Ctrl-C writes an 'interrupted' record, then propagates. The logger is
    built from `cfg["logger"]` unless one is passed; its failures never cost the record.
    """
    started = _now()
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "status": "failed", "run_id": uuid.uuid4().hex[:12],
        "config": cfg, "metrics": {}, "curves": {}, "diagnostics": {}, "error": None,
        "started_at": started, "ended_at": started, "environment": {},
    }
    stage = "setup"
    started_logger = None
    try:
        if logger == "from-config":
            logger = make_logger(cfg.get("logger"), out_dir=str(out_dir))
        run = build_run(cfg)
        record["environment"] = environment(run["device"])
        record["pair"] = pair_summary(run["factory"])
        record["data"] = run["data"].summary()
        params = count_parameters(run["model"])
        if logger is not None:
            logger.start(cfg, record["pair"])
            started_logger = logger
        stage = "training"
        trainer = Trainer(run["model"], run["data"], run["optimizer"], run["scheduler"], run["settings"],
                          generator=run["generator"],
                          log=logger.log if logger is not None else None)
        try:
            result = trainer.fit()
        except TrainingInterrupted as stop:
            result = stop.result
        record.update(status=result.status, curves=result.curves, diagnostics=result.diagnostics)
        record["metrics"] = {**result.metrics, "params": params, "steps_done": result.steps_done}
    except KeyboardInterrupt:
        record["status"] = "interrupted"
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
    write_record(record, out_dir)  # before the logger: a logger failure must not lose the record
    if started_logger is not None:
        try:
            started_logger.finish(record)
        except Exception as exc:
            log.warning("logger failed to finish (the record is written): %s: %s", type(exc).__name__, exc)
    if record["status"] == "interrupted":
        raise KeyboardInterrupt
    return record

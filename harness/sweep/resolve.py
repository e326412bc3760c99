"""From a composed config to one that can run: defaults filled in, every value checked.

`complete_config` gives every group all its parameters (registry defaults for what is missing),
so a parameter left out and the same parameter given at its default are one run with one cache
key. `check_config` finds everything that can be found before training (unknown names,
parameters out of range, a model that does not fit the data, a batch larger than the data) and
raises one `ConfigError` saying what was wrong and what is allowed. The sweep calls both for
every combination before the first run starts.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import numbers
import os
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

from harness.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MAX_SEED = 2**63 - 1
GROUPS = ("forward", "backward", "dataset", "model", "optimizer", "scheduler")


def group_params(group: dict[str, Any]) -> dict[str, Any]:
    """A config group's parameters (everything but its name)."""
    return {k: v for k, v in group.items() if k != "name"}


@functools.lru_cache(maxsize=None)
def _yaml_defaults(group: str, name: str) -> dict[str, Any]:
    """The parameters of `conf/<group>/<name>.yaml` (the documented defaults of that option)."""
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        return {}
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(node, dict) or node.get("name") != name:
        return {}
    return {k: v for k, v in node.items() if k != "name" and k != "defaults"}


def group_defaults(group: str, name: str) -> dict[str, Any]:
    """Default parameters of option `name` of `group` (empty when the name is unknown)."""
    try:
        if group in ("forward", "backward"):
            from .configs import registry_nodes

            node = registry_nodes()[group].get(name)
            return group_params(node) if node else {}
        if group == "dataset":
            from harness.data import dataset_params

            return dataset_params(name)
        if group == "model":
            from harness.models.registry import get_model_entry

            return dict(get_model_entry(name).params)
    except (ValueError, KeyError):
        return {}  # unknown name: check_config says so
    return _yaml_defaults(group, name)


def trainer_defaults() -> dict[str, Any]:
    """Every TrainerSettings field with its default."""
    from harness.train.trainer import TrainerSettings

    return {f.name: f.default for f in dataclasses.fields(TrainerSettings)}


def check_seed(seed: Any) -> int:
    """Seeds are integers in [0, 2^63): 1.5 or 'abc' would silently become another seed."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"seed must be an integer in [0, 2^63), got {seed!r} ({type(seed).__name__}); "
                          f"e.g. seed=0 or seed=0,1,2 for a sweep.")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, 2^63), got {seed}.")
    return int(seed)


def canonical(group: str, name: str) -> str:
    """The registry's own name behind an alias (`tied` -> `exact`, `swish` -> `silu`), else `name`."""
    if group not in ("forward", "backward"):
        return name
    from harness.activations import FORWARDS, RULES
    from harness.activations.definitions import canonical_name

    return canonical_name(FORWARDS if group == "forward" else RULES, name)


def complete_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A copy of `cfg` where every group has all its parameters (defaults where missing) and
    aliases are spelled by their registry name, so `backward=tied` and `backward=exact` are one run."""
    out = dict(cfg)
    for group in GROUPS:
        node = out.get(group)
        if isinstance(node, str):
            node = {"name": node}
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            name = canonical(group, node["name"])
            params = group_params(node)
            if isinstance(params.get("of"), str):  # an inner rule of a combinator (quantized, noise, ...)
                params["of"] = canonical("backward", params["of"])
            out[group] = {"name": name, **group_defaults(group, name), **params}
    trainer = out.get("trainer")
    out["trainer"] = {**trainer_defaults(), **(trainer if isinstance(trainer, dict) else {})}
    out.setdefault("seed", 0)
    return out


def resolve_threads(threads: Any) -> int:
    """'auto' -> the launcher's share of the cores (HARNESS_AUTO_THREADS, set per job) or 1 on
    CPU (fastest for the small models here, see README); else an int >= 1."""
    if threads in (None, "auto"):
        return int(os.environ.get("HARNESS_AUTO_THREADS", "1"))
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads must be 'auto' or an integer >= 1, got {threads!r}.")
    return threads


@functools.lru_cache(maxsize=16)
def _data_shape(name: str, params_json: str, root: str) -> tuple[tuple[int, ...], int, str, int]:
    """(input shape, classes, kind, train size) of a dataset, loaded once per process."""
    import json

    from harness.data import load_dataset

    data = load_dataset(name, root=root, device="cpu", seed=0, **json.loads(params_json))
    return tuple(data.input_shape), int(data.num_classes), data.kind, int(data.x_train.shape[0])


def _group(cfg: dict, key: str) -> dict[str, Any]:
    node = cfg.get(key)
    if not isinstance(node, dict) or not isinstance(node.get("name"), str):
        raise ConfigError(f"{key} must be a config group with a 'name' (e.g. {key}=<option>), got {node!r}.")
    return node


@contextlib.contextmanager
def config_errors(what: str) -> Iterator[None]:
    """Inside the block, a ValueError or TypeError from a builder becomes a ConfigError naming
    `what` (the registries raise ConfigErrors already; plain builders may not)."""
    try:
        yield
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what}: {exc}") from None


def check_config(cfg: dict[str, Any], data: Any = None) -> None:
    """Raise ConfigError for anything that would make this run fail before or at its first step.

    `data`: the run's loaded DataSplits, if it has them; otherwise the dataset is loaded once per
    process (on the CPU) to learn its shapes.
    """
    import json

    import torch

    from harness.activations import ActFactory
    from harness.models.registry import check_model_data
    from harness.train.optimizers import build_optimizer
    from harness.train.schedules import build_scheduler
    from harness.train.trainer import TrainerSettings

    check_seed(cfg.get("seed", 0))
    resolve_threads(cfg.get("threads", "auto"))
    if cfg.get("malloc", "keep_freed") not in ("keep_freed", "system"):
        raise ConfigError(f"malloc must be 'keep_freed' or 'system', got {cfg.get('malloc')!r}.")
    device = str(cfg.get("device", "auto"))
    if device != "auto":
        with config_errors("device must be auto, cpu, cuda or cuda:N"):
            try:
                dev = torch.device(device)
            except RuntimeError as exc:
                raise ValueError(f"got {device!r} ({exc})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device=cuda was requested but CUDA is not available; use device=cpu or device=auto.")
    forward, backward = _group(cfg, "forward"), _group(cfg, "backward")
    with config_errors("invalid activation pair"):
        ActFactory(forward["name"], backward["name"], forward_params=group_params(forward), backward_params=group_params(backward))
    with config_errors(f"trainer (valid keys: {', '.join(TrainerSettings.__dataclass_fields__)})"):
        settings = TrainerSettings(**(cfg.get("trainer") or {}))
    dataset = _group(cfg, "dataset")
    root = str((cfg.get("paths") or {}).get("data", "data"))
    if data is not None:
        shape, kind, n_train = tuple(data.input_shape), data.kind, int(data.x_train.shape[0])
    else:
        with config_errors("dataset"):
            shape, _classes, kind, n_train = _data_shape(dataset["name"], json.dumps(group_params(dataset), sort_keys=True), root)
    if settings.batch_size > n_train:
        raise ConfigError(f"trainer.batch_size={settings.batch_size} is larger than the {n_train} training samples of "
                          f"dataset {dataset['name']!r}: every step uses a full batch, so use trainer.batch_size<={n_train}.")
    model = _group(cfg, "model")
    with config_errors("model"):
        check_model_data(model["name"], input_shape=shape, kind=kind, **group_params(model))
    probe = [torch.zeros(1, requires_grad=True)]
    optimizer_cfg, scheduler_cfg = _group(cfg, "optimizer"), dict(cfg.get("scheduler") or {"name": "constant"})
    with config_errors("optimizer"):
        optimizer = build_optimizer(optimizer_cfg["name"], probe, **group_params(optimizer_cfg))
    total = settings.steps if settings.steps is not None else settings.epochs * (n_train // settings.batch_size)
    with config_errors("scheduler"):
        build_scheduler(scheduler_cfg.pop("name"), optimizer, total_steps=max(total, 1), **scheduler_cfg)

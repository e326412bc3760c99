"""What a run *is*: its cache key, its configuration id, and the hash of the code that made it.

The rule, in one place (the sweep, the cache and the report all use it):

* **run key** = sha256 of the canonical JSON of the *semantic* config: `forward`, `backward`,
  `dataset`, `model`, `optimizer`, `scheduler`, `trainer` (each with all its parameters), `seed`,
  the device *type* (`auto` resolved to what it means on this machine) and `dtype`.
* Not part of it: where things are written (`paths`, `store`), how the run is launched or watched
  (`hydra`, `logger`, `progress`, `rerun`, `strict`), and knobs that change speed but not the
  numbers trained (`threads`, `malloc`): the record says which of those ran.
* Canonical JSON: keys sorted, integral floats written as integers (`lr=1` and `lr=1.0` are the
  same run), tuples as lists. Parameters left at their default have the same key as parameters
  given at that value because the sweep completes every config with its registry defaults before
  the key is taken (`harness.sweep.resolve.complete_config`); a record stores that completed config.
* **config id** = the same hash without the seed: runs that differ only in their seed are repeats
  of one configuration (the report groups by it).
* **code hash** = sha256 over the source files that determine results (`RESULT_CODE`). A record
  made by other code is *stale*: still reported, rerun only when asked (`+rerun=stale`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

SEMANTIC_KEYS = ("forward", "backward", "dataset", "model", "optimizer", "scheduler", "trainer", "seed", "device", "dtype")
KEY_LENGTH = 16  # hex digits: 64 bits, no collision in any sweep a person will run

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
# Folders and files whose code decides what a run computes; report, bench, store and the sweep's
# launching/progress code do not (editing them must not make every record stale).
RESULT_CODE = ("activations", "data", "models", "train", "measure", "sweep/run.py", "sweep/resolve.py",
               "allocator.py", "errors.py")
_CODE_SUFFIXES = (".py", ".cpp", ".h", ".cu")


def _canonical(value: Any) -> Any:
    """JSON-ready value with one spelling per meaning (integral floats as ints, tuples as lists)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return int(value)
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def device_type(device: Any) -> str:
    """'auto' -> the device type it resolves to here; 'cuda:1' -> 'cuda'; default 'auto' -> cpu/cuda."""
    name = str(device if device is not None else "auto")
    if name == "auto":
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # the store itself never needs torch
            return "cpu"
    return name.split(":", 1)[0]


def semantic_config(cfg: dict) -> dict:
    """The part of a run config that decides its results (see the module docstring)."""
    kept = {k: cfg.get(k) for k in SEMANTIC_KEYS if k in cfg}
    kept["device"] = device_type(cfg.get("device"))
    kept.setdefault("dtype", "float32")
    return _canonical(kept)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def run_key(cfg: dict) -> str:
    """The cache key of one run: hash of its semantic config, seed included."""
    return _digest(semantic_config(cfg))[:KEY_LENGTH]


def config_id(cfg: dict) -> str:
    """The configuration a run repeats: its semantic config without the seed (8 hex digits)."""
    kept = semantic_config(cfg)
    kept.pop("seed", None)
    return _digest(kept)[:8]


def run_label(cfg: dict) -> str:
    """A readable name for a run folder, e.g. 'relu-rectangular_mnist1d_mlp_s0' (not an identity)."""
    def name(group: str) -> str:
        g = cfg.get(group)
        return str(g.get("name", "?")) if isinstance(g, dict) else str(g or "?")
    label = f"{name('forward')}-{name('backward')}_{name('dataset')}_{name('model')}_s{cfg.get('seed', '?')}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:120]


@functools.lru_cache(maxsize=4)
def code_hash(root: str | None = None) -> str:
    """sha256 (16 hex digits) over the result-determining sources under the package (`RESULT_CODE`)."""
    base = Path(root) if root else PACKAGE_ROOT
    h = hashlib.sha256()
    for entry in RESULT_CODE:
        path = base / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in _CODE_SUFFIXES) if path.is_dir() else []
        for f in files:
            h.update(f.relative_to(base).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:KEY_LENGTH]

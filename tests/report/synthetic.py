"""Synthetic run records with known numbers, shaped like the trainer's (for report tests)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from harness.store.keys import config_id, run_key
from harness.store.record import SCHEMA_VERSION

DEFAULT_CODE = "0123456789abcdef"


def make_record(forward="relu", backward="exact", seed=0, acc=0.6, *, status="ok", step_ms=1.0, lr=0.01,
                dataset="mnist1d", saved=2_000_000, native=1_900_000, cos_pairs=0.9, cos_all=0.95,
                target=0.5, target_step=500, target_s=1.5, backward_params=None, flat=None, steps=(250, 500, 750, 1000),
                code_hash=DEFAULT_CODE, error=None) -> dict:
    """One record; accuracy curve rises linearly to `acc`, cosines constant over three probes."""
    cfg = {"seed": seed, "device": "cpu", "forward": {"name": forward},
           "backward": {"name": backward, **(backward_params or {})}, "dataset": {"name": dataset, "num_train": 4000},
           "model": {"name": "mlp", "width": 100}, "optimizer": {"name": "adam", "lr": lr, "betas": [0.9, 0.999]},
           "scheduler": {"name": "constant"}, "trainer": {"steps": steps[-1], "eval_every": steps[0]}}
    flat = forward in ("step", "sign") if flat is None else flat
    n = len(steps)
    curve = [acc * (i + 1) / n for i in range(n)] if acc is not None else []
    ok = status == "ok"
    metrics = {
        "final_test_acc": acc, "best_test_acc": acc, "params": 15210, "steps_done": steps[-1], "total_steps": steps[-1],
        "speed": {"step_ms": {"median": step_ms}, "samples_per_s": 100 / (step_ms / 1000) if step_ms else None,
                  "time_to_target_s": target_s, "train_time_s_at_eval": [step_ms * s / 1000 for s in steps]},
        "memory": {"saved_bytes_per_step": {"activations": 2500, "other": 1000, "total": 3500},
                   "model": {"saved_bytes": saved, "native_saved_bytes": native,
                             "vs_native": saved / native if native else None, "native_op": "ReLU" if native else None}},
        "time_to_target": {"target": target, "step": target_step, "resolution_steps": steps[0]},
    } if ok else {}
    fid = [{"step": s, "overall": {"cosine": cos_all}, "through_pairs": {"cosine": None if flat else cos_pairs},
            "layer_min": {"cosine": None if flat else cos_pairs - 0.1, "layer": "layers.0"}} for s in (0, steps[-1] // 2, steps[-1])]
    return {
        "schema_version": SCHEMA_VERSION, "status": status, "run_id": f"{forward}-{backward}-{seed}-{lr}",
        "identity": {"run_key": run_key(cfg), "config_id": config_id(cfg), "code_hash": code_hash, "harness_version": "0.1.0"},
        "config": cfg,
        "pair": {"forward": forward, "backward": backward, "label": f"{forward}/{backward}", "flat": flat, "saves": "bits", "bits": 1},
        "metrics": metrics,
        "curves": {"step": list(steps), "test_acc": curve} if ok else {},
        "diagnostics": {"fidelity": fid, "activations": [{"step": 0, "mean": {"dead_fraction": 0.1, "sparsity": 0.5}}]} if ok else {},
        "environment": {"python": "3.11", "torch": "2.14.1", "cpu_model": "Test CPU", "git_commit": "abc123",
                        "activation_kernels": {"isa": "avx2"}, "torch_threads": 1},
        "started_at": "2026-01-01T00:00:00+00:00", "ended_at": "2026-01-01T00:01:00+00:00",
        "error": error if error else ({"type": "RuntimeError", "message": "boom"} if status == "failed" else None),
    }


def write(root: Path, name: str, record: dict) -> Path:
    """Write `record` as root/name/record.json (plain json.dump: tests may write invalid records)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "record.json"
    path.write_text(json.dumps(record))
    return path


def small_sweep(root: Path) -> Path:
    """relu/step x exact/rectangular x 3 seeds with known accuracies, plus one failed run."""
    accs = {("relu", "exact"): [0.60, 0.64, 0.68], ("relu", "rectangular"): [0.30, 0.34, 0.38],
            ("step", "exact"): [0.25, 0.25, 0.26], ("step", "rectangular"): [0.50, 0.51, 0.49]}
    for (f, b), values in accs.items():
        for seed, acc in enumerate(values):
            write(root, f"{f}-{b}-{seed}", make_record(f, b, seed, acc, step_ms=1.0 if b == "exact" else 0.8,
                                                       target_step=500 if acc >= 0.5 else None,
                                                       target_s=0.5 if acc >= 0.5 else None))
    write(root, "failed", make_record("relu", "rectangular", 9, None, status="failed"))
    return root


def mutate(record: dict, path: str, value) -> dict:
    """A deep copy of `record` with the dotted `path` set to `value`."""
    out = copy.deepcopy(record)
    node = out
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return out

"""Quality-versus-cost search with Hydra's Optuna sweeper (multi-objective, NSGA-II).

Each trial is one run through `execute` and the same store as a grid sweep, so a trial whose
config has run before is read from the cache, not trained again. The task returns the values
named in `objective` (one name: a float; several: a list, one per Optuna direction):

* `final_test_acc`, `best_test_acc`: accuracy (maximize)
* `step_ms`: median training-step time (minimize)
* `saved_bytes`: what the whole model keeps for backward per step, deduplicated (minimize)
* `saved_vs_native`: the same as a ratio to the model with torch's native op (minimize)

A run that failed or diverged returns NaN for every objective: Optuna records the trial as
failed and the sweep goes on (`hydra.sweeper.max_failure_rate`).

`rule_parameters` is the sweeper's `custom_search_space`: each backward rule gets its own
parameters only when the trial picked it (Optuna's flat `params` cannot say "bits only for
quantized").
"""
from __future__ import annotations

import math
from typing import Any

from harness.errors import ConfigError

OBJECTIVES = {
    "final_test_acc": ("metrics", "final_test_acc"),
    "best_test_acc": ("metrics", "best_test_acc"),
    "step_ms": ("metrics", "speed", "step_ms", "median"),
    "saved_bytes": ("metrics", "memory", "model", "saved_bytes"),
    "saved_vs_native": ("metrics", "memory", "model", "vs_native"),
}


def objective_names(objective: Any) -> list[str]:
    """The configured objective(s) as a list of known names (ConfigError for an unknown one)."""
    names = [objective] if isinstance(objective, str) else list(objective or ["final_test_acc"])
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        raise ConfigError(f"objective {', '.join(map(repr, unknown))} is not known; choose from {', '.join(OBJECTIVES)}.")
    return names


def objective_values(record: dict, objective: Any) -> float | list[float] | None:
    """What the task returns to the sweeper for this record (see the module docstring)."""
    names = objective_names(objective)
    values = []
    for name in names:
        node: Any = record
        for key in OBJECTIVES[name]:
            node = node.get(key) if isinstance(node, dict) else None
        ok = record.get("status") == "ok" and isinstance(node, (int, float)) and math.isfinite(node)
        values.append(float(node) if ok else math.nan)
    return values[0] if len(values) == 1 else values


# Per rule: (override key, kind, low, high, log scale). Ranges cover the published defaults.
RULE_SPACE: dict[str, list[tuple[str, str, float, float, bool]]] = {
    "rectangular": [("backward.a", "float", -2.0, -0.1, False), ("backward.b", "float", 0.1, 2.0, False)],
    "fast_sigmoid": [("backward.k", "float", 1.0, 100.0, True)],
    "triangular": [("backward.w", "float", 0.25, 4.0, True)],
    "quantized": [("backward.bits", "int", 1, 4, False)],
}


def rule_parameters(cfg: Any, trial: Any) -> None:
    """Optuna `custom_search_space`: suggest the picked rule's own parameters (RULE_SPACE)."""
    rule = trial.params.get("backward")
    for key, kind, low, high, log in RULE_SPACE.get(rule, []):
        if kind == "int":
            trial.suggest_int(key, int(low), int(high))
        else:
            trial.suggest_float(key, low, high, log=log)

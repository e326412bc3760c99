"""Records -> one-row-per-run DataFrame -> per-configuration statistics across seeds.

Reads only the JSON records on disk (never Hydra's callbacks: a failed job would skip them),
so a report can be rebuilt at any time from a sweep folder.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats

from harness.store.keys import config_id
from harness.store.record import RecordError, find_records, load_record
from harness.train.diagnostics import FLAT_FORWARDS

GROUP_KEYS = ["dataset", "model", "forward", "backward", "optimizer", "config_id"]


def _label(group: dict | None) -> str | None:
    """'name(k=v, ...)' for a config group, parameters in config order."""
    if not group:
        return None
    params = ", ".join(f"{k}={v}" for k, v in group.items() if k != "name")
    return f"{group.get('name')}({params})" if params else group.get("name")


def _last_overall_cosine(record: dict) -> float | None:
    if (record.get("config", {}).get("forward") or {}).get("name") in FLAT_FORWARDS:
        return None  # the exact gradient is zero below the last activation: no direction to compare
    fidelity = record.get("diagnostics", {}).get("fidelity") or []
    return (fidelity[-1].get("overall") or {}).get("cosine") if fidelity else None


def run_row(record: dict, path: Path) -> dict:
    """The flat columns of one run (labels from the config, so failed runs group with the rest)."""
    cfg, m = record["config"], record.get("metrics", {})
    speed, memory = m.get("speed") or {}, m.get("memory") or {}
    return {
        "path": str(path),
        "status": record["status"],
        # Dataset and model by name for readability; their parameters are in config_id.
        "dataset": (cfg.get("dataset") or {}).get("name"),
        "model": (cfg.get("model") or {}).get("name"),
        "forward": _label(cfg.get("forward")),
        "backward": _label(cfg.get("backward")),
        "rule": (cfg.get("backward") or {}).get("name"),
        "optimizer": _label({k: v for k, v in (cfg.get("optimizer") or {}).items() if k in ("name", "lr")}),
        "config_id": config_id(cfg),
        "seed": cfg.get("seed"),
        "final_test_acc": m.get("final_test_acc"),
        "best_test_acc": m.get("best_test_acc"),
        "step_ms": (speed.get("step_ms") or {}).get("median"),
        "backward_ms": (speed.get("backward_ms") or {}).get("median"),
        "saved_act_bytes": (memory.get("saved_bytes_per_step") or {}).get("activations"),
        "grad_cosine": _last_overall_cosine(record),
        "threads": record.get("environment", {}).get("torch_threads"),
        "error": (record.get("error") or {}).get("message"),
    }


def load_runs(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """All valid records under `root` as rows, plus one message per unreadable record."""
    rows, problems = [], []
    for path in find_records(root):
        try:
            rows.append(run_row(load_record(path), path))
        except RecordError as exc:
            problems.append(str(exc))
    return pd.DataFrame(rows), problems


def mean_ci(values: pd.Series, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the t-distribution confidence interval, n); half-width NaN for n < 2."""
    v = values.dropna().astype(float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v.iloc[0]), math.nan, 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return float(v.mean()), float(half), n


def summarize_runs(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per configuration: accuracy mean +- CI over seeds, median step time and its ratio to the
    exact backward of the same forward, saved activation bytes, final gradient cosine."""
    if runs.empty:
        return pd.DataFrame()
    out = []
    for key, group in runs.groupby(GROUP_KEYS, dropna=False):
        ok = group[group.status == "ok"]
        acc, acc_ci, n = mean_ci(ok.final_test_acc, level)
        out.append({
            **dict(zip(GROUP_KEYS, key)), "rule": group.rule.iloc[0],
            "runs": len(group), "ok": n, "diverged": int((group.status == "diverged").sum()),
            "failed": int((group.status == "failed").sum()),
            "test_acc": acc, "test_acc_ci": acc_ci,
            "step_ms": ok.step_ms.median(), "saved_act_bytes": ok.saved_act_bytes.median(),
            "grad_cosine": ok.grad_cosine.mean(),
        })
    table = pd.DataFrame(out)
    # "vs exact": the step time of the exact rule with the same dataset, model, forward and optimizer.
    same = ["dataset", "model", "forward", "optimizer"]
    exact = table[table.rule == "exact"].groupby(same, dropna=False).step_ms.median()
    table["step_vs_exact"] = [
        row.step_ms / exact.get(tuple(getattr(row, k) for k in same), math.nan) for row in table.itertuples()
    ]
    return table.sort_values(GROUP_KEYS).reset_index(drop=True)


def to_markdown(table: pd.DataFrame, level: float = 0.95) -> str:
    """A paper-ready markdown table (accuracy as mean +- CI in percent)."""
    lines = [f"| dataset | model | forward | backward | optimizer | config | seeds ok | test acc % (±{int(level * 100)}% CI) | step ms | vs exact | act. bytes saved/step | grad cos vs exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, f)  # noqa: E731
    for r in table.itertuples():
        acc = fmt(r.test_acc * 100, ".1f") + ("" if math.isnan(r.test_acc_ci) else f" ± {r.test_acc_ci * 100:.1f}")
        lines.append(f"| {r.dataset} | {r.model} | {r.forward} | {r.backward} | {r.optimizer} | {r.config_id} | {r.ok}/{r.runs} | {acc} | "
                     f"{fmt(r.step_ms, '.3f')} | {fmt(r.step_vs_exact, '.2f')} | {fmt(r.saved_act_bytes, '.0f')} | {fmt(r.grad_cosine, '.3f')} |")
    return "\n".join(lines)

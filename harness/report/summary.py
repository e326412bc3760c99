"""Runs table -> one row per configuration: statistics across seeds and the comparison with a baseline.

Reads only the runs DataFrame (`harness.store.table.runs_table`), one row per run. A configuration
is a `config_id` (the semantic config without the seed, `harness.store.keys`): runs that differ in
anything but the seed are never pooled. Statistics use the runs whose status is ok; every row
also counts its diverged, failed, interrupted and stale runs, so nothing is silently dropped.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .stats import (DEFAULT_BOOT, Interval, VerdictRule, difference_interval, holm, mann_whitney_p, mean_interval,
                    verdict, welch_p)

#: Metrics summarised per configuration: column -> (description, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "final_test_acc": ("final test accuracy", True),
    "best_test_acc": ("best test accuracy", True),
    "target_s": ("training seconds to the target accuracy (runs that reached it)", False),
    "target_step": ("steps to the target accuracy (runs that reached it)", False),
    "step_ms": ("median step time, ms", False),
    "samples_per_s": ("training samples per second", True),
    "model_saved_bytes": ("bytes the model keeps for backward (deduplicated, no parameters)", False),
    "memory_vs_native": ("saved bytes / the same model with torch's native op", False),
    "saved_act_bytes": ("bytes only the pairs save per step", False),
    "grad_cos_pairs": ("final gradient cosine vs exact, parameters through a pair", True),
    "grad_cos_min_layer": ("final gradient cosine vs exact, lowest layer", True),
    "dead_fraction": ("dead-unit fraction (relu-like forwards)", False),
}
STATUSES = ("ok", "diverged", "failed", "interrupted")
LABEL_GROUPS = ("dataset", "model", "forward", "backward", "optimizer", "scheduler")
# Semantic parameter columns that define "the same setting" when looking for a baseline.
_CONTEXT_PREFIXES = tuple(f"cfg.{g}." for g in ("forward", "backward", "dataset", "model", "optimizer", "scheduler", "trainer"))
_CONTEXT_SCALARS = ("cfg.device", "cfg.dtype")


@dataclass(frozen=True)
class Baseline:
    """Which configuration each row is compared with: same everything, `axis` set to `value`
    (e.g. backward=exact: the exact rule of the same forward, dataset, model and optimizer)."""

    axis: str = "backward"
    value: str = "exact"

    @classmethod
    def parse(cls, text: str) -> "Baseline":
        """'backward=exact' -> Baseline('backward', 'exact'); a bad spec raises ValueError."""
        axis, sep, value = text.partition("=")
        groups = ("forward", "backward", "dataset", "model", "optimizer", "scheduler")
        if not sep or axis.strip() not in groups or not value.strip():
            raise ValueError(f"--baseline must be GROUP=NAME with GROUP one of {', '.join(groups)} "
                             f"(e.g. backward=exact), got {text!r}")
        return cls(axis.strip(), value.strip())

    def __str__(self) -> str:
        return f"{self.axis}={self.value}"


@dataclass
class SummaryOptions:
    """Everything that shapes the summary (defaults are the report's; all are in the caption)."""

    metric: str = "final_test_acc"
    baseline: Baseline = field(default_factory=Baseline)
    level: float = 0.95
    rule: VerdictRule = field(default_factory=VerdictRule)
    n_boot: int = DEFAULT_BOOT
    seed: int = 0


def _text(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v)


def context_key(row: pd.Series, axis: str, columns: list[str]) -> str:
    """The setting of a configuration apart from the baseline's axis (its `cfg.<axis>.*` columns)."""
    return "|".join(f"{c}={_text(row[c])}" for c in columns if not c.startswith(f"cfg.{axis}."))


def _context_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith(_CONTEXT_PREFIXES) or c in _CONTEXT_SCALARS]


def apply_targets(runs: pd.DataFrame, targets: dict[str, float]) -> pd.DataFrame:
    """Recompute time to target from the curves for datasets given in `targets` ({dataset: acc}):
    the first evaluated step whose test accuracy reaches it, and the training seconds by then."""
    if not targets:
        return runs
    runs = runs.copy()
    for i, row in runs.iterrows():
        target = targets.get(row["dataset"])
        if target is None:
            continue
        steps, accs = row["curve_step"], row["curve_test_acc"]
        times = row["curve_train_time_s"]
        hit = next((k for k, a in enumerate(accs or []) if a is not None and a >= target), None)
        runs.at[i, "target_acc"] = target
        runs.at[i, "target_step"] = steps[hit] if hit is not None else None
        runs.at[i, "target_s"] = times[hit] if hit is not None and times is not None and hit < len(times) else None
    return runs


def _interval_columns(prefix: str, iv: Interval) -> dict:
    return {f"{prefix}_mean": iv.mean, f"{prefix}_low": iv.low, f"{prefix}_high": iv.high, f"{prefix}_n": iv.n,
            f"{prefix}_std": iv.std, f"{prefix}_ci": iv.method}


def summarize(runs: pd.DataFrame, options: SummaryOptions | None = None) -> pd.DataFrame:
    """One row per configuration: counts by status, mean/std/CI of every metric in METRICS over
    the ok runs, time-to-target reach counts, and the comparison with the baseline configuration
    (difference of `options.metric` with its CI, Welch and Mann-Whitney p with Holm across the
    table, ratios of speed and memory, the verdict)."""
    o = options or SummaryOptions()
    if runs.empty:
        return pd.DataFrame()
    if o.metric not in runs.columns:
        raise ValueError(f"--metric {o.metric!r} is not a column of the runs table; numeric columns: "
                         + ", ".join(c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])))
    context_cols = _context_columns(runs)
    rows = []
    for cid, group in runs.groupby("config_id", sort=True, dropna=False):
        first = group.iloc[0]
        ok = group[group.status == "ok"]
        row = {"config_id": cid, **{g: first[g] for g in LABEL_GROUPS}, "rule": first["rule"],
               "forward_name": first["forward_name"], "flat": first["flat"],
               "runs": len(group), "stale": int((group.stale == True).sum()),  # noqa: E712 (None = unknown)
               "seeds": ",".join(str(s) for s in sorted(group.seed.dropna().unique())),
               "context": context_key(first, o.baseline.axis, context_cols),
               "axis_name": first.get(f"cfg.{o.baseline.axis}.name"), "axis_label": first[o.baseline.axis],
               "target_acc": ok.target_acc.dropna().iloc[0] if ok.target_acc.notna().any() else math.nan,
               "target_reached": int(ok.target_step.notna().sum()),
               "native_op": ok.native_op.dropna().iloc[0] if ok.native_op.notna().any() else None}
        row.update({s: int((group.status == s).sum()) for s in STATUSES})
        row.update({c: first[c] for c in context_cols})
        for metric in METRICS:
            values = ok[metric] if metric in ok else pd.Series(dtype=float)
            row.update(_interval_columns(metric, mean_interval(values, o.level, n_boot=o.n_boot, seed=o.seed)))
        if o.metric not in METRICS:
            row.update(_interval_columns(o.metric, mean_interval(ok[o.metric], o.level, n_boot=o.n_boot, seed=o.seed)))
        rows.append(row)
    table = pd.DataFrame(rows)
    table = _compare_with_baseline(table, runs, o)
    return table.sort_values(list(LABEL_GROUPS) + ["config_id"], na_position="last").reset_index(drop=True)


def _baseline_ids(table: pd.DataFrame, b: Baseline) -> dict[str, str]:
    """context -> config_id of the baseline configuration in that context (most ok runs wins)."""
    is_base = (table.axis_name.astype(str) == b.value) | (table.axis_label.astype(str) == b.value)
    found: dict[str, str] = {}
    for context, group in table[is_base].groupby("context", sort=False):
        found[context] = group.sort_values(["ok", "config_id"], ascending=[False, True]).config_id.iloc[0]
    return found


def _compare_with_baseline(table: pd.DataFrame, runs: pd.DataFrame, o: SummaryOptions) -> pd.DataFrame:
    higher = METRICS.get(o.metric, ("", True))[1]
    base_of = _baseline_ids(table, o.baseline)
    ok = runs[runs.status == "ok"]
    values = {cid: g[o.metric].to_numpy(dtype=float) for cid, g in ok.groupby("config_id")}
    by_id = table.set_index("config_id")
    out = {k: [] for k in ("baseline_id", "diff_mean", "diff_low", "diff_high", "diff_ci", "p_welch", "p_mw",
                           "step_ratio", "samples_ratio", "memory_ratio")}
    for r in table.itertuples():
        base = base_of.get(r.context)
        if base is None or base == r.config_id:
            for k in out:
                out[k].append(None if k in ("baseline_id", "diff_ci") else math.nan)
            if base == r.config_id:
                out["baseline_id"][-1] = base
            continue
        a, b = values.get(r.config_id, np.array([])), values.get(base, np.array([]))
        d = difference_interval(a, b, o.level, n_boot=o.n_boot, seed=o.seed)
        bl = by_id.loc[base]
        out["baseline_id"].append(base)
        out["diff_mean"].append(d.mean)
        out["diff_low"].append(d.low)
        out["diff_high"].append(d.high)
        out["diff_ci"].append(d.method)
        out["p_welch"].append(welch_p(a, b))
        out["p_mw"].append(mann_whitney_p(a, b, o.rule.alpha))
        out["step_ratio"].append(r.step_ms_mean / bl.step_ms_mean if bl.step_ms_mean else math.nan)
        out["samples_ratio"].append(r.samples_per_s_mean / bl.samples_per_s_mean if bl.samples_per_s_mean else math.nan)
        out["memory_ratio"].append(r.model_saved_bytes_mean / bl.model_saved_bytes_mean if bl.model_saved_bytes_mean else math.nan)
    for k, v in out.items():
        table[k] = v
    table["p_welch_holm"] = holm(table.p_welch)
    table["p_mw_holm"] = holm(table.p_mw)
    verdicts = []
    for r in table.itertuples():
        if pd.isna(r.baseline_id):
            verdicts.append("no baseline")
        elif r.baseline_id == r.config_id:
            verdicts.append("baseline")
        else:
            diff = Interval(r.diff_mean, r.diff_low, r.diff_high, 0, math.nan, r.diff_ci or "")
            n_base = int(by_id.loc[r.baseline_id, "ok"])
            verdicts.append(verdict(diff, r.p_welch_holm, int(r.ok), n_base, o.rule, higher))
    table["verdict"] = verdicts
    table["is_baseline"] = table.baseline_id == table.config_id
    return table


# ---------------------------------------------------------------------------- missing cells

GRID_AXES = ("dataset", "model", "forward", "backward", "optimizer", "seed")


def missing_cells(runs: pd.DataFrame, axes: tuple[str, ...] = GRID_AXES) -> pd.DataFrame:
    """Cells of the sweep grid without a record: the grid is the product of the values seen on
    each axis (so a sweep that is not finished, or a job that never wrote its record, shows up).
    A sweep that is not a full product lists the combinations it never meant to run too; the
    caption says how the grid is inferred."""
    if runs.empty:
        return pd.DataFrame(columns=list(axes))
    present = [a for a in axes if a in runs.columns]
    values = [sorted(runs[a].dropna().unique(), key=str) for a in present]
    if math.prod(len(v) for v in values) > 100_000:  # a grid that large is not a grid
        return pd.DataFrame(columns=present)
    seen = set(map(tuple, runs[present].astype(object).where(runs[present].notna(), None).itertuples(index=False)))
    rows = [cell for cell in itertools.product(*values) if cell not in seen]
    return pd.DataFrame(rows, columns=present)


__all__ = ["Baseline", "METRICS", "SummaryOptions", "apply_targets", "missing_cells", "summarize"]

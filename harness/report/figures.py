"""Paper figures from the runs and summary DataFrames: one function per figure, one style.

Every figure function takes the DataFrames only (`runs`: one row per run, `summary`: one row per
configuration) and returns a matplotlib Figure, or a string saying why there is nothing to show
(then no file is written). `save_figures` writes each as PDF and PNG with fixed metadata, so two
runs give the same bytes as far as matplotlib allows (no dates, fixed SVG hash salt, DejaVu Sans
shipped with matplotlib, Agg backend).

Style: Okabe-Ito colours (colour-blind safe) per backward rule, one marker per forward, sized for
a paper column (3.3 in wide, 7 pt text), which also reads at full width.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (files only; no display)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from cycler import cycler  # noqa: E402

from .summary import METRICS, SummaryOptions  # noqa: E402
from .tables import config_labels  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
COLUMN_WIDTH_IN = 3.3
FULL_WIDTH_IN = 6.9
MAX_ITEMS = 30  # configurations per bar chart / line plot; the best by the metric are kept (title says so)
STYLE = {
    "font.family": "DejaVu Sans", "font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7,
    "legend.fontsize": 6, "xtick.labelsize": 6, "ytick.labelsize": 6, "lines.linewidth": 1.0,
    "lines.markersize": 4, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.5, "axes.prop_cycle": cycler(color=OKABE_ITO),
    # Constrained layout, not savefig's bbox "tight": that renders every file twice.
    "figure.dpi": 100, "savefig.dpi": 200, "figure.constrained_layout.use": True,
    "svg.hashsalt": "harness-report", "svg.fonttype": "none", "pdf.fonttype": 3, "legend.frameon": False,
}
PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
PNG_METADATA = {"Software": None}


# ---------------------------------------------------------------------------- helpers


def pareto_mask(cost, value) -> np.ndarray:
    """True for points no other point dominates (lower or equal cost and higher or equal value,
    one of them strictly). NaN points are never on the front."""
    cost, value = np.asarray(cost, dtype=float), np.asarray(value, dtype=float)
    ok = np.isfinite(cost) & np.isfinite(value)
    mask = np.zeros(len(cost), dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (cost <= cost[i]) & (value >= value[i]) & ((cost < cost[i]) | (value > value[i]))
        mask[i] = not dominated.any()
    return mask


def pair_labels(summary: pd.DataFrame) -> list[str]:
    """A short label per configuration: the differing label groups joined ('relu / rectangular')."""
    labels, _ = config_labels(summary)
    if labels.empty:
        return list(summary.config_id.astype(str))
    first = [c for c in ("forward", "backward") if c in labels.columns]
    rest = [c for c in labels.columns if c not in first]
    return [" / ".join(str(r[c]) for c in first) + ("" if not rest else " · " + ", ".join(str(r[c]) for c in rest))
            for _, r in labels.iterrows()]


def _styles(summary: pd.DataFrame) -> tuple[dict, dict]:
    forwards = sorted(summary.forward.astype(str).unique())
    rules = sorted(summary.backward.astype(str).unique())
    return ({f: MARKERS[i % len(MARKERS)] for i, f in enumerate(forwards)},
            {r: OKABE_ITO[i % len(OKABE_ITO)] for i, r in enumerate(rules)})


def _metric_label(metric: str) -> str:
    return METRICS.get(metric, (metric, True))[0]


def _scale(metric: str) -> float:
    return 100.0 if metric.endswith("_acc") else 1.0


def _top(summary: pd.DataFrame, metric: str, limit: int = MAX_ITEMS) -> tuple[pd.DataFrame, str]:
    if len(summary) <= limit:
        return summary, ""
    higher = METRICS.get(metric, ("", True))[1]
    kept = summary.sort_values(f"{metric}_mean", ascending=not higher, na_position="last").head(limit)
    return kept.sort_index(), f" (best {limit} of {len(summary)})"


def _errors(summary: pd.DataFrame, prefix: str, scale: float = 1.0):
    mean = summary[f"{prefix}_mean"].to_numpy(dtype=float) * scale
    low = summary[f"{prefix}_low"].to_numpy(dtype=float) * scale
    high = summary[f"{prefix}_high"].to_numpy(dtype=float) * scale
    return mean, np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])


def _figure(width: float = COLUMN_WIDTH_IN, height: float = 2.4, ncols: int = 1):
    return plt.subplots(1, ncols, figsize=(width, height), squeeze=False)


# ---------------------------------------------------------------------------- figures


def _scatter(summary: pd.DataFrame, metric: str, x_prefix: str, x_scale: float, x_label: str, title: str):
    data = summary[summary[f"{metric}_mean"].notna() & summary[f"{x_prefix}_mean"].notna()]
    if len(data) < 2:
        return f"{title}: fewer than two configurations with both numbers"
    markers, colours = _styles(data)
    fig, axes = _figure(height=2.6)
    ax = axes[0, 0]
    y, yerr = _errors(data, metric, _scale(metric))
    x, xerr = _errors(data, x_prefix, x_scale)
    style = data.forward.astype(str) + "\0" + data.backward.astype(str)
    for key in style.unique():  # one call per marker/colour pair: fast with thousands of points
        idx = np.flatnonzero((style == key).to_numpy())
        forward, backward = key.split("\0")
        ax.errorbar(x[idx], y[idx], yerr=yerr[:, idx], xerr=xerr[:, idx], fmt=markers[forward],
                    color=colours[backward], ecolor=colours[backward], elinewidth=0.6, capsize=1.5,
                    markersize=4, linestyle="none")
    front = pareto_mask(x, y)
    order = np.argsort(x[front])
    ax.step(x[front][order], y[front][order], where="post", color="0.4", linewidth=0.7, linestyle="--", zorder=0)
    ax.scatter(x[front], y[front], s=60, facecolors="none", edgecolors="0.2", linewidths=0.7, zorder=3)
    handles = [plt.Line2D([], [], marker=m, color="0.3", linestyle="none", label=f"forward {f}") for f, m in markers.items()]
    handles += [plt.Line2D([], [], marker="s", color=c, linestyle="none", label=r) for r, c in colours.items()]
    handles.append(plt.Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="0.2", linestyle="--",
                              color="0.4", label="Pareto front"))
    ax.legend(handles=handles[:16], loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel(x_label)
    ax.set_ylabel(_metric_label(metric) + (" (%)" if metric.endswith("_acc") else ""))
    ax.set_title(title)
    return fig


def accuracy_vs_step_time(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """The metric against median step time per configuration, with CI bars and the Pareto front."""
    return _scatter(summary, o.metric, "step_ms", 1.0, "median step time (ms)", "Accuracy vs step time")


def accuracy_vs_memory(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """The metric against the bytes the model keeps for backward, with the Pareto front."""
    return _scatter(summary, o.metric, "model_saved_bytes", 1e-6, "saved for backward (MB, whole model)",
                    "Accuracy vs saved memory")


def _curve_stack(group: pd.DataFrame, x_col: str, y_col: str):
    pairs = [(x, y) for x, y in zip(group[x_col], group[y_col]) if isinstance(x, list) and isinstance(y, list) and x and y]
    if not pairs:
        return None
    n = min(min(len(x), len(y)) for x, y in pairs)
    xs = np.array([x[:n] for x, _ in pairs], dtype=float)
    ys = np.array([y[:n] for _, y in pairs], dtype=float)
    return xs.mean(axis=0), ys


def learning_curves(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Test accuracy against step and against training seconds: mean over seeds, band min..max."""
    shown, note = _top(summary, o.metric, 10)
    labels = dict(zip(summary.config_id, pair_labels(summary)))
    ok = runs[runs.status == "ok"]
    fig, axes = _figure(FULL_WIDTH_IN, 2.4, ncols=2)
    drawn = 0
    for k, cid in enumerate(shown.config_id):
        group = ok[ok.config_id == cid]
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        for ax, x_col in ((axes[0, 0], "curve_step"), (axes[0, 1], "curve_train_time_s")):
            stack = _curve_stack(group, x_col, "curve_test_acc")
            if stack is None:
                continue
            x, ys = stack
            ax.plot(x, ys.mean(axis=0) * 100, color=colour, label=labels[cid] if ax is axes[0, 0] else None,
                    linestyle="-" if k < len(OKABE_ITO) else "--")
            if len(ys) > 1:
                ax.fill_between(x, ys.min(axis=0) * 100, ys.max(axis=0) * 100, color=colour, alpha=0.15, linewidth=0)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return "learning curves: no ok run has a test-accuracy curve"
    axes[0, 0].set_xlabel("training step")
    axes[0, 1].set_xlabel("training time (s, steps only)")
    for ax in axes[0]:
        ax.set_ylabel("test accuracy (%)")
    axes[0, 0].set_title("Learning curves (mean, band: min..max over seeds)" + note)
    axes[0, 0].legend(loc="lower right", fontsize=5)
    return fig


def _heatmap_setting(summary: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    cols = [c for c in summary.columns if c.startswith("cfg.") and not c.startswith(("cfg.forward.", "cfg.backward."))]
    if not cols:
        return summary, ""
    keys = summary[cols].apply(lambda column: column.map(repr)).agg("|".join, axis=1)
    if keys.nunique() == 1:
        return summary, ""
    biggest = keys.value_counts().index[0]
    return summary[keys == biggest], f" (one of {keys.nunique()} settings)"


def accuracy_heatmap(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Forward x backward grid of the metric's mean, and of its difference to the baseline."""
    data, note = _heatmap_setting(summary)
    forwards = sorted(data.forward.astype(str).unique())
    rules = sorted(data.backward.astype(str).unique())
    if len(forwards) * len(rules) < 2:
        return "heatmap: one forward and one backward only"
    scale = _scale(o.metric)
    grids = {"mean": np.full((len(forwards), len(rules)), np.nan), "diff": np.full((len(forwards), len(rules)), np.nan)}
    for _, r in data.iterrows():
        i, j = forwards.index(str(r.forward)), rules.index(str(r.backward))
        grids["mean"][i, j] = r[f"{o.metric}_mean"] * scale
        grids["diff"][i, j] = r["diff_mean"] * scale if not r["is_baseline"] else 0.0
    width = min(FULL_WIDTH_IN, 1.4 + 0.9 * len(rules) * 2)
    fig, axes = _figure(width, 0.9 + 0.35 * len(forwards) + 0.6, ncols=2)
    for ax, (key, grid), title, cmap in ((axes[0, 0], ("mean", grids["mean"]), _metric_label(o.metric), "viridis"),
                                         (axes[0, 1], ("diff", grids["diff"]), f"difference to {o.baseline}", "PuOr")):
        bound = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
        if key == "diff":
            image = ax.imshow(grid, cmap=cmap, vmin=-bound or -1, vmax=bound or 1, aspect="auto")
        else:
            image = ax.imshow(grid, cmap=cmap, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                dark = (v < np.nanmean(grid)) if key == "mean" else abs(v) > 0.6 * bound
                ax.text(j, i, f"{v:.1f}" if scale == 100 else f"{v:.3g}", ha="center", va="center", fontsize=5.5,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(rules)), rules, rotation=30, ha="right")
        ax.set_yticks(range(len(forwards)), forwards)
        ax.set_title(title + note)
        ax.grid(False)
        fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def memory_bars(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Bytes each configuration's model keeps for backward, next to the same model with the native op."""
    data = summary[summary.model_saved_bytes_mean.notna()]
    if data.empty:
        return "memory bars: no record has the model's saved bytes (metrics.memory.model)"
    data, note = _top(data, "model_saved_bytes")
    labels = pair_labels(summary.loc[data.index]) if len(summary) else []
    native = (data.model_saved_bytes_mean / data.memory_vs_native_mean).to_numpy(dtype=float) / 1e6
    pair = data.model_saved_bytes_mean.to_numpy(dtype=float) / 1e6
    _, colours = _styles(data)
    y = np.arange(len(data))
    fig, axes = _figure(height=0.6 + 0.22 * len(data))
    ax = axes[0, 0]
    ax.barh(y + 0.2, pair, height=0.4, color=[colours[str(b)] for b in data.backward], label="pair")
    ax.barh(y - 0.2, np.nan_to_num(native), height=0.4, color="0.75", hatch="///", edgecolor="0.4", linewidth=0.3,
            label="native op, same model")
    for yi, n in zip(y, native):
        if not np.isfinite(n):
            ax.text(0, yi - 0.2, " no native op", va="center", fontsize=5)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("MB kept for backward")
    ax.set_title("Memory kept for backward" + note)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.2 / (0.6 + 0.22 * len(data)) * 0.3), ncol=1)
    return fig


def _probe_curves(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions, x_col: str, y_col: str,
                  scale: float = 1.0, band: bool = False):
    """One axis with the mean over seeds of a per-probe series (x_col, y_col) for each of the top
    configurations, optionally with a min..max band: (fig, ax, note), or None when none has data."""
    ok = runs[runs.status == "ok"]
    shown, note = _top(summary, o.metric, 10)
    labels = dict(zip(summary.config_id, pair_labels(summary)))
    fig, axes = _figure(height=2.4)
    ax = axes[0, 0]
    drawn = 0
    for k, cid in enumerate(shown.config_id):
        stack = _curve_stack(ok[ok.config_id == cid], x_col, y_col)
        if stack is None or not np.isfinite(stack[1]).any():
            continue
        x, ys = stack
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        ax.plot(x, np.nanmean(ys, axis=0) * scale, marker="o", markersize=2.5, color=colour, label=labels[cid])
        if band and len(ys) > 1:
            ax.fill_between(x, np.nanmin(ys, axis=0) * scale, np.nanmax(ys, axis=0) * scale, color=colour, alpha=0.15, linewidth=0)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("training step")
    return fig, ax, note


def grad_cosine_curves(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Gradient cosine to the exact derivative (parameters through a pair) against training step."""
    drawn = _probe_curves(runs, summary, o, "fid_step", "fid_cos_pairs")
    if drawn is None:
        return "gradient cosine: no configuration has a defined cosine (flat forwards, or records without through_pairs)"
    fig, ax, note = drawn
    ax.set_ylabel("cosine to exact gradient\n(parameters through a pair)")
    ax.set_ylim(top=1.02)
    ax.set_title("Gradient fidelity during training" + note)
    ax.legend(loc="lower left", fontsize=5)
    return fig


def time_to_target_bars(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Training seconds to the target accuracy per configuration; 'never' where no run reached it."""
    data = summary[summary.target_acc.notna() & (summary.ok > 0)]
    if data.empty:
        return "time to target: no configuration has a target (trainer.target_acc / target_by_dataset)"
    data, note = _top(data, "target_s")
    labels = pair_labels(summary.loc[data.index])
    mean, err = _errors(data, "target_s")
    top = np.nanmax(mean + err[1]) if np.isfinite(mean).any() else 1.0
    _, colours = _styles(data)
    y = np.arange(len(data))
    fig, axes = _figure(height=0.6 + 0.2 * len(data))
    ax = axes[0, 0]
    ax.barh(y, np.nan_to_num(mean), xerr=err, color=[colours[str(b)] for b in data.backward], height=0.6,
            error_kw={"elinewidth": 0.6, "capsize": 1.5})
    for yi, (_, r), m in zip(y, data.iterrows(), mean):
        reached, ok = int(r.target_reached), int(r.ok)
        if reached == 0:
            ax.text(0, yi, f" never reached ({ok} runs)", va="center", fontsize=5.5, color="#D55E00")
        elif reached < ok:
            ax.text(m, yi, f" {reached}/{ok} reached", va="center", fontsize=5.5)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25 if np.isfinite(top) and top > 0 else 1.0)
    targets = ", ".join(f"{t * 100:g} %" for t in sorted(data.target_acc.unique()))
    ax.set_xlabel(f"training s to {targets} test acc.")
    ax.set_title("Time to target" + note)
    return fig


def dead_unit_curves(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Fraction of dead units (zero output on the whole probe batch) of the ReLU-like pairs against
    training step: mean over seeds, band min..max (SUGAR's dying-ReLU picture)."""
    drawn = _probe_curves(runs, summary, o, "fid_act_step", "fid_dead_fraction", scale=100, band=True)
    if drawn is None:
        return "dead units: no configuration has ReLU-like pairs with activation probes"
    fig, ax, note = drawn
    ax.set_ylabel("dead units (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("Dead units during training (band: min..max over seeds)" + note)
    ax.legend(loc="best", fontsize=5)
    return fig


def _weight_norms(group: pd.DataFrame, column: str) -> tuple[list[str], np.ndarray] | None:
    """(weight names, array runs x layers) of one configuration's gradient norms, or None."""
    rows = [(names, norms) for names, norms in zip(group["gn_param"], group[column])
            if isinstance(names, list) and isinstance(norms, list) and len(names) == len(norms)]
    if not rows:
        return None
    names = rows[0][0]
    keep = [i for i, n in enumerate(names) if n.endswith("weight")]
    stack = np.array([[norms[i] for i in keep] for n, norms in rows if n == names], dtype=float)
    return [names[i] for i in keep], stack


def layer_gradient_norms(runs: pd.DataFrame, summary: pd.DataFrame, o: SummaryOptions):
    """Gradient norm of every weight matrix against its depth (input first), at the first and the
    last probe: geometric mean over seeds, log scale. A vanishing gradient falls towards the input."""
    if "gn_param" not in runs.columns:
        return "layer gradient norms: no gradient-norm probes in these runs"
    ok = runs[runs.status == "ok"]
    shown, note = _top(summary, o.metric, 10)
    labels = dict(zip(summary.config_id, pair_labels(summary)))
    fig, axes = _figure(FULL_WIDTH_IN, 2.4, ncols=2)
    drawn = 0
    for k, cid in enumerate(shown.config_id):
        group = ok[ok.config_id == cid]
        for ax, column in ((axes[0, 0], "gn_norm_first"), (axes[0, 1], "gn_norm_last")):
            found = _weight_norms(group, column)
            if found is None or found[1].shape[1] < 2:
                continue
            with np.errstate(divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a layer with no finite norm in any seed: NaN, not drawn
                mean = np.exp(np.nanmean(np.log(np.where(found[1] > 0, found[1], np.nan)), axis=0))
            ax.plot(np.arange(1, len(mean) + 1), mean, marker="o", markersize=2.5, color=OKABE_ITO[k % len(OKABE_ITO)],
                    linestyle="-" if k < len(OKABE_ITO) else "--", label=labels[cid] if ax is axes[0, 0] else None)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return "layer gradient norms: no run has per-layer gradient norms for two or more weight matrices"
    for ax, when in ((axes[0, 0], "start of training (first probe)"), (axes[0, 1], "end of training (last probe)")):
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("weight matrix (1 = input layer)")
        ax.set_ylabel("gradient norm")
        ax.set_title(when)
    axes[0, 0].legend(loc="best", fontsize=5)
    fig.suptitle("Per-layer gradient norms (geometric mean over seeds)" + note, fontsize=7.5)
    return fig


#: Figure name -> function; one file pair (PDF, PNG) each.
FIGURES: dict[str, Callable] = {
    "accuracy_vs_step_time": accuracy_vs_step_time,
    "accuracy_vs_memory": accuracy_vs_memory,
    "learning_curves": learning_curves,
    "accuracy_heatmap": accuracy_heatmap,
    "memory_bars": memory_bars,
    "grad_cosine": grad_cosine_curves,
    "time_to_target": time_to_target_bars,
    "dead_units": dead_unit_curves,
    "layer_grad_norms": layer_gradient_norms,
}


def save_figure(fig, stem: Path, formats=("pdf", "png")) -> list[Path]:
    """Write `fig` as stem.<format> with fixed metadata (no dates, no software version)."""
    paths = []
    for ext in formats:
        path = stem.with_suffix(f".{ext}")
        metadata = {"pdf": PDF_METADATA, "png": PNG_METADATA, "svg": {"Date": None, "Creator": None}}.get(ext)
        fig.savefig(path, format=ext, metadata=metadata)
        fig.set_layout_engine("none")  # laid out by the first save; the next formats reuse it
        paths.append(path)
    plt.close(fig)
    return paths


def save_figures(runs: pd.DataFrame, summary: pd.DataFrame, out: Path, options: SummaryOptions | None = None,
                 formats=("pdf", "png")) -> tuple[dict[str, list[Path]], list[str]]:
    """Draw every figure in FIGURES into `out`; returns ({name: paths}, [messages of skipped figures])."""
    o = options or SummaryOptions()
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = {}, []
    with plt.rc_context(STYLE):
        for name, draw in FIGURES.items():
            result = draw(runs, summary, o) if not summary.empty else f"{name}: no configuration"
            if isinstance(result, str):
                skipped.append(result)
                continue
            written[name] = save_figure(result, out / name, formats)
    return written, skipped


__all__ = ["FIGURES", "STYLE", "pareto_mask", "save_figure", "save_figures"]

"""Summary DataFrame -> one formatted table, rendered as Markdown, LaTeX (booktabs) and HTML.

One `Table` (headers, cell texts, which cells are bold, a caption) is built once and rendered per
format, so the three always agree. Every cell is plain text until a renderer escapes it for its
format (a `|` in a config value cannot shift Markdown columns; `<script>` stays text in HTML).
Labels are readable: a configuration shows only the parameters that differ between rows, and the
settings common to all rows go into the caption.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

from .summary import LABEL_GROUPS, SummaryOptions

# Config groups with the label columns that carry them in the summary (forward/backward always shown).
_ALWAYS = ("forward", "backward")
_LABEL_EXTRA = ("trainer",)


@dataclass
class Table:
    """A rendered-agnostic table: `rows[i][j]` is plain text; `bold` holds (i, j) of best values."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)
    align: list[str] = field(default_factory=list)  # "l" or "r" per column
    title: str = ""


# ---------------------------------------------------------------------------- labels


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt_value(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def config_labels(table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Label columns per row (a group shown where it differs between rows, with only the
    parameters that differ) and {group: label} of the settings shared by every row."""
    labels, common = pd.DataFrame(index=table.index), {}
    for group in LABEL_GROUPS + _LABEL_EXTRA:
        name_col = f"cfg.{group}.name"
        params = sorted(c for c in table.columns if c.startswith(f"cfg.{group}.") and c != name_col)
        names = table[name_col].map(repr) if name_col in table else pd.Series("", index=table.index)
        # A parameter is shown where it differs between rows of the same name (rectangular(a=-1)
        # next to rectangular(a=-0.5)); a parameter only one name has is implied by the name.
        varying = [c for c in params if (table[c].map(repr).groupby(names).nunique() > 1).any()]
        names_vary = names.nunique() > 1
        # A model that ignores the configured forward (the GRU's own sigmoid/tanh gates, a model with
        # no activation) carries what it really uses in the runs table's label: show that label.
        own = group == "forward" and group in table and table[group].notna().any()
        overridden = own and any(isinstance(label, str) and not label.startswith(str(name))
                                 for label, name in zip(table[group], table.get(name_col, table[group])))
        if not varying and not names_vary and not overridden and group not in _ALWAYS:
            if group in table and table[group].notna().any():
                common[group] = str(table[group].dropna().iloc[0])
            continue
        if group == "trainer" and not varying:
            continue
        texts = []
        for _, row in table.iterrows():
            name = row.get(name_col) if name_col in table else None
            ps = ", ".join(f"{c.split('.', 2)[2]}={_fmt_value(row[c])}" for c in varying if not _is_missing(row[c]))
            base = "" if _is_missing(name) else str(name)
            if overridden and isinstance(row[group], str) and not row[group].startswith(base):
                texts.append(row[group])
                continue
            texts.append(f"{base}({ps})" if ps and base else (ps or base or "–"))
        labels[group] = texts
    return labels, common


# ---------------------------------------------------------------------------- number formats


def _na(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(v, digits: int = 3, scale: float = 1.0) -> str:
    """A number with `digits` decimals ('–' for missing)."""
    return "–" if _na(v) else f"{v * scale:.{digits}f}"


def fmt_sig(v, sig: int = 3) -> str:
    """A number with `sig` significant digits, no exponent for ordinary sizes ('–' for missing)."""
    if _na(v):
        return "–"
    if v == 0:
        return "0"
    digits = max(sig - 1 - int(math.floor(math.log10(abs(v)))), 0)
    return f"{v:.{digits}f}"


def fmt_p(p) -> str:
    """A p-value: '<0.001' below 0.001, else 3 decimals."""
    if _na(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_interval(row, prefix: str, scale: float = 1.0, digits: int = 1) -> str:
    """'64.1 ± 2.3' for a t-interval, '64.1 [61.2, 66.0]' for a bootstrap, '64.1' for n = 1."""
    mean, low, high, method = row[f"{prefix}_mean"], row[f"{prefix}_low"], row[f"{prefix}_high"], row[f"{prefix}_ci"]
    if _na(mean):
        return "–"
    text = f"{mean * scale:.{digits}f}"
    if _na(low):
        return text
    if method == "bootstrap":
        return f"{text} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"
    return f"{text} ± {(high - low) / 2 * scale:.{digits}f}"


def _runs_cell(row) -> str:
    extra = [f"{int(row[s])} {s}" for s in ("diverged", "failed", "interrupted") if row[s]]
    if row["stale"]:
        extra.append(f"{int(row['stale'])} stale")
    return f"{int(row['ok'])}/{int(row['runs'])}" + (f" ({', '.join(extra)})" if extra else "")


def _target_cell(row, prefix: str, digits: int) -> str:
    if _na(row["target_acc"]):
        return "no target"
    reached, ok = int(row["target_reached"]), int(row["ok"])
    if reached == 0:
        return f"never (0/{ok})"
    return f"{fmt_interval(row, prefix, 1.0, digits)} ({reached}/{ok})"


# ---------------------------------------------------------------------------- the summary table


def summary_table(summary: pd.DataFrame, options: SummaryOptions | None = None, missing: int = 0) -> Table:
    """The comparison a reviewer reads: labels, counts, accuracy with CI, the difference to the
    baseline with tests and verdict, time to target, speed and memory ratios, gradient fidelity."""
    o = options or SummaryOptions()
    labels, common = config_labels(summary)
    pct = o.metric.endswith("_acc")
    scale, unit = (100.0, " %") if pct else (1.0, "")
    columns: list[tuple[str, str, list[str], str | None]] = []  # header, align, cells, best-direction metric
    for group in labels.columns:
        columns.append((group, "l", list(labels[group]), None))
    rows = [r for _, r in summary.iterrows()]
    columns += [
        ("runs ok", "r", [_runs_cell(r) for r in rows], None),
        (f"{o.metric}{unit}", "r", [fmt_interval(r, o.metric, scale, 1 if pct else 3) for r in rows], o.metric),
        ("CI", "l", [str(r[f"{o.metric}_ci"]) for r in rows], None),
    ]
    if o.metric != "best_test_acc":
        columns.append(("best acc %", "r", [fmt_interval(r, "best_test_acc", 100.0, 1) for r in rows], "best_test_acc"))
    columns += [
        (f"Δ vs {o.baseline}{' (points)' if pct else ''}", "r",
         [("–" if _na(r["diff_mean"]) else (f"{r['diff_mean'] * scale:+.1f}" if _na(r["diff_low"]) else
           f"{r['diff_mean'] * scale:+.1f} [{r['diff_low'] * scale:+.1f}, {r['diff_high'] * scale:+.1f}]")) for r in rows], None),
        ("p Welch (Holm)", "r", [fmt_p(r["p_welch_holm"]) for r in rows], None),
        ("p MW (Holm)", "r", [fmt_p(r["p_mw_holm"]) for r in rows], None),
        ("verdict", "l", [str(r["verdict"]) for r in rows], None),
        ("time to target s", "r", [_target_cell(r, "target_s", 2) for r in rows], "target_s"),
        ("steps to target", "r", [_target_cell(r, "target_step", 0) for r in rows], "target_step"),
        ("step ms", "r", [fmt_sig(r["step_ms_mean"]) for r in rows], "step_ms"),
        ("× base time", "r", [fmt(r["step_ratio"], 2) for r in rows], None),
        ("samples/s", "r", [fmt(r["samples_per_s_mean"], 0) for r in rows], "samples_per_s"),
        ("saved MB", "r", [fmt_sig(r["model_saved_bytes_mean"] / 1e6 if not _na(r["model_saved_bytes_mean"]) else None) for r in rows], "model_saved_bytes"),
        ("× native", "r", [fmt(r["memory_vs_native_mean"], 2) for r in rows], None),
        ("grad cos (pairs)", "r", [("flat" if r["flat"] is True and _na(r["grad_cos_pairs_mean"]) else fmt(r["grad_cos_pairs_mean"], 3)) for r in rows], "grad_cos_pairs"),
        ("min layer cos", "r", [("flat" if r["flat"] is True and _na(r["grad_cos_min_layer_mean"]) else fmt(r["grad_cos_min_layer_mean"], 3)) for r in rows], "grad_cos_min_layer"),
        ("dead frac", "r", [fmt(r["dead_fraction_mean"], 3) for r in rows], "dead_fraction"),
    ]
    from .summary import METRICS

    bold: set[tuple[int, int]] = set()
    for j, (_, _, _, metric) in enumerate(columns):
        if metric is None or f"{metric}_mean" not in summary:
            continue
        values = summary[f"{metric}_mean"].astype(float)
        if values.notna().sum() < 2:
            continue
        higher = METRICS.get(metric, ("", True))[1]
        best = values.max() if higher else values.min()
        for i, v in enumerate(values):
            if not math.isnan(v) and v == best:
                bold.add((i, j))
    headers = [c[0] for c in columns]
    body = [[c[2][i] for c in columns] for i in range(len(rows))]
    return Table(headers=headers, rows=body, bold=bold, align=[c[1] for c in columns],
                 caption=summary_caption(o, common, missing), title="Summary per configuration")


def summary_caption(o: SummaryOptions, common: dict[str, str], missing: int = 0) -> str:
    """What the table shows and how, with every threshold's value."""
    shared = "; ".join(f"{k}: {v}" for k, v in common.items())
    r = o.rule
    return (
        f"{'Common to all rows: ' + shared + '. ' if shared else ''}"
        f"Mean over the ok runs of each configuration (seeds pooled; diverged, failed, interrupted and stale runs "
        f"are counted in 'runs ok'), with {int(o.level * 100)} % confidence intervals: t-interval (± half-width) for "
        f"n < 5, percentile bootstrap ([low, high], {o.n_boot} resamples, seed {o.seed}) for n ≥ 5; column CI names it. "
        f"Δ: difference of means to the baseline ({o.baseline} of the same forward, dataset, model and optimizer), "
        f"Welch t-interval or bootstrap; p: Welch t-test and Mann-Whitney U (only where n can reach p < {r.alpha}), "
        f"Holm-adjusted across this table. Verdict: matches = Δ CI inside ±{r.margin:g} and not significant at "
        f"alpha {r.alpha}; better/worse = significant; inconclusive (n too small) below {r.min_n} runs a side. "
        f"Time to target: training seconds (steps only) and steps to the first evaluation at the target accuracy, "
        f"over the runs that reached it (reached/ok; 'never' when none did). Saved MB: bytes the whole model keeps "
        f"for backward (deduplicated by storage, parameters excluded); × native: over the same model with torch's "
        f"own activation. grad cos: cosine to the exact-derivative gradient at the end of training over the "
        f"parameters whose gradient passes through a pair ('flat': the exact gradient is zero), and the lowest "
        f"layer. Best value per column in bold."
        + (f" {missing} grid cells have no record (listed separately)." if missing else "")
    )


def runs_table_view(runs: pd.DataFrame, limit: int | None = None) -> Table:
    """One row per run: identity, status, accuracy, speed, memory, both gradient cosines, error."""
    cols = [("run", "run_id", str), ("status", "status", str), ("dataset", "dataset", str), ("model", "model", str),
            ("forward", "forward", str), ("backward", "backward", str), ("optimizer", "optimizer", str), ("seed", "seed", _fmt_value),
            ("config", "config_id", str), ("final acc %", "final_test_acc", lambda v: fmt(v, 1, 100)),
            ("best acc %", "best_test_acc", lambda v: fmt(v, 1, 100)), ("time to target s", "target_s", lambda v: fmt(v, 2)),
            ("step ms", "step_ms", fmt_sig), ("saved MB", "model_saved_bytes", lambda v: fmt_sig(None if _na(v) else v / 1e6)),
            ("grad cos (pairs)", "grad_cos_pairs", lambda v: fmt(v, 3)),
            ("grad cos (all parameters)", "grad_cos_all", lambda v: fmt(v, 3)),
            ("stale", "stale", lambda v: "–" if v is None or _na(v) else ("yes" if v else "no")),
            ("error", "error_message", lambda v: "" if _na(v) else str(v)[:200])]
    view = runs if limit is None else runs.head(limit)
    # Column by column over plain lists: 10,000 runs format in well under a second.
    columns = [[("–" if (f is str and _na(v)) else f(v)) for v in view[c].tolist()] for _, c, f in cols]
    rows = [list(r) for r in zip(*columns)] if len(view) else []
    return Table(headers=[c[0] for c in cols], rows=rows, align=["l"] * len(cols), title="Runs",
                 caption="One row per run. 'grad cos (all parameters)' includes layers no activation touches "
                         "(e.g. the output layer), so it overstates fidelity; 'grad cos (pairs)' is the headline figure.")


def frame_table(df: pd.DataFrame, title: str = "", caption: str = "") -> Table:
    """Any small DataFrame as a Table (missing cells, failures)."""
    rows = [["–" if _na(v) else _fmt_value(v) for v in r] for r in df.itertuples(index=False)]
    return Table(headers=[str(c) for c in df.columns], rows=rows, align=["l"] * len(df.columns), title=title, caption=caption)


# ---------------------------------------------------------------------------- renderers


def escape_markdown(text: str) -> str:
    """One cell of a Markdown table: pipes escaped, no newlines, no raw HTML."""
    return (html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " "))


def to_markdown(t: Table) -> str:
    """GitHub-flavoured Markdown table, best values in bold, caption below."""
    def cell(i, j, text):
        text = escape_markdown(text)
        return f"**{text}**" if (i, j) in t.bold else text
    align = t.align or ["l"] * len(t.headers)
    lines = ["| " + " | ".join(escape_markdown(h) for h in t.headers) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(cell(i, j, v) for j, v in enumerate(row)) + " |" for i, row in enumerate(t.rows)]
    if t.caption:
        lines += ["", escape_markdown(t.caption)]
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                  "±": r"$\pm$", "×": r"$\times$", "Δ": r"$\Delta$", "–": "--", "≥": r"$\geq$", "≤": r"$\leq$"}


def escape_latex(text: str) -> str:
    """Text safe inside a LaTeX table cell (special characters and the few Unicode signs used)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch if ord(ch) < 128 else "?") for ch in str(text))


def to_latex(t: Table, label: str = "tab:summary") -> str:
    """A booktabs table (needs \\usepackage{booktabs}); best values in \\textbf."""
    align = "".join(t.align or ["l"] * len(t.headers))
    def cell(i, j, text):
        text = escape_latex(text)
        return rf"\textbf{{{text}}}" if (i, j) in t.bold else text
    lines = [r"\begin{table*}[t]", r"\centering", r"\scriptsize", rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(escape_latex(h) for h in t.headers) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(i, j, v) for j, v in enumerate(row)) + r" \\" for i, row in enumerate(t.rows)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if t.caption:
        lines.append(rf"\caption{{{escape_latex(t.caption)}}}")
    lines += [rf"\label{{{label}}}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


def latex_document(body: str) -> str:
    """A minimal standalone document around a table, for `pdflatex`."""
    return ("\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
            "\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n")


def to_html(t: Table, table_id: str = "", sortable: bool = True) -> str:
    """An HTML <table> (every cell escaped); `sortable` adds the class the page's script sorts by."""
    def cell(i, j, text):
        text = html.escape(str(text))
        return f"<td class=\"{'num' if (t.align and t.align[j] == 'r') else ''}\">{'<strong>' + text + '</strong>' if (i, j) in t.bold else text}</td>"
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    parts = [f"<table{ident} class=\"{'sortable' if sortable else ''}\">"]
    if t.caption:
        parts.append(f"<caption>{html.escape(t.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.headers) + "</tr></thead>")
    parts.append("<tbody>")
    parts += ["<tr>" + "".join(cell(i, j, v) for j, v in enumerate(row)) + "</tr>" for i, row in enumerate(t.rows)]
    parts.append("</tbody></table>")
    return "\n".join(parts)


__all__ = ["Table", "config_labels", "escape_latex", "escape_markdown", "frame_table", "latex_document",
           "runs_table_view", "summary_table", "to_html", "to_latex", "to_markdown"]

"""One self-contained HTML page: summary (sortable), figures, per-run table, gaps and failures,
the sweep's configuration and provenance.

Self-contained: images are embedded as base64 PNG data, the style and the sorting script are
inline, and nothing refers to the network. Every string that comes from a config or a record
goes through `html.escape` (tables via `tables.to_html`), so a value such as
`<script>alert(1)</script>` is shown as text.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from .tables import Table, frame_table, to_html

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:12px;margin:.5em 0;display:block;overflow-x:auto}
caption{caption-side:bottom;text-align:left;color:#555;font-size:11px;padding:.4em 0;max-width:1200px}
th,td{border-bottom:1px solid #e4e4e4;padding:3px 6px;white-space:nowrap;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4;position:sticky;top:0}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#aaa}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top;max-width:46%}
figure.wide{max-width:94%}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:11px;color:#555}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:11px;max-height:30em}
.note{color:#555;font-size:12px}
"""

# Sorting by column: numbers numerically (the first number in a cell), else as text.
_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('thead th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute('data-asc') !== 'true';
      table.querySelectorAll('thead th').forEach(function(h){ h.removeAttribute('data-asc'); });
      th.setAttribute('data-asc', asc);
      function key(r){ var t = r.cells[col].textContent.trim(); var m = t.match(/^[-+]?\\d*\\.?\\d+(e[-+]?\\d+)?/i);
        return m ? [0, parseFloat(m[0])] : [1, t.toLowerCase()]; }
      rows.sort(function(a, b){ var x = key(a), y = key(b);
        var c = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0); return asc ? c : -c; });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _image(path: Path, alt: str, wide: bool = False) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure class="{"wide" if wide else ""}"><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(alt)}</figcaption></figure>")


def _provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """Distinct values of the provenance columns (versions, commit, machine, kernel ISA)."""
    cols = [c for c in runs.columns if c.startswith("env.")] + ["code_hash", "harness_version"]
    rows = []
    for c in cols:
        if c in runs:
            values = sorted({str(v) for v in runs[c].dropna()})
            rows.append({"field": c.removeprefix("env."), "values": "; ".join(values) if values else "–",
                         "runs": int(runs[c].notna().sum())})
    return pd.DataFrame(rows)


def _sweep_config(runs: pd.DataFrame) -> pd.DataFrame:
    """The parameter columns with the values the sweep used (one row per parameter)."""
    rows = []
    for c in sorted(c for c in runs.columns if c.startswith("cfg.")):
        values = sorted({json.dumps(v) if isinstance(v, (list, dict)) else str(v) for v in runs[c].dropna()})
        rows.append({"parameter": c.removeprefix("cfg."), "values": ", ".join(values[:20]) + (" ..." if len(values) > 20 else ""),
                     "distinct": len(values)})
    return pd.DataFrame(rows)


def build_page(*, title: str, summary_table: Table, runs_table: Table, runs: pd.DataFrame,
               figures: dict[str, list[Path]], skipped_figures: list[str], missing: pd.DataFrame,
               problems: list[str], source: str, command: str) -> str:
    """The whole page as one string (see the module docstring)."""
    failed = runs[runs.status.isin(["failed", "diverged", "interrupted"])]
    fail_view = failed[["run_id", "status", "forward", "backward", "dataset", "model", "seed", "error_type", "error_message", "path"]]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Source: <code>{html.escape(source)}</code>. Command: <code>{html.escape(command)}</code>. '
        f"{len(runs)} runs, {int((runs.status == 'ok').sum())} ok.</p>",
        "<h2>Summary</h2>", to_html(summary_table, "summary"),
        "<h2>Figures</h2>",
    ]
    for name, paths in figures.items():
        png = next((p for p in paths if p.suffix == ".png"), None)
        if png is not None:
            parts.append(_image(png, name.replace("_", " "), wide=name in ("learning_curves", "accuracy_heatmap")))
    if skipped_figures:
        parts.append("<p class=\"note\">Not drawn: " + "; ".join(html.escape(s) for s in skipped_figures) + "</p>")
    parts += ["<h2>Runs</h2>", to_html(runs_table, "runs")]
    parts.append("<h2>Missing, failed and skipped</h2>")
    parts.append(to_html(frame_table(fail_view, "Failed, diverged and interrupted runs",
                                     f"{len(failed)} runs did not finish ok; their errors as recorded."), "failed")
                 if len(failed) else "<p>No failed, diverged or interrupted runs.</p>")
    parts.append(to_html(frame_table(missing.head(500), "Missing grid cells",
                                     f"{len(missing)} cells of the grid (product of the values seen per axis) have no "
                                     "record" + (" (first 500 shown)" if len(missing) > 500 else "") + "."), "missing")
                 if len(missing) else "<p>No missing grid cells (grid: product of the values seen per axis).</p>")
    if problems:
        parts.append(f"<p>{len(problems)} records skipped:</p><pre>" + html.escape("\n".join(problems)) + "</pre>")
    parts += ["<h2>Configuration and provenance</h2>",
              to_html(frame_table(_sweep_config(runs), "Sweep configuration", "Values each parameter took in this sweep."), "config"),
              to_html(frame_table(_provenance(runs), "Provenance", "Versions, machine, commit and kernel instruction set, as recorded."), "provenance"),
              f"<script>{_JS}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


__all__ = ["build_page"]

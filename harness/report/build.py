"""Build every output of a report from a sweep folder (records) or a consolidated Parquet file.

Data flows one way: records (or `runs.parquet`) -> runs DataFrame (`harness.store.table`) ->
summary per configuration (`summary`) -> tables (`tables`), figures (`figures`), page (`page`).
Nothing here imports the trainer or torch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.store.table import read_parquet, runs_table, write_parquet

from .figures import save_figures
from .page import build_page
from .summary import SummaryOptions, apply_targets, missing_cells, summarize
from .tables import latex_document, runs_table_view, summary_table, to_latex, to_markdown

FORMATS = ("md", "tex", "csv", "html")


@dataclass
class Report:
    """What a build produced: the tables, where each file went, what was skipped and how long it took."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    files: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, list[Path]] = field(default_factory=dict)
    skipped_figures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: dict[str, float] = field(default_factory=dict)


def drop_duplicate_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per run key: a run recorded twice (a copied folder, a rerun kept next to the old
    record) would count as two seeds. The record that ended last is kept; each dropped one is
    named in the returned messages."""
    if runs.empty or runs.run_key.isna().all():
        return runs, []
    order = runs.sort_values(["run_key", "ended_at", "path"], na_position="first")
    dup = order.duplicated("run_key", keep="last")
    kept = order[~dup].set_index("run_key").path
    messages = [f"{r.path}: duplicate of run key {r.run_key}; kept {kept[r.run_key]}" for r in order[dup].itertuples()]
    return runs.drop(index=order[dup].index), messages


def load_runs(source: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Runs table from a folder of records or a `.parquet` file written by `write_parquet`, one
    row per run key, plus one message per skipped record."""
    source = Path(source)
    if source.is_file() and source.suffix == ".parquet":
        runs, problems = read_parquet(source), []
    else:
        runs, problems = runs_table(source)
    runs, duplicates = drop_duplicate_runs(runs)
    return runs.reset_index(drop=True), problems + duplicates


def build_report(source: str | Path, out: str | Path, options: SummaryOptions | None = None, *,
                 formats: tuple[str, ...] = FORMATS, targets: dict[str, float] | None = None,
                 figures: bool = True, command: str = "harness-report", runs: pd.DataFrame | None = None,
                 problems: list[str] | None = None) -> Report:
    """Read `source`, write the requested formats (plus runs.parquet and figures) into `out`.

    `runs`/`problems` may be passed when the caller has already loaded them (the source is then
    only named on the page).
    """
    o = options or SummaryOptions()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clock = {"start": time.perf_counter()}
    if runs is None:
        runs, problems = load_runs(source)
    problems = list(problems or [])
    clock["load"] = time.perf_counter()
    runs = apply_targets(runs, targets or {})
    summary = summarize(runs, o)
    missing = missing_cells(runs)
    clock["summary"] = time.perf_counter()
    table = summary_table(summary, o, missing=len(missing))
    markdown = to_markdown(table)
    report = Report(runs=runs, summary=summary, markdown=markdown, problems=problems, missing=missing)
    files = report.files
    files["parquet"] = write_parquet(runs, out / "runs.parquet")
    if "md" in formats:
        files["md"] = out / "summary.md"
        files["md"].write_text(markdown + "\n")
    if "tex" in formats:
        files["tex"] = out / "summary.tex"
        body = to_latex(table)
        files["tex"].write_text(body)
        (out / "summary_standalone.tex").write_text(latex_document(body))
    if "csv" in formats:
        files["csv"] = out / "summary.csv"
        summary.drop(columns=["context"], errors="ignore").to_csv(files["csv"], index=False)
        files["missing"] = out / "missing.csv"
        missing.to_csv(files["missing"], index=False)
    if problems:
        files["problems"] = out / "skipped_records.txt"
        files["problems"].write_text("\n".join(problems) + "\n")
    if figures:
        report.figures, report.skipped_figures = save_figures(runs, summary, out / "figures", o)
    clock["figures"] = time.perf_counter()
    if "html" in formats:
        files["html"] = out / "report.html"
        page = build_page(title=f"harness report: {Path(source).name}", summary_table=table,
                          runs_table=runs_table_view(runs), runs=runs, figures=report.figures,
                          skipped_figures=report.skipped_figures, missing=missing, problems=problems,
                          source=str(source), command=command)
        files["html"].write_text(page, encoding="utf-8")
    clock["end"] = time.perf_counter()
    report.seconds = {"load": clock["load"] - clock["start"], "summary": clock["summary"] - clock["load"],
                      "figures": clock["figures"] - clock["summary"], "total": clock["end"] - clock["start"]}
    return report


__all__ = ["FORMATS", "Report", "build_report", "load_runs"]

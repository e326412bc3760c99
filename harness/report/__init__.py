"""`harness-report`: records (or their Parquet) -> runs DataFrame -> statistics per configuration
against a baseline -> Markdown, LaTeX, CSV tables, paper figures and one self-contained HTML page.
See harness/report/README.md for the statistical choices."""
from .build import Report, build_report, load_runs
from .summary import Baseline, SummaryOptions, summarize

__all__ = ["Baseline", "Report", "SummaryOptions", "build_report", "load_runs", "summarize"]

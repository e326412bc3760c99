"""Aggregate run records into tables with confidence intervals across seeds."""
from .aggregate import load_runs, summarize_runs

__all__ = ["load_runs", "summarize_runs"]

"""`harness-report DIR`: aggregate the records under DIR into a table (markdown, CSV, Parquet)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .aggregate import load_runs, summarize_runs, to_markdown


def main(argv: list[str] | None = None) -> int:
    """Print the summary table; write runs.parquet, summary.csv and summary.md into DIR/report."""
    parser = argparse.ArgumentParser(prog="harness-report", description=__doc__)
    parser.add_argument("directory", type=Path, help="a sweep folder (searched recursively for record.json)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: DIR/report)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    args = parser.parse_args(argv)
    if not args.directory.exists():
        print(f"harness-report: {args.directory} does not exist", file=sys.stderr)
        return 2
    runs, problems = load_runs(args.directory)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if runs.empty:
        print(f"harness-report: no valid record.json under {args.directory}", file=sys.stderr)
        return 1
    table = summarize_runs(runs, args.level)
    out = args.out or args.directory / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs.to_parquet(out / "runs.parquet", index=False)
    table.to_csv(out / "summary.csv", index=False)
    markdown = to_markdown(table, args.level)
    (out / "summary.md").write_text(markdown + "\n")
    print(markdown)
    failed = runs[runs.status == "failed"]
    for row in failed.itertuples():
        print(f"failed: {row.backward} seed={row.seed}: {row.error}", file=sys.stderr)
    print(f"\n{len(runs)} runs ({(runs.status == 'ok').sum()} ok); tables in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

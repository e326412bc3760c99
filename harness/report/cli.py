"""`harness-report DIR`: the comparison a reviewer accepts, from a sweep folder or its Parquet.

Prints the Markdown summary and where every output went: summary.md, summary.tex (booktabs),
summary.csv, runs.parquet, figures/*.pdf|png and report.html (one self-contained page).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .build import FORMATS, build_report, load_runs
from .stats import VerdictRule
from .summary import Baseline, SummaryOptions


def _targets(items: list[str]) -> dict[str, float]:
    targets = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            acc = float(value)
        except ValueError:
            acc = None
        if not sep or not name or acc is None or not 0 <= acc <= 1:
            raise ValueError(f"--target must be DATASET=ACCURACY with accuracy in [0, 1] (e.g. mnist1d=0.6), got {item!r}")
        targets[name] = acc
    return targets


def parser() -> argparse.ArgumentParser:
    """The command line (documented in --help)."""
    p = argparse.ArgumentParser(prog="harness-report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path, help="a sweep folder (searched recursively for record.json) or a runs .parquet file")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: DIR/report)")
    p.add_argument("--baseline", default="backward=exact", help="GROUP=NAME compared against (default backward=exact: "
                   "the exact rule of the same forward, dataset, model and optimizer)")
    p.add_argument("--metric", default="final_test_acc", help="runs-table column compared (default final_test_acc)")
    p.add_argument("--format", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)} (default all)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of every interval (default 0.95)")
    p.add_argument("--margin", type=float, default=0.01, help="'matches' when the difference's CI is inside +-margin "
                   "(metric units; default 0.01 = 1 accuracy point)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm's correction (default 0.05)")
    p.add_argument("--min-n", type=int, default=3, help="fewer ok runs a side: 'inconclusive (n too small)' (default 3)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for n >= 5 (default 2000)")
    p.add_argument("--target", action="append", default=[], metavar="DATASET=ACC",
                   help="recompute time to target from the curves at this accuracy (repeatable)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (tables and page only)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the report; 0 on success, 1 when there is nothing valid to report, 2 on bad arguments."""
    args = parser().parse_args(argv)
    if not args.directory.exists():
        print(f"harness-report: {args.directory} does not exist", file=sys.stderr)
        return 2
    try:
        formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise ValueError(f"--format: unknown {', '.join(bad)}; choose from {', '.join(FORMATS)}")
        if not 0 < args.level < 1 or not 0 < args.alpha < 1 or args.margin < 0 or args.min_n < 1 or args.bootstrap < 100:
            raise ValueError("--level and --alpha must be in (0, 1), --margin >= 0, --min-n >= 1, --bootstrap >= 100")
        options = SummaryOptions(metric=args.metric, baseline=Baseline.parse(args.baseline), level=args.level,
                                 rule=VerdictRule(margin=args.margin, alpha=args.alpha, min_n=args.min_n), n_boot=args.bootstrap)
        targets = _targets(args.target)
    except ValueError as exc:
        print(f"harness-report: {exc}", file=sys.stderr)
        return 2
    runs, problems = load_runs(args.directory)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if runs.empty:
        print(f"harness-report: no valid record.json under {args.directory}", file=sys.stderr)
        return 1
    out = args.out or (args.directory.parent if args.directory.is_file() else args.directory) / "report"
    command = "harness-report " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        report = build_report(args.directory, out, options, formats=formats, targets=targets,
                              figures=not args.no_figures, command=command, runs=runs, problems=problems)
    except ValueError as exc:
        print(f"harness-report: {exc}", file=sys.stderr)
        return 2
    print(report.markdown)
    for message in report.skipped_figures:
        print(f"figure skipped: {message}", file=sys.stderr)
    if len(report.missing):
        print(f"{len(report.missing)} grid cells have no record (missing.csv)", file=sys.stderr)
    runs = report.runs
    for row in runs[runs.status == "failed"].itertuples():
        print(f"failed: {row.forward}/{row.backward} seed={row.seed}: {row.error_message}", file=sys.stderr)
    n_fig = sum(len(v) for v in report.figures.values())
    print(f"\n{len(runs)} runs ({int((runs.status == 'ok').sum())} ok, {len(problems)} records skipped); "
          f"{len(report.summary)} configurations; {n_fig} figure files in {out / 'figures'}", file=sys.stderr)
    for kind, path in report.files.items():
        print(f"{kind}: {path}", file=sys.stderr)
    if "html" in report.files:
        print(f"HTML report: {report.files['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

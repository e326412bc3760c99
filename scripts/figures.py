"""`make figures`: regenerate every committed report table and figure under results/ from the
committed runs (Parquet), so a README number or figure can always be rebuilt.

    python scripts/figures.py [--check]

For each results/<name>/runs.parquet it writes results/<name>/report/ (summary.md, summary.tex,
summary.csv, figures/*.pdf|png, report.html). Output is byte-stable: run it twice and git sees no
change (`--check` fails when a regeneration changed a committed file).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.report.build import build_report, load_runs  # noqa: E402


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} if folder.exists() else {}


def main(argv: list[str] | None = None) -> int:
    """Rebuild the report of every results/*/runs.parquet; 1 with --check when something changed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="folder holding <name>/runs.parquet")
    parser.add_argument("--check", action="store_true", help="fail if regenerating changed any file")
    args = parser.parse_args(argv)
    sources = sorted(args.results.glob("*/runs.parquet"))
    if not sources:
        print(f"figures: no */runs.parquet under {args.results}", file=sys.stderr)
        return 1
    changed = []
    for source in sources:
        out = source.parent / "report"
        before = _digest(out)
        # The page names its source relative to the repository, so it does not depend on the checkout's path.
        runs, problems = load_runs(source)
        shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
        report = build_report(shown, out, runs=runs, problems=problems, command="python scripts/figures.py")
        after = _digest(out)
        changed += [f"{out}/{k}" for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
        print(f"{source.parent.name}: {len(report.runs)} runs, {len(report.summary)} configurations -> {out}")
    if args.check and changed:
        print("changed by regeneration:\n  " + "\n  ".join(changed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`harness-store DIR`: what a store holds, what failed and why, and one Parquet file of all runs.

    harness-store multirun/quick                 # counts by status, failures with their overrides
    harness-store multirun/quick --parquet runs.parquet
    harness-store multirun/quick --sweep         # also 'missing': runs the sweep planned but never recorded

Counts: ok, diverged, failed, interrupted, and stale (a result made by other result-determining
code, see harness/store/keys.py; still reported, rerun with `+rerun=stale`). `--sweep` reads the
sweep's plan (`<sweep dir>/.harness/plan.json`) to count the planned runs with no record.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .keys import code_hash
from .layout import is_stale
from .record import RecordError, find_records, load_record

STATUS_ORDER = ("ok", "diverged", "failed", "interrupted", "stale", "missing")


def overrides_of(record: dict) -> str:
    """The semantic parts of a record's config as `key=value` strings (to rerun or find it)."""
    cfg = record.get("config") or {}
    parts = []
    for group in ("forward", "backward", "dataset", "model", "optimizer"):
        node = cfg.get(group)
        if isinstance(node, dict) and "name" in node:
            parts.append(f"{group}={node['name']}")
    parts.append(f"seed={cfg.get('seed')}")
    return " ".join(parts)


def status_report(root: str | Path, plan: dict | None = None) -> tuple[Counter, list[tuple[Path, dict]], list[str]]:
    """(counts by status, failed/interrupted records with their paths, unreadable files)."""
    counts: Counter[str] = Counter()
    failures, problems = [], []
    current = code_hash()
    seen_keys = set()
    for path in find_records(root):
        try:
            record = load_record(path)
        except RecordError as exc:
            problems.append(str(exc))
            continue
        status = record["status"]
        counts[status] += 1
        seen_keys.add((record.get("identity") or {}).get("run_key"))
        if status in ("ok", "diverged") and is_stale(record, current):
            counts["stale"] += 1
        if status in ("failed", "interrupted"):
            failures.append((path, record))
    if plan is not None:
        counts["missing"] = sum(1 for key in plan.get("to_run", []) if key not in seen_keys)
    return counts, failures, problems


def main(argv: list[str] | None = None) -> int:
    """Print counts and failures; write the consolidated Parquet when asked. Exit 1 if any run failed."""
    parser = argparse.ArgumentParser(prog="harness-store", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="a store or sweep folder (searched recursively for record.json)")
    parser.add_argument("--parquet", type=Path, default=None, help="write every run as one row of this Parquet file")
    parser.add_argument("--sweep", action="store_true", help="count planned runs with no record (reads <dir>/.harness/plan.json)")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"harness-store: {args.directory} is not a folder", file=sys.stderr)
        return 2
    plan = None
    if args.sweep:
        plan_path = args.directory / ".harness" / "plan.json"
        try:
            plan = json.loads(plan_path.read_text())
        except (OSError, ValueError) as exc:
            print(f"harness-store: --sweep needs {plan_path} (written by harness-run -m): {exc}", file=sys.stderr)
            return 2
    counts, failures, problems = status_report(args.directory, plan)
    total = sum(counts[s] for s in ("ok", "diverged", "failed", "interrupted"))
    print(f"{args.directory}: {total} runs: " + ", ".join(f"{counts[s]} {s}" for s in STATUS_ORDER if counts[s] or s in ("ok", "failed")))
    for path, record in failures:
        err = record.get("error") or {}
        message = (err.get("message") or record["status"]).splitlines()[0][:300]
        print(f"  {record['status'].upper()} {overrides_of(record)}\n    {err.get('type', '')}: {message}\n    {path}")
    for problem in problems:
        print(f"  UNREADABLE {problem}")
    if args.parquet is not None:
        from .table import runs_table, write_parquet

        frame, skipped = runs_table(args.directory)
        write_parquet(frame, args.parquet)
        print(f"wrote {len(frame)} runs ({len(frame.columns)} columns) to {args.parquet}"
              + (f"; {len(skipped)} records skipped" if skipped else ""))
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())

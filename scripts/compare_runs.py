"""Compare chosen configurations of a runs table, where the report's one baseline per row is not
the comparison a claim needs (e.g. a step network against a smooth sigmoid one).

    python scripts/compare_runs.py results/troiano_step_sign/runs.parquet \\
        --against forward=sigmoid,backward=exact --select forward=step

Each configuration matched by --select (runs table columns, `col=value` joined by commas; values
compare as text) is set against the one configuration matched by --against: mean over the ok
seeds with its 95 % interval, the difference of means with its interval (harness.report.stats:
bootstrap for n >= 5, else t), Welch's p, Holm-adjusted over the printed rows, and the report's
verdict (matches / better / worse / inconclusive, margin 1 point). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from harness.report.stats import difference_interval, holm, mean_interval, verdict, welch_p  # noqa: E402
from harness.store.table import read_parquet  # noqa: E402


def parse_filter(text: str) -> dict[str, str]:
    """'forward=step,backward=ste' -> {'forward': 'step', 'backward': 'ste'}; a clear error otherwise."""
    out = {}
    for part in (p for p in text.split(",") if p):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SystemExit(f"compare_runs: '{part}' in '{text}' is not column=value")
        out[key.strip()] = value.strip()
    return out


def matching(runs: pd.DataFrame, wanted: dict[str, str]) -> pd.DataFrame:
    """Rows whose columns equal every wanted value (compared as text); unknown columns are an error."""
    missing = [k for k in wanted if k not in runs.columns]
    if missing:
        raise SystemExit(f"compare_runs: no column {', '.join(missing)}; columns include forward_name, rule, model, "
                         "cfg.<group>.<key>, scheduler, optimizer")
    mask = pd.Series(True, index=runs.index)
    for key, value in wanted.items():
        mask &= runs[key].astype(str) == value
    return runs[mask]


def compare(runs: pd.DataFrame, against: dict[str, str], select: dict[str, str], metric: str,
            group_by: list[str]) -> tuple[list[dict], object, int]:
    """One row per configuration in `select` (grouped by `group_by`) against the `against` runs,
    plus the reference's mean interval and run count."""
    base = matching(runs, against)
    if base.empty:
        raise SystemExit(f"compare_runs: no ok run matches --against {against}")
    b = base[metric].to_numpy(dtype=float)
    rows = []
    for key, group in matching(runs, select).groupby(group_by, sort=True, dropna=False):
        if group.index.isin(base.index).all():
            continue  # the baseline itself
        a = group[metric].to_numpy(dtype=float)
        rows.append({"config": key if isinstance(key, tuple) else (key,), "n": len(a), "mean": mean_interval(a),
                     "diff": difference_interval(a, b), "p": welch_p(a, b)})
    for row, p_adj in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = p_adj
        row["verdict"] = verdict(row["diff"], p_adj, row["n"], len(b))
    return rows, mean_interval(b), len(b)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a runs.parquet (harness-store --parquet)")
    parser.add_argument("--against", required=True, help="the reference configuration, e.g. forward=tanh,backward=exact")
    parser.add_argument("--select", default="", help="configurations to compare (default: every other one)")
    parser.add_argument("--metric", default="final_test_acc")
    parser.add_argument("--by", default="forward,backward", help="columns that name a configuration (default forward,backward)")
    args = parser.parse_args(argv)
    runs = read_parquet(args.runs)
    runs = runs[runs.status == "ok"]
    by = [c for c in args.by.split(",") if c]
    rows, base, n_base = compare(runs, parse_filter(args.against), parse_filter(args.select), args.metric, by)
    print(f"reference {args.against}: {base.mean * 100:.1f} [{base.low * 100:.1f}, {base.high * 100:.1f}] % (n = {n_base})\n")
    print("| " + " | ".join(by) + " | n | mean % (95 % CI) | difference (points) | p Welch (Holm) | verdict |")
    print("|" + "---|" * len(by) + "---:|---:|---:|---:|---|")
    for r in rows:
        m, d = r["mean"], r["diff"]
        print("| " + " | ".join(map(str, r["config"])) + f" | {r['n']} | {m.mean * 100:.1f} [{m.low * 100:.1f}, {m.high * 100:.1f}] | "
              f"{d.mean * 100:+.1f} [{d.low * 100:+.1f}, {d.high * 100:+.1f}] | {r['p_holm']:.3g} | {r['verdict']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

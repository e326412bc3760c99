"""Compare settings each at its own tuned hyperparameter: tune on validation, compare on test.

    python scripts/tuned_comparison.py results/snr_jamming/runs.parquet \\
        --tune cfg.optimizer.lr --arm scheduler --reference "constant" --within rule

For every group (`--within`, e.g. the backward rule) and arm (`--arm`, e.g. the schedule), the
value of `--tune` (e.g. the learning rate) with the best mean validation accuracy
(`--select-metric`, default final_val_acc) is chosen; then each arm's test accuracy (`--metric`)
at its chosen value is compared with the reference arm's at *its* chosen value: mean with 95 %
interval, difference with interval, Welch's p (Holm-adjusted over the printed rows), verdict.
The test split never takes part in the choice, so the comparison is fair to both arms.
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


def tuned(runs: pd.DataFrame, within: str, arm: str, tune: str, select_metric: str) -> pd.DataFrame:
    """One row per (within, arm): the chosen value and the runs at it."""
    for column in (within, arm, tune, select_metric):
        if column not in runs.columns:
            raise SystemExit(f"tuned_comparison: no column {column!r} in the runs table")
    means = runs.groupby([within, arm, tune])[select_metric].mean().rename("select_mean").reset_index()
    best = means.loc[means.groupby([within, arm])["select_mean"].idxmax()]
    return best.reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    """Print the per-arm choice and the comparison with the reference arm."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--tune", required=True, help="column tuned per arm, e.g. cfg.optimizer.lr")
    parser.add_argument("--arm", required=True, help="column whose values are compared, e.g. scheduler")
    parser.add_argument("--reference", required=True, help="the arm value the others are compared with")
    parser.add_argument("--within", default="rule", help="column grouping independent comparisons (default rule)")
    parser.add_argument("--select-metric", default="final_val_acc")
    parser.add_argument("--metric", default="final_test_acc")
    args = parser.parse_args(argv)
    runs = read_parquet(args.runs)
    runs = runs[runs.status == "ok"]
    choice = tuned(runs, args.within, args.arm, args.tune, args.select_metric)
    if not (choice[args.arm].astype(str) == args.reference).any():
        raise SystemExit(f"tuned_comparison: no arm {args.reference!r} in column {args.arm} "
                         f"(have: {', '.join(sorted(choice[args.arm].astype(str).unique()))})")

    def at_choice(row) -> pd.Series:
        sel = runs[(runs[args.within] == row[args.within]) & (runs[args.arm] == row[args.arm]) & (runs[args.tune] == row[args.tune])]
        return sel[args.metric].astype(float)

    rows = []
    for group, arms in choice.groupby(args.within, sort=True):
        ref = arms[arms[args.arm].astype(str) == args.reference].iloc[0]
        b = at_choice(ref).to_numpy()
        for _, r in arms.iterrows():
            a = at_choice(r).to_numpy()
            is_ref = str(r[args.arm]) == args.reference
            rows.append({"group": group, "arm": r[args.arm], "value": r[args.tune], "select": r["select_mean"],
                         "n": len(a), "mean": mean_interval(a), "diff": None if is_ref else difference_interval(a, b),
                         "p": None if is_ref else welch_p(a, b), "n_ref": len(b)})
    compared = [r for r in rows if r["p"] is not None]
    for r, p_adj in zip(compared, holm([r["p"] for r in compared])):
        r["p_holm"], r["verdict"] = p_adj, verdict(r["diff"], p_adj, r["n"], r["n_ref"])
    print(f"| {args.within} | {args.arm} | chosen {args.tune} | {args.select_metric} (mean) | n | {args.metric} % (95 % CI) "
          f"| difference to {args.reference} (points) | p Welch (Holm) | verdict |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        m = r["mean"]
        diff = "–" if r["diff"] is None else f"{r['diff'].mean * 100:+.1f} [{r['diff'].low * 100:+.1f}, {r['diff'].high * 100:+.1f}]"
        p = "–" if r["p"] is None else f"{r['p_holm']:.3g}"
        print(f"| {r['group']} | {r['arm']} | {r['value']:g} | {r['select'] * 100:.1f} | {r['n']} | "
              f"{m.mean * 100:.1f} [{m.low * 100:.1f}, {m.high * 100:.1f}] | {diff} | {p} | {r.get('verdict', 'reference')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

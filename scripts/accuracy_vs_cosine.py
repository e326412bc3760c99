"""Does accuracy follow the gradient's direction? One figure and one test over every claim.

    python scripts/accuracy_vs_cosine.py [--results results] [--out results/accuracy_vs_cosine]

Troiano et al.'s claim is that magnitudes are redundant *if the direction survives*. Every
committed claim whose runs have a defined gradient cosine to the exact derivative (smooth
forwards: sigmoid, tanh, relu, gelu, silu) gives, per configuration, the mean cosine at the end
of training (parameters whose gradient passes through a pair) and the difference of its mean
test accuracy to the exact rule of the same experiment, forward and setting (the report's
baseline). Writes summary.md (Spearman's rank correlation per claim and pooled, with p values)
and accuracy_vs_cosine.png|pdf (difference against cosine, one marker per claim).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from harness.report.summary import SummaryOptions, summarize  # noqa: E402
from harness.store.table import read_parquet  # noqa: E402

MIN_POINTS = 4  # configurations a claim needs for its own correlation


def claim_points(name: str, runs: pd.DataFrame) -> pd.DataFrame:
    """(claim, configuration label, cosine, difference to exact in points) per non-baseline
    configuration with a defined cosine and a baseline to compare with."""
    summary = summarize(runs, SummaryOptions())
    out = []
    for _, r in summary[summary.baseline_id.notna() & ~summary.is_baseline.astype(bool)].iterrows():
        cos, diff = r.get("grad_cos_pairs_mean"), r.get("diff_mean")
        if pd.notna(cos) and pd.notna(diff):
            out.append({"claim": name, "config": f"{r['forward']} / {r['backward']}", "cosine": float(cos),
                        "difference_points": float(diff) * 100})
    return pd.DataFrame(out)


def correlation(points: pd.DataFrame) -> tuple[float, float, int]:
    """Spearman's rho and its two-sided p over the points (nan below MIN_POINTS)."""
    if len(points) < MIN_POINTS:
        return float("nan"), float("nan"), len(points)
    rho, p = stats.spearmanr(points.cosine, points.difference_points)
    return float(rho), float(p), len(points)


def main(argv: list[str] | None = None) -> int:
    """Collect the points of every claim, print and write the table, draw the figure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "accuracy_vs_cosine")
    parser.add_argument("--exclude", default="quick", help="comma-separated result folders that are not claims (default quick)")
    args = parser.parse_args(argv)
    frames = []
    excluded = set(args.exclude.split(","))
    for source in sorted(p for p in args.results.glob("*/runs.parquet") if p.parent.name not in excluded):
        runs = read_parquet(source)
        frames.append(claim_points(source.parent.name, runs))
    points = pd.concat([f for f in frames if not f.empty], ignore_index=True) if frames else pd.DataFrame()
    if points.empty:
        print("accuracy_vs_cosine: no configuration with a gradient cosine and a baseline", file=sys.stderr)
        return 1
    lines = ["| claim | configurations | Spearman rho (cosine vs accuracy difference) | p |", "|---|---:|---:|---:|"]
    for claim, group in points.groupby("claim", sort=True):
        rho, p, n = correlation(group)
        lines.append(f"| {claim} | {n} | {rho:+.2f} | {p:.3g} |" if n >= MIN_POINTS else f"| {claim} | {n} | – | – |")
    rho, p, n = correlation(points)
    lines.append(f"| **all claims pooled** | {n} | {rho:+.2f} | {p:.3g} |")
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    listing = ["| claim | configuration | cosine | accuracy - exact (points) |", "|---|---|---:|---:|"]
    listing += [f"| {r.claim} | {r.config} | {r.cosine:.3f} | {r.difference_points:+.1f} |" for r in points.itertuples()]
    (args.out / "summary.md").write_text(table + "\n" + "\n".join(listing) + "\n")
    draw(points, args.out / "accuracy_vs_cosine")
    print(table)
    return 0


def draw(points: pd.DataFrame, stem: Path) -> None:
    """Accuracy difference to exact against the gradient cosine, one colour and marker per claim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.figures import MARKERS, OKABE_ITO, STYLE, save_figure

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(3.3, 2.6))
        for k, (claim, group) in enumerate(points.groupby("claim", sort=True)):
            ax.scatter(group.cosine, group.difference_points, s=12, color=OKABE_ITO[k % len(OKABE_ITO)],
                       marker=MARKERS[(k + k // len(OKABE_ITO)) % len(MARKERS)], label=claim)  # colour repeats after 8: marker differs
        ax.axhline(0.0, color="#666666", linewidth=0.6, linestyle="--")
        ax.set_xlabel("gradient cosine to the exact derivative (end of training)")
        ax.set_ylabel("test accuracy − exact rule (points)")
        rho, p, n = correlation(points)
        ax.set_title(f"Does accuracy follow the gradient direction?\nSpearman ρ = {rho:+.2f} (p = {p:.2g}, n = {n})")
        ax.legend(loc="lower right", fontsize=5)
        save_figure(fig, stem)


if __name__ == "__main__":
    sys.exit(main())

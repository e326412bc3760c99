"""Claim 1: our MNIST-1D test accuracies against the published single numbers (Greydanus 2020).

    .venv/bin/python results/mnist1d_baselines/vs_published.py

Reads results/mnist1d_baselines/runs.parquet (ok runs only) and prints, per model, the mean over
seeds with its 95 % t-interval, the difference to the published accuracy and a two-sided
one-sample t-test of "mean = published" (the published figures come without a spread, so they
are treated as fixed values).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy import stats

PUBLISHED = {"logistic": 32.0, "mlp": 68.0, "cnn1d": 94.0, "gru": 91.0}  # test accuracy %, Greydanus 2020


def main() -> None:
    """Print one Markdown row per model found in the consolidated runs."""
    runs = pd.read_parquet(Path(__file__).with_name("runs.parquet"))
    runs = runs[runs["status"] == "ok"]
    print("| model | n | ours % (mean, 95 % t-CI) | published % | difference (points) | p (one-sample t) |")
    print("|---|---:|---:|---:|---:|---:|")
    for model, group in runs.groupby("model"):
        acc = group["final_test_acc"].to_numpy() * 100
        low, high = stats.t.interval(0.95, len(acc) - 1, loc=acc.mean(), scale=stats.sem(acc))
        pub = PUBLISHED[model]
        p = stats.ttest_1samp(acc, pub).pvalue
        print(f"| {model} | {len(acc)} | {acc.mean():.1f} [{low:.1f}, {high:.1f}] | {pub:.0f} | "
              f"{acc.mean() - pub:+.1f} | {p:.3f} |")


if __name__ == "__main__":
    main()

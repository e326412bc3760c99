"""Claim 7: training-step time and saved memory per family of pairs, against the native op.

    python scripts/speed_memory_families.py [--out results/speed_memory_families] [--repeats 30]

"Simplified activations translate to less overhead": for each family (exact, gates, smooth
surrogates, jamming, few-bit) one or two representative pairs train the MNIST-1D reference MLP
and CNN in a hand-written loop (harness.bench.macro.hand_candidate: index batching, forward,
loss, backward, foreach Adam), interleaved in random order with the same loop on torch's native
op of the same forward (nn.ReLU or nn.GELU), one thread. Reported per pair: the median of the
per-round time ratios pair / native (with the IQR of those ratios), and the bytes the whole model
keeps for backward on one training batch (harness.measure.count_saved: deduplicated by storage,
parameters excluded) over the native model's. Writes speed_memory.json, summary.md and
speed_memory.png|pdf into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from harness.activations import ActFactory  # noqa: E402
from harness.bench.macro import MODELS, hand_candidate, macro_model  # noqa: E402
from harness.bench.specs import parse_pair  # noqa: E402
from harness.bench.timing import interleaved_rounds, round_ratios  # noqa: E402
from harness.data import load_dataset  # noqa: E402
from harness.environment import environment  # noqa: E402
from harness.measure import count_saved, iqr, median, num_threads  # noqa: E402

#: (family, forward, rule spec); the reference of each is torch's native op of the same forward.
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("exact", "relu", "exact"),
    ("exact", "gelu", "exact"),
    ("gate", "relu", "rectangular"),
    ("gate", "relu", "constant"),
    ("smooth surrogate", "relu", "b_silu"),
    ("smooth surrogate", "relu", "nelu"),
    ("jamming", "relu", "positive_jam"),
    ("jamming", "relu", "full_jam"),
    ("few-bit", "gelu", "quantized:bits=1"),
    ("few-bit", "gelu", "quantized:bits=2"),
    ("few-bit", "gelu", "quantized:bits=4"),
)
NATIVE = {"relu": nn.ReLU, "gelu": nn.GELU}
BATCH = 100


def _factory(forward: str, spec: str) -> ActFactory:
    """An act factory for 'forward/spec', parsed as harness-bench --pairs parses it."""
    pair = parse_pair(f"{forward}/{spec}")
    return ActFactory(pair.forward, pair.rule, backward_params=dict(pair.params))


def saved_bytes(model_name: str, data, act) -> int:
    """Bytes the model keeps for backward on one training batch (pairs and everything else, the
    batch included, parameters excluded: the run records' metrics.memory.model convention)."""
    net = macro_model(model_name, data, act)
    # Copies: a slice of the training set would count the whole set's storage (deduplication is by storage).
    x, y = data.x_train[:BATCH].clone(), data.y_train[:BATCH].clone()
    saved = count_saved(lambda: F.cross_entropy(net(x), y), net)
    return saved.total - saved.bytes_of(net.parameters())


def measure_model(model_name: str, data, repeats: int, warmup: int) -> list[dict]:
    """Interleaved rounds of every pair and both native references on one model."""
    steps = MODELS[model_name].steps
    builders = {f"native/{f}": (lambda f=f: hand_candidate(model_name, data, NATIVE[f], steps, BATCH, False)) for f in NATIVE}
    for _, forward, spec in PAIRS:
        builders[f"{forward}/{spec}"] = (lambda f=forward, s=spec: hand_candidate(model_name, data, _factory(f, s), steps, BATCH, False))
    ready = {name: build() for name, build in builders.items()}
    samples = interleaved_rounds(ready, repeats=repeats, warmup=warmup)
    native_bytes = {f: saved_bytes(model_name, data, NATIVE[f]) for f in NATIVE}
    rows = []
    for family, forward, spec in PAIRS:
        name = f"{forward}/{spec}"
        ratios = round_ratios(samples[name], samples[f"native/{forward}"])
        pair_bytes = saved_bytes(model_name, data, _factory(forward, spec))
        rows.append({
            "model": model_name, "family": family, "pair": name, "native": f"native {forward}",
            "step_ms": median(samples[name]) / steps * 1e3, "native_step_ms": median(samples[f"native/{forward}"]) / steps * 1e3,
            "time_vs_native": median(ratios), "time_vs_native_iqr": iqr(ratios),
            "saved_bytes": pair_bytes, "native_saved_bytes": native_bytes[forward],
            "memory_vs_native": pair_bytes / native_bytes[forward],
        })
    return rows


def to_markdown(rows: list[dict]) -> str:
    head = ("| model | family | pair | step ms | native step ms | time × native (IQR) | saved KB | native KB | memory × native |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|\n")
    body = "".join(
        f"| {r['model']} | {r['family']} | {r['pair']} | {r['step_ms']:.3f} | {r['native_step_ms']:.3f} | "
        f"{r['time_vs_native']:.2f} ({r['time_vs_native_iqr']:.2f}) | {r['saved_bytes'] / 1e3:.1f} | "
        f"{r['native_saved_bytes'] / 1e3:.1f} | {r['memory_vs_native']:.2f} |\n" for r in rows)
    return head + body


def draw(rows: list[dict], stem: Path) -> None:
    """Time and memory ratios to the native op, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.figures import OKABE_ITO, STYLE, save_figure

    models = list(dict.fromkeys(r["model"] for r in rows))
    families = list(dict.fromkeys(r["family"] for r in rows))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(models), figsize=(6.9, 2.6), squeeze=False, sharey=True)
        for ax, model in zip(axes[0], models):
            for r in (r for r in rows if r["model"] == model):
                colour = OKABE_ITO[families.index(r["family"]) % len(OKABE_ITO)]
                ax.scatter(r["memory_vs_native"], r["time_vs_native"], color=colour, s=12)
                ax.annotate(r["pair"], (r["memory_vs_native"], r["time_vs_native"]), fontsize=4.5,
                            xytext=(2, 2), textcoords="offset points")
            ax.axhline(1.0, color="#666666", linewidth=0.6, linestyle="--")
            ax.axvline(1.0, color="#666666", linewidth=0.6, linestyle="--")
            ax.set_xlabel("saved memory × native")
            ax.set_title(f"MNIST-1D {model}: cost against the native op")
        axes[0, 0].set_ylabel("training-step time × native")
        for k, family in enumerate(families):
            axes[0, -1].scatter([], [], color=OKABE_ITO[k % len(OKABE_ITO)], s=12, label=family)
        axes[0, -1].legend(loc="upper right", fontsize=5)
        save_figure(fig, stem)


def main(argv: list[str] | None = None) -> int:
    """Measure every pair on the MLP and the CNN and write the table, JSON and figure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "speed_memory_families")
    parser.add_argument("--repeats", type=int, default=30, help="interleaved timed rounds per model (default 30)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", default="mlp,cnn1d", help="comma-separated macro models (default mlp,cnn1d)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown or args.repeats < 5:
        parser.error(f"--models must be among {', '.join(MODELS)} (got {', '.join(unknown)}); --repeats >= 5" if unknown
                     else f"--repeats must be at least 5 (got {args.repeats})")
    data = load_dataset("mnist1d", root=Path(os.environ.get("HARNESS_DATA", "data")))
    rows = []
    with num_threads(1):
        for model in models:
            print(f"[speed_memory] {model}: {len(PAIRS)} pairs + 2 native, {args.repeats} rounds", file=sys.stderr)
            rows += measure_model(model, data, args.repeats, args.warmup)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(torch.device("cpu"))
    doc = {"command": "python scripts/speed_memory_families.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "repeats": args.repeats, "batch_size": BATCH, "threads": 1, "loadavg": os.getloadavg(),
           "environment": {k: env.get(k) for k in ("torch", "cpu_model", "git_commit")}, "rows": rows}
    (args.out / "speed_memory.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "summary.md").write_text(to_markdown(rows))
    draw(rows, args.out / "speed_memory")
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Render a `harness-bench --json` document as the markdown tables used in README.md.

    python scripts/bench_table.py results/bench/cpu-2core-full.json [--shape flat] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.bench.macro import INTERVAL_LEVEL, REFERENCE, ratio_key  # noqa: E402


def fmt(value, spec=".2f"):
    """A number, or an en dash for missing values."""
    return "–" if value is None else format(value, spec)


def micro_table(doc: dict, shape: str, threads: str) -> str:
    """One row per pair: eager and compiled ratios, saved bytes per element, bandwidth fraction."""
    rows = {}
    for e in doc["entries"]:
        if e["shape"] != shape or e["threads"] != threads:
            continue
        row = rows.setdefault(e["pair"], {"entry": e})
        row[e["mode"]] = e["ratios"]
    lines = ["| pair | reference | x ref (eager) | x native ReLU | our exact / native exact | x ref (compiled) | bytes saved / element (native) | bandwidth / copy |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        e, eager, comp = row["entry"], row.get("eager") or {}, row.get("compile") or {}
        mem = e["memory"]
        lines.append(
            f"| {name} | {e['reference'].removeprefix('native:')} | {fmt(eager.get('vs_reference'))} | {fmt(eager.get('vs_native_relu'))} | "
            f"{fmt(eager.get('our_exact_vs_native_exact'))} | {fmt(comp.get('vs_reference'))} | "
            f"{fmt(mem.get('saved_bytes_per_element'), '.3g')} ({fmt(mem.get('reference_saved_bytes_per_element'), '.3g')}) | "
            f"{fmt(e['bandwidth'].get('fraction'))} |")
    return "\n".join(lines)


def macro_table(doc: dict) -> str:
    """Training steps/s of the macro benchmark, with each row's target, its ratio's 95 % interval
    (documents written before the intervals show a dash) and the status."""
    lines = ["| model | mode | candidate | steps/s | time vs hand-written native loop | (min/min) | time vs harness relu/exact "
             "| time vs harness native | target | 95% interval | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in doc.get("macro", []):
        r = e.get("ratios") or {}
        cells = [r.get(k) for k in ("vs_reference", "vs_reference_of_mins", "vs_harness_exact", "vs_harness_native")]
        rate = "-" if e.get("steps_per_s") is None else f"{e['steps_per_s']:.0f}"
        vs = e.get("target_vs", REFERENCE)
        against = "" if vs == REFERENCE else " x harness native"
        target = ("-" if not against else "noise floor" + against) if e.get("target") is None else f"<= {e['target']:.2f}{against}"
        lo_hi = (e.get("intervals") or {}).get(ratio_key(vs))
        interval = "-" if not lo_hi or target == "-" else f"{lo_hi[0]:.3f}-{lo_hi[1]:.3f}"
        if interval != "-" and e.get("interval_coverage", INTERVAL_LEVEL) < INTERVAL_LEVEL:
            interval += f" (min-max, {e['interval_coverage']:.1%})"  # too few rounds for the level
        lines.append(f"| {e['model']} | {e['mode']} | {e['candidate']} | {rate} | "
                     + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + f" | {target} | {interval} | {e['status']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", type=Path)
    parser.add_argument("--shape", default="flat")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    doc = json.loads(args.json.read_text())
    print(micro_table(doc, args.shape, args.threads))
    if doc.get("macro"):
        print()
        print(macro_table(doc))


if __name__ == "__main__":
    main()

"""`harness-bench`: the micro benchmark's command line (also `python -m harness.bench`).

    harness-bench [--pairs relu/rectangular relu/b_silu ...] [--quick] [--threads 1,all]
                  [--shapes flat,conv] [--compile] [--json OUT] [--compare BASELINE.json]
                  [--threshold 0.25] [--retries 2]
                  [--macro [--macro-only] [--macro-models mlp,cnn1d,mlp-1024] [--macro-modes eager,compile]
                   [--macro-repeats N] [--macro-flush-denormal]]

With --macro the macro rows (training steps, harness trainer vs a hand-written loop) are
measured too, stored under "macro" in the JSON and, with --compare, compared with the
baseline's "macro" rows the same way (key: candidate, model, threads, mode).

Exit status: 0 fine; 1 a pair's ratio stayed worse than the baseline by more than the
threshold after re-measuring; 2 bad arguments or an unreadable baseline.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any, Callable, TextIO

from harness.allocator import keep_freed_memory

from . import compare as cmp
from .macro import MODELS, MacroConfig, format_macro, quick_macro_config, restrict_macro, run_macro
from .micro import MIN_REPEATS, MicroConfig, quick_config, restrict, run_micro
from .results import (
    environment, format_notes, format_table, load_document, machine_kind, make_document, median_run_entries, write_document,
)
from .specs import DEFAULT_PAIRS, parse_pairs, parse_shapes, parse_threads

# A measurer turns a config into entries; the CLI's defaults are run_micro and run_macro. Tests inject fakes.
Measurer = Callable[..., list[dict[str, Any]]]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = argparse.ArgumentParser(
        prog="harness-bench",
        description="Micro benchmark of activation pairs: fwd+bwd time ratios vs native torch ops "
                    "(interleaved, medians), saved bytes per element, bandwidth; baseline regression check.",
    )
    p.add_argument("--pairs", nargs="+", metavar="SPEC", default=None,
                   help="pair specs 'forward/rule[:k=v,...]' (default: a representative set: %s)" % " ".join(DEFAULT_PAIRS))
    p.add_argument("--quick", action="store_true",
                   help="CI preset: flat shape only, fewer rounds (30) and a shorter warm-up")
    p.add_argument("--threads", default="1,all", help="thread settings, e.g. '1,all' (default) or '1'")
    p.add_argument("--shapes", default=None, help="shapes: flat (256x4096), conv (32x64x32x32), or NAME=AxB; "
                                                   "default flat,conv (flat with --quick)")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile'd pairs against native eager (compile time reported separately)")
    p.add_argument("--repeats", type=int, default=None, help=f"timed rounds (>= {MIN_REPEATS}; default 100, 30 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up rounds (default 10, 3 with --quick)")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat the whole measurement N times and keep, per entry, the run with the median ratio "
                        "(use 5 to make a baseline; default 1)")
    p.add_argument("--no-peers", action="store_true", help="skip the optional peers (freegrad, snntorch) even if installed")
    p.add_argument("--json", metavar="OUT", default=None, help="write the results as JSON to OUT")
    p.add_argument("--compare", metavar="BASELINE", default=None,
                   help="compare ratios with a baseline JSON; exit 1 if a pair got worse by more than --threshold")
    p.add_argument("--threshold", type=float, default=0.25, help="allowed relative worsening of a ratio (default 0.25)")
    p.add_argument("--compare-stat", choices=sorted(cmp.RATIO_FIELDS), default=cmp.DEFAULT_STAT,
                   help="which ratio --compare checks: 'min' = min(pair)/min(reference) over the same rounds "
                        "(default; robust to neighbours on shared machines), 'median' = median of per-round ratios")
    p.add_argument("--retries", type=int, default=2, help="re-measure a suspicious pair up to this many times (default 2)")
    p.add_argument("--macro", action="store_true",
                   help="also run the macro benchmark: training steps/s of the MNIST-1D MLP, CNN and a width-1024 "
                        "MLP, eager and compiled, harness trainer vs a hand-written native-ReLU loop (a few "
                        "minutes; with --quick: MLP and CNN eager, MLP compiled, about a minute)")
    p.add_argument("--macro-only", action="store_true",
                   help="run only the macro benchmark (implies --macro; --compare then checks the macro rows only)")
    p.add_argument("--macro-models", default=None, help=f"macro models, e.g. 'mlp,cnn1d' (known: {', '.join(MODELS)})")
    p.add_argument("--macro-modes", default=None, help="macro modes: eager and/or compile, e.g. 'eager'")
    p.add_argument("--macro-repeats", type=int, default=None,
                   help="macro rounds (default 11, 5 with --quick)")
    p.add_argument("--macro-flush-denormal", action="store_true",
                   help="run the macro benchmark with torch.set_flush_denormal(True): subnormals as 0, so a "
                        "rule whose gradients hold them is timed without the CPU's slow subnormal arithmetic")
    p.add_argument("--system-malloc", action="store_true",
                   help="keep glibc's default malloc thresholds (by default they are raised so that no candidate "
                        "page-faults fresh memory on each call; see harness/allocator.py)")
    p.add_argument("--machine-kind", default=None, help=f"name of this machine kind in the JSON (default {machine_kind()})")
    return p


def config_from_args(args: argparse.Namespace) -> MicroConfig:
    """Build and validate the MicroConfig; raises ValueError with a readable message."""
    pairs = tuple(args.pairs) if args.pairs else DEFAULT_PAIRS
    parse_pairs(pairs)  # fail before measuring anything, with the library's messages
    overrides: dict[str, Any] = {"pairs": pairs, "threads": tuple(parse_threads(args.threads)),
                                 "compile": args.compile, "peers": not args.no_peers}
    if args.shapes is not None:
        overrides["shapes"] = parse_shapes(args.shapes)
    if args.repeats is not None:
        if args.repeats < MIN_REPEATS:
            raise ValueError(f"--repeats must be >= {MIN_REPEATS} (medians of fewer rounds are too noisy to compare)")
        overrides["repeats"] = args.repeats
    if args.warmup is not None:
        if args.warmup < 0:
            raise ValueError("--warmup must be >= 0")
        overrides["warmup"] = args.warmup
    if not args.threshold > 0:
        raise ValueError("--threshold must be > 0 (e.g. 0.25 for 25%)")
    if args.retries < 0:
        raise ValueError("--retries must be >= 0")
    if args.runs < 1:
        raise ValueError("--runs must be >= 1")
    if args.quick:
        return quick_config(**overrides)
    return replace(MicroConfig(), **overrides)


def _names(text: str, flag: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"{flag} needs at least one name")
    return names


def macro_config_from_args(args: argparse.Namespace) -> MacroConfig | None:
    """The MacroConfig asked for (None without --macro); raises ValueError with a readable message."""
    if not (args.macro or args.macro_only):
        return None
    config = quick_macro_config() if args.quick else MacroConfig()
    models = _names(args.macro_models, "--macro-models") if args.macro_models else None
    modes = _names(args.macro_modes, "--macro-modes") if args.macro_modes else None
    if models or modes:  # every named model in every named mode (the preset's where one is not named)
        models = models or list(dict.fromkeys(m for m, _ in config.groups))
        modes = modes or list(dict.fromkeys(mode for _, mode in config.groups))
        config = replace(config, groups=tuple((m, mode) for mode in modes for m in models))  # validates names
    if args.macro_repeats is not None:
        if args.macro_repeats < 3:
            raise ValueError("--macro-repeats must be >= 3 (a median of fewer rounds is too noisy to compare)")
        config = replace(config, repeats=args.macro_repeats)
    if args.macro_flush_denormal:
        config = replace(config, flush_denormal=True)
    return config


def remeasure_macro_with(measurer: Measurer, config: MacroConfig, log: Callable[[str], None]):
    """The re-measurement callback for the macro rows: only the suspicious keys' (model, mode)
    groups, with twice (then three times, ...) the rounds."""

    def remeasure(keys: list[cmp.Key], attempt: int) -> list[dict[str, Any]]:
        """Fresh macro entries for `keys` (attempt 1, 2, ...: 2x, 3x, ... the rounds)."""
        groups = {(k[1], k[3]) for k in keys}
        narrowed = restrict_macro(config, groups, repeats=config.repeats * (attempt + 1))
        log(f"re-measuring {len(keys)} suspicious macro entr{'y' if len(keys) == 1 else 'ies'} "
            f"(attempt {attempt}, {narrowed.repeats} rounds): {', '.join(sorted(f'{m} {mode}' for m, mode in groups))}")
        wanted = set(keys)
        return [e for e in measurer(narrowed, log) if cmp.entry_key(e) in wanted]

    return remeasure


def remeasure_with(measurer: Measurer, config: MicroConfig, log: Callable[[str], None]):
    """The re-measurement callback for compare_with_retries: only the suspicious keys' pairs,
    shapes and thread settings, with twice (then three times, ...) the repeats, no peers, and
    compilation only when a compiled entry is suspicious."""

    def remeasure(keys: list[cmp.Key], attempt: int) -> list[dict[str, Any]]:
        """Fresh entries for `keys` (attempt 1, 2, ...: 2x, 3x, ... the rounds)."""
        pairs = list(dict.fromkeys(k[0] for k in keys))
        narrowed = restrict(config, pairs=pairs, shapes={k[1] for k in keys}, threads={k[2] for k in keys},
                            repeats=config.repeats * (attempt + 1))
        narrowed = replace(narrowed, peers=False, compile=any(k[3] == "compile" for k in keys))
        log(f"re-measuring {len(keys)} suspicious entr{'y' if len(keys) == 1 else 'ies'} "
            f"(attempt {attempt}, {narrowed.repeats} rounds): {', '.join(pairs)}")
        wanted = set(keys)
        return [e for e in measurer(narrowed, log) if cmp.entry_key(e) in wanted]

    return remeasure


def _repeat(runs: int, measure: Callable[[], list[dict[str, Any]]], log: Callable[[str], None],
            what: str) -> list[list[dict[str, Any]]]:
    """`runs` whole measurements (--runs), logged when there is more than one."""
    out = []
    for i in range(runs):
        if runs > 1:
            log(f"{what} run {i + 1}/{runs}")
        out.append(measure())
    return out


def _compare(args: argparse.Namespace, doc: dict[str, Any], key: str, what: str, baseline: list[dict[str, Any]],
             entries: list[dict[str, Any]], remeasure, out: TextIO) -> int:
    """Compare one section with the baseline, print the verdict, store it under doc[key]; the exit status."""
    comparisons = cmp.compare_with_retries(baseline, entries, remeasure, threshold=args.threshold,
                                           retries=args.retries, stat=args.compare_stat)
    print(f"\ncomparison of the {what} with {args.compare} (ratio vs reference, {cmp.ratio_field(args.compare_stat)}; "
          f"threshold {args.threshold:.0%}, retries {args.retries}):", file=out)
    print(cmp.format_comparison(comparisons, args.threshold), file=out)
    doc[key] = {"baseline": str(args.compare), "stat": args.compare_stat, "field": cmp.ratio_field(args.compare_stat),
                "threshold": args.threshold, "retries": args.retries, "results": [c.to_json() for c in comparisons]}
    return cmp.exit_code(comparisons)


def main(argv: list[str] | None = None, *, measurer: Measurer | None = None, macro_measurer: Measurer | None = None,
         out: TextIO | None = None) -> int:
    """Run the benchmark; returns the exit status (see module doc). `measurer` and
    `macro_measurer` replace run_micro and run_macro (tests)."""
    out = out or sys.stdout
    measurer = measurer or run_micro
    macro_measurer = macro_measurer or run_macro
    args = build_parser().parse_args(argv)

    def log(msg: str) -> None:
        """Progress and warnings go to stderr, so stdout holds only the tables."""
        print(f"[harness-bench] {msg}", file=sys.stderr, flush=True)

    try:
        config = config_from_args(args)
        macro_config = macro_config_from_args(args)
        baseline = load_document(args.compare) if args.compare else None
    except ValueError as exc:  # includes the library's UnknownNameError / ParameterError
        print(f"harness-bench: error: {exc}", file=sys.stderr)
        return 2

    env = environment()
    real = (macro_measurer is run_macro) if args.macro_only else (measurer is run_micro)  # tests inject fakes
    if real and not args.system_malloc:
        env["malloc"] = keep_freed_memory()
    kind = args.machine_kind or machine_kind()
    if baseline is not None and baseline.get("machine_kind") != kind:
        log(f"warning: baseline is for machine kind {baseline.get('machine_kind')!r}, this machine is {kind!r}; "
            "ratios may not be comparable")
    start = time.perf_counter()
    entries: list[dict[str, Any]] = []
    if not args.macro_only:
        entries = median_run_entries(_repeat(args.runs, lambda: measurer(config, log), log, "micro"), args.compare_stat)
        print(format_table(entries), file=out)
        print(format_notes(), file=out)
        compile_rows = [e for e in entries if e.get("compile_time_s") is not None]
        if compile_rows:
            seen: dict[str, float] = {}
            for e in compile_rows:
                seen.setdefault(f"{e['pair']} [{e['shape']}]", e["compile_time_s"])
            print("compile time (first fwd+bwd call, excluded from the timings): "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in seen.items()), file=out)
    elapsed = time.perf_counter() - start
    if not args.macro_only:
        print(f"measured in {elapsed:.1f} s", file=out)

    macro_entries: list[dict[str, Any]] = []
    if macro_config is not None:
        macro_start = time.perf_counter()
        macro_entries = median_run_entries(_repeat(args.runs, lambda: macro_measurer(macro_config, log), log, "macro"),
                                           args.compare_stat)
        print(f"\nmacro: training steps ({macro_config.threads} thread(s), {macro_config.repeats} interleaved rounds; "
              "ratios are medians of per-round time ratios; min = min/min over the rounds)", file=out)
        print(format_macro(macro_entries), file=out)
        print(f"macro measured in {time.perf_counter() - macro_start:.1f} s", file=out)
    # Made after both measurements, so that the document's loadavg_end is taken at the end of both.
    settings = {**config.to_json(), "runs": args.runs}
    doc = make_document(entries, settings, env, kind=kind, elapsed_s=round(elapsed, 2))
    if any((e.get("contention") or {}).get("contended") for e in entries):
        log("note: some multi-thread rows were measured under contention (all* in the table); "
            "for a baseline, rerun when the machine is quieter")
    if macro_config is not None:
        doc["macro"] = macro_entries
        doc["settings"]["macro"] = macro_config.to_json()
    status = 0
    if baseline is not None:
        if not args.macro_only:
            status = max(status, _compare(args, doc, "comparison", "pairs", baseline["entries"], entries,
                                          remeasure_with(measurer, config, log), out))
        if macro_config is not None:
            status = max(status, _compare(args, doc, "macro_comparison", "macro rows", baseline.get("macro") or [],
                                          macro_entries, remeasure_macro_with(macro_measurer, macro_config, log), out))
    if args.json:
        write_document(doc, args.json)
        print(f"wrote {args.json}", file=out)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

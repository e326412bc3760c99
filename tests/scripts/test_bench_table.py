"""scripts/bench_table.py: the README's macro table shows each row's target, interval and status."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.bench import macro

_SPEC = importlib.util.spec_from_file_location("bench_table", Path(__file__).resolve().parents[2] / "scripts" / "bench_table.py")
bench_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_table)


def _row(name: str, mode: str, ratios: dict, intervals: dict | None, status: str) -> dict:
    entry = macro._entry("mlp", mode, name, macro.MacroConfig(), 4)
    return dict(entry, ratios=ratios, intervals=intervals, status=status, steps_per_s=1000.0, error=None)


def test_macro_rows_carry_target_interval_and_status_and_old_documents_still_render():
    rows = [
        _row("harness/rectangular", "compile", {"vs_reference": 0.97, "vs_harness_native": 1.01},
             {"vs_reference": [0.9, 1.0], "vs_harness_native": [0.998, 1.022]}, "UNCLEAR"),
        _row(macro.NOISE_FLOOR, "compile", {"vs_reference": 0.99, "vs_harness_native": 0.994},
             {"vs_harness_native": [0.986, 1.005]}, "-"),
        _row("harness/exact", "eager", {"vs_reference": 1.005}, None, "PASS"),  # written before intervals
        _row(macro.REFERENCE, "eager", {"vs_reference": 1.0}, {"vs_reference": [1.0, 1.0]}, "-"),
        dict(_row("harness/exact", "eager", {"vs_reference": 1.01}, {"vs_reference": [0.99, 1.05]}, "UNCLEAR"),
             interval_coverage=0.9375),  # 5 rounds
    ]
    lines = bench_table.macro_table({"macro": rows}).splitlines()
    assert lines[0].count("|") == lines[2].count("|") == lines[6].count("|") == 12
    assert lines[6].endswith("| 0.990-1.050 (min-max, 93.8%) | UNCLEAR |")
    assert lines[2].endswith("| 1.010 | <= 1.00 x harness native | 0.998-1.022 | UNCLEAR |")
    assert lines[3].endswith("| noise floor x harness native | 0.986-1.005 | - |")
    assert lines[4].endswith("| <= 1.02 | - | PASS |")
    assert lines[5].endswith("| - | - | - |")  # the reference: no target, no interval shown

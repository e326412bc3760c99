"""The benchmark's JSON document (provenance + settings + entries) and its printed table.

Schema (version 1)::

    {
      "schema_version": 1,
      "benchmark": "micro",
      "created": ISO-8601 UTC time,
      "machine_kind": "cpu-2core",            # baseline file name: results/baselines/<kind>.json
      "environment": {python, torch, numpy, platform, cpu_model, cpu_count, affinity_cpus,
                      torch_num_threads, hostname, harness_version, git_commit, peers, loadavg_start,
                      loadavg_end},
      "settings": MicroConfig.to_json(),
      "elapsed_s": wall time of the run,
      "entries": [ one per (pair, shape, threads, mode), see micro.py ]
    }
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.environment import environment as base_environment
from harness.environment import usable_cpus

from .compare import DEFAULT_STAT, entry_key, entry_ratio
from .peers import PEERS

SCHEMA_VERSION = 1
REQUIRED_TOP = ("schema_version", "benchmark", "created", "machine_kind", "environment", "settings", "entries")
REQUIRED_ENTRY = ("pair", "kind", "mode", "shape", "dims", "threads", "num_threads", "saves", "reference",
                  "target", "status", "time_s", "ratios", "memory", "bandwidth")


def machine_kind() -> str:
    """'cpu-<N>core', N = CPUs this process may use: the name of the baseline file for this machine.

    Baselines are only comparable on machines of the same kind: same core count, and (by
    convention, see README) the same CPU family; add a suffix by hand (--machine-kind) otherwise.
    """
    return f"cpu-{usable_cpus()}core"


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment() -> dict[str, Any]:
    """Provenance of a benchmark: the run-record environment plus numpy, peers and load average."""
    return {
        **base_environment(torch.device("cpu")),
        "numpy": np.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "peers": {p.package: p.version() for p in PEERS},
        "loadavg_start": _loadavg(),
    }


def make_document(entries: list[dict[str, Any]], settings: dict[str, Any], env: dict[str, Any],
                  *, kind: str | None = None, elapsed_s: float | None = None) -> dict[str, Any]:
    """Assemble the JSON document of a run."""
    env = dict(env)
    env["loadavg_end"] = _loadavg()
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": "micro",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine_kind": kind or machine_kind(),
        "environment": env,
        "settings": settings,
        "elapsed_s": elapsed_s,
        "entries": entries,
    }


def validate_document(doc: Any, source: str = "document") -> dict[str, Any]:
    """Check the top-level keys, schema version and entry keys; raise ValueError saying what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in REQUIRED_TOP if k not in doc]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}; is this a harness-bench JSON file?")
    if doc["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"{source}: schema_version {doc['schema_version']!r}, this harness reads {SCHEMA_VERSION}; "
                         "refresh the baseline (see harness/bench/README.md)")
    if not isinstance(doc["entries"], list):
        raise ValueError(f"{source}: 'entries' must be a list")
    for i, entry in enumerate(doc["entries"]):
        lacking = [k for k in REQUIRED_ENTRY if k not in entry]
        if lacking:
            raise ValueError(f"{source}: entry {i} ({entry.get('pair', '?')}) lacks keys {lacking}")
    return doc


def load_document(path: str | Path) -> dict[str, Any]:
    """Read and validate a JSON file written by harness-bench."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"baseline file {str(path)!r} does not exist (see harness/bench/README.md to create one)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    return validate_document(doc, str(path))


def write_document(doc: dict[str, Any], path: str | Path) -> None:
    """Write the document as indented JSON (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")


def median_run_entries(runs: list[list[dict[str, Any]]], stat: str = DEFAULT_STAT) -> list[dict[str, Any]]:
    """Combine repeated runs: per key, the entry of the run with the median compared ratio (`stat`).

    Picking a whole entry (rather than averaging fields) keeps every entry internally consistent
    (its times, ratios and contention flag come from one measurement). Runs flagged as contended
    are only used when every run of that key was. Each entry gets
    `runs = {"stat": stat, "ratios": [ratio of run 1, run 2, ...], "picked": index}`. Used to make
    baselines that do not hinge on one lucky or unlucky run.
    """
    if len(runs) == 1:
        return runs[0]
    by_key: dict[tuple, list[dict[str, Any] | None]] = {}
    for i, entries in enumerate(runs):
        for e in entries:
            by_key.setdefault(entry_key(e), [None] * len(runs))[i] = e
    combined = []
    for key, found in by_key.items():
        measured = [(entry_ratio(e, stat), i) for i, e in enumerate(found) if e is not None and entry_ratio(e, stat) is not None]
        clean = [(r, i) for r, i in measured if not (found[i].get("contention") or {}).get("contended")]
        # Contended runs measure the neighbours (compare.py excuses them): when some runs were
        # clean, the baseline comes from those.
        measured = clean or measured
        if measured:
            measured.sort()
            pick = measured[(len(measured) - 1) // 2][1]  # lower median for an even count
        else:
            pick = next(i for i, e in enumerate(found) if e is not None)
        entry = dict(found[pick])
        entry["runs"] = {"stat": stat, "ratios": [entry_ratio(e, stat) if e is not None else None for e in found], "picked": pick}
        combined.append(entry)
    return combined


# --------------------------------------------------------------------------- table


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"


TABLE_HEADER = ("pair", "mode", "shape", "thr", "ms", "x ref", "ref", "x ref min", "x relu", "exact/nat",
                "B/elem (native)", "bw frac", "target", "")


def format_table(entries: list[dict[str, Any]]) -> str:
    """The human-readable results table (one row per entry).

    Columns: pair | mode | shape | threads | pair median ms | ratio vs its native reference
    (per-round median) | which reference | ratio of the fastest calls (what --compare checks by
    default) | ratio vs native ReLU | our exact / native exact of the
    same forward | saved bytes per element (native reference's) | bandwidth fraction of a copy |
    target | PASS/MISS.
    """
    rows = [TABLE_HEADER]
    for e in entries:
        r, mem, t = e["ratios"], e["memory"], e["time_s"].get("pair")
        rows.append((
            e["pair"], e["mode"], e["shape"], e["threads"] + ("*" if (e.get("contention") or {}).get("contended") else ""),
            _fmt(t["median"] * 1e3 if t else None, ".3f"),
            _fmt(r.get("vs_reference")), e["reference"].removeprefix("native:"), _fmt(r.get("vs_reference_of_mins")),
            _fmt(r.get("vs_native_relu")),
            _fmt(r.get("our_exact_vs_native_exact")),
            f"{_bytes(mem.get('saved_bytes_per_element'))} ({_bytes(mem.get('reference_saved_bytes_per_element'))})",
            _fmt((e["bandwidth"] or {}).get("fraction")),
            "-" if e["target"] is None else f"<={e['target']:.2f}",
            e["status"] + (f" ({e['error']})" if e.get("error") else ""),
        ))
    return _align(rows)


def _align(rows: list[tuple]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_notes() -> str:
    """Legend printed under the table."""
    return (
        "x ref: median over rounds of (pair time / native reference time), measured interleaved in the same\n"
        "  rounds; reference = native relu for rules storing nothing/bits/codes, native silu for rules storing x or y.\n"
        "x ref min: min(pair) / min(reference), the least disturbed calls; --compare checks this one by default.\n"
        "x relu: same as x ref, against native relu. exact/nat: our exact (same forward, backward=exact) / torch's own op.\n"
        "B/elem: bytes saved for backward per element (native reference in brackets).\n"
        "bw frac: (effective bytes / pair time) / (copy bytes / copy time); effective = x, y, grad_out, grad_in\n"
        "  + saved state read in backward (+ written in forward when it is a new tensor).\n"
        "thr 'all*': contended group (native relu at all threads > 1.5x its one-thread time in the same rounds:\n"
        "  another process holds a core); its ratios measure the neighbours too."
    )

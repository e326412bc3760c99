"""Benchmarks: the micro benchmark of one pair's fwd+bwd against native torch ops, and the
baseline regression check (the macro benchmark of training steps lives in `macro.py`).

- `specs.py`: pair-spec strings ('relu/quantized:bits=2,of=b_silu'), shapes, thread settings,
  the native reference of each pair and the targets.
- `timing.py`: interleaved rounds in a seeded random order, medians, IQRs, per-round ratios.
- `memory.py`: bytes saved for backward per element (saved_tensors_hooks).
- `micro.py`: the measurement (`run_micro`) and the entries it reports.
- `peers.py`: optional peers, timed when installed (PyPI `freegrad`, `snntorch`); neither is a
  dependency of the harness.
- `results.py`: JSON document (provenance, settings, entries) and the printed table.
- `compare.py`: ratio comparison with a baseline, re-measure-before-fail (pure functions).
- `cli.py`: `harness-bench` / `python -m harness.bench`. See README.md in this folder.
"""
from .compare import compare_entries, compare_with_retries
from .micro import MicroConfig, quick_config, run_micro
from .specs import DEFAULT_PAIRS, PairSpecError, parse_pair

__all__ = ["DEFAULT_PAIRS", "MicroConfig", "PairSpecError", "compare_entries", "compare_with_retries",
           "parse_pair", "quick_config", "run_micro"]

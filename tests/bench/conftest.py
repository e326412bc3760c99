"""Synthetic benchmark entries and a scriptable fake measurer, so comparison and retry logic are
tested without timing anything (the shared CI machine is too noisy for timed assertions)."""
from __future__ import annotations

from typing import Any, Callable

import pytest


def synthetic_entry(pair: str, ratio: float | None, *, shape: str = "flat", threads: str = "1",
                    mode: str = "eager", kind: str = "pair", contended: bool = False,
                    min_ratio: float | None = None) -> dict[str, Any]:
    """An entry with every schema key and the given ratio (min-based ratio too unless given)."""
    t = {"median": 1e-3, "iqr": 1e-5, "min": 9e-4, "n": 20}
    return {
        "pair": pair, "describe": pair, "kind": kind, "mode": mode, "shape": shape, "dims": [8, 64],
        "threads": threads, "num_threads": 1, "saves": "bits", "bits": 1, "reference": "native:relu",
        "target": 1.15, "status": "PASS", "error": None, "compile_time_s": None,
        "time_s": {"pair": t, "reference": t, "native_relu": t, "our_exact": t, "native_exact": t, "copy": t},
        # the same ratio under every statistic, unless a test asks for a different min-based one
        "ratios": {"vs_reference": ratio, "vs_reference_of_medians": ratio, "vs_native_relu": ratio,
                   "vs_reference_of_mins": ratio if min_ratio is None else min_ratio},
        "memory": {"saved_bytes_per_element": 0.125, "expected_bytes_per_element": 0.125},
        "bandwidth": {"effective_bytes": 1, "copy_bytes": 1, "fraction": 0.5},
        "contention": {"thread_scaling": 9.0 if contended else 0.6, "contended": contended, "one_thread_relu_s": t},
    }


class FakeMeasurer:
    """Returns entries for the configured pairs/shapes/threads; ratios come from `script`.

    `script(pair, call_index)` -> ratio, where call_index counts measurer calls from 0 (0 is the
    main run, 1.. are re-measurements). Every received config is kept in `configs`.
    """

    def __init__(self, script: Callable[[str, int], float]):
        self.script = script
        self.configs: list[Any] = []

    def __call__(self, config, log=None):
        call = len(self.configs)
        self.configs.append(config)
        return [
            synthetic_entry(pair, self.script(pair, call), shape=shape, threads=t.label)
            for shape in config.shapes for t in config.thread_settings() for pair in config.pairs
        ]


@pytest.fixture
def entry():
    """Factory for synthetic entries."""
    return synthetic_entry


@pytest.fixture
def fake_measurer():
    """Factory: fake_measurer(script) -> FakeMeasurer."""
    return FakeMeasurer

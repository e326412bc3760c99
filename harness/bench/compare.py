"""Regression check: compare the RATIOS of a run with a stored baseline (never absolute times).

A ratio (pair time / native reference time, measured interleaved in the same process) is far
more stable across load and clock changes than a time, so it can be compared between runs on
the same kind of machine (asv/pytest-benchmark compare medians; on a shared machine we compare
ratios, docs/DESIGN.md section 4).

Which ratio (`stat`):
- "min" (default): min(pair times) / min(reference times) over the same interleaved rounds.
  Noise on a shared machine only ever adds time (preemption, page-fault storms when a
  neighbour is busy), so the fastest call of each candidate is its least disturbed cost. On our
  2-core VM the median-based ratio of silu/exact moved from 3.7 to 6.0 between a quiet and a
  busy period while the min-based ratio stayed at 3.2-3.4; gating on medians failed 4 of 4 runs
  of unchanged code, gating on minimums 0 of 4 (see README.md).
- "median": the median of per-round ratios (the headline ratio of the table and the targets).

Per key (pair, shape, threads, mode):
- ok:           current / baseline - 1 <= threshold
- improved:     current / baseline - 1 < -threshold (consider refreshing the baseline)
- worse:        current / baseline - 1 > threshold, even after re-measuring (fails)
- error:        no ratio could be measured now (e.g. compile failed) but the baseline has one (fails)
- new:          measured now, absent from the baseline (reported, never fails)
- not measured: in the baseline, not measured in this run (e.g. a --quick run; never fails)
- contended:    stayed worse, but the current or the baseline measurement was flagged as
                contended (a multi-thread group whose native ReLU ran far slower than at one
                thread: another process held a core, micro.py). Reported, never fails: such
                ratios measure the neighbours, not the pair. The one-thread rows still gate.

A suspicious key (worse or error) is re-measured up to `retries` times, with more repeats, by a
caller-supplied function; it fails only if it stays suspicious in every attempt. All functions
here are pure apart from that injected callback, so they are tested on synthetic entries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

Key = tuple[str, str, str, str]  # (pair, shape, threads label, mode)

OK, IMPROVED, WORSE, ERROR, NEW, NOT_MEASURED = "ok", "improved", "worse", "error", "new", "not measured"
CONTENDED = "contended"
FAILING = (WORSE, ERROR)
# stat -> field of entry["ratios"] that is compared.
RATIO_FIELDS = {"min": "vs_reference_of_mins", "median": "vs_reference"}
DEFAULT_STAT = "min"


def entry_key(entry: dict[str, Any]) -> Key:
    """(pair, shape, threads, mode) of an entry: what identifies it across runs."""
    return (entry["pair"], entry["shape"], str(entry["threads"]), entry.get("mode", "eager"))


def ratio_field(stat: str) -> str:
    """The ratios field compared for `stat` ('min' or 'median')."""
    try:
        return RATIO_FIELDS[stat]
    except KeyError:
        raise ValueError(f"unknown comparison statistic {stat!r}; use one of {', '.join(RATIO_FIELDS)}") from None


def entry_ratio(entry: dict[str, Any], stat: str = DEFAULT_STAT) -> float | None:
    """The compared ratio of an entry (None when it could not be measured)."""
    return (entry.get("ratios") or {}).get(ratio_field(stat))


def entry_contended(entry: dict[str, Any]) -> bool:
    """True when the entry's thread group was flagged as contended."""
    return bool((entry.get("contention") or {}).get("contended"))


def comparable(entry: dict[str, Any]) -> bool:
    """The harness's own pairs and macro rows (training steps, harness/macro.py) gate CI; peers
    (other packages) are informational."""
    return entry.get("kind", "pair") in ("pair", "macro")


def classify(baseline: float | None, current: float | None, threshold: float) -> str:
    """Status of one key from its baseline ratio and its current ratio."""
    if baseline is None:
        return NEW
    if current is None:
        return ERROR
    change = current / baseline - 1.0
    if change > threshold:
        return WORSE
    if change < -threshold:
        return IMPROVED
    return OK


@dataclass
class Comparison:
    """One key's verdict; `attempts` holds the current ratio of the first run and of each retry."""

    key: Key
    baseline: float | None
    attempts: list[float | None] = field(default_factory=list)
    status: str = OK
    contended: bool = False  # the latest measurement was contended
    baseline_contended: bool = False

    @property
    def current(self) -> float | None:
        """The ratio of the latest attempt."""
        return self.attempts[-1] if self.attempts else None

    @property
    def change(self) -> float | None:
        """current / baseline - 1 (latest attempt)."""
        if self.baseline is None or self.current is None:
            return None
        return self.current / self.baseline - 1.0

    @property
    def failed(self) -> bool:
        """True when this key fails the check."""
        return self.status in FAILING

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (stored in the run's document under 'comparison')."""
        pair, shape, threads, mode = self.key
        return {"pair": pair, "shape": shape, "threads": threads, "mode": mode, "baseline": self.baseline,
                "attempts": list(self.attempts), "change": self.change, "status": self.status,
                "contended": self.contended, "baseline_contended": self.baseline_contended}


def compare_entries(baseline: Iterable[dict[str, Any]], current: Iterable[dict[str, Any]], threshold: float,
                    stat: str = DEFAULT_STAT) -> list[Comparison]:
    """Compare each current pair entry with the baseline entry of the same key."""
    ratio_field(stat)  # validate early
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0 (a fraction, 0.25 = 25% worse), got {threshold}")
    baseline = [e for e in baseline if comparable(e)]
    base = {entry_key(e): entry_ratio(e, stat) for e in baseline}
    base_contended = {entry_key(e) for e in baseline if entry_contended(e)}
    out: list[Comparison] = []
    seen: set[Key] = set()
    for entry in current:
        if not comparable(entry):
            continue
        key = entry_key(entry)
        seen.add(key)
        ratio = entry_ratio(entry, stat)
        b = base.get(key)
        status = NEW if key not in base else classify(b, ratio, threshold)
        if key in base and b is None:
            status = NEW  # the baseline could not measure it either: nothing to compare against
        out.append(Comparison(key, b, [ratio], status, entry_contended(entry), key in base_contended))
    for key, b in base.items():
        if key not in seen:
            out.append(Comparison(key, b, [], NOT_MEASURED, False, key in base_contended))
    return out


def suspects(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons to re-measure (worse or error)."""
    return [c for c in comparisons if c.status in FAILING]


def apply_remeasurement(comparisons: list[Comparison], entries: Iterable[dict[str, Any]], threshold: float,
                        stat: str = DEFAULT_STAT) -> None:
    """Record re-measured ratios for the suspects and re-classify them on the new ratio.

    A suspect whose key is absent from `entries` keeps its status (and records no attempt).
    """
    fresh = {entry_key(e): e for e in entries if comparable(e)}
    for comp in suspects(comparisons):
        if comp.key in fresh:
            ratio = entry_ratio(fresh[comp.key], stat)
            comp.attempts.append(ratio)
            comp.contended = entry_contended(fresh[comp.key])
            comp.status = classify(comp.baseline, ratio, threshold)


def excuse_contended(comparisons: list[Comparison]) -> None:
    """Turn a final 'worse' into 'contended' when either side was measured under contention."""
    for comp in comparisons:
        if comp.status == WORSE and (comp.contended or comp.baseline_contended):
            comp.status = CONTENDED


def compare_with_retries(
    baseline: Iterable[dict[str, Any]],
    current: Iterable[dict[str, Any]],
    remeasure: Callable[[list[Key], int], list[dict[str, Any]]],
    *,
    threshold: float = 0.25,
    retries: int = 2,
    stat: str = DEFAULT_STAT,
) -> list[Comparison]:
    """Compare, then re-measure suspects up to `retries` times: only a key that stays worse fails.

    `remeasure(keys, attempt)` returns fresh entries for (at least) those keys; `attempt` counts
    from 1, so the caller can raise the number of repeats.
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    comparisons = compare_entries(list(baseline), current, threshold, stat)
    for attempt in range(1, retries + 1):
        bad = suspects(comparisons)
        if not bad:
            break
        apply_remeasurement(comparisons, remeasure([c.key for c in bad], attempt), threshold, stat)
    excuse_contended(comparisons)
    return comparisons


def exit_code(comparisons: list[Comparison]) -> int:
    """0 when nothing failed, 1 when a pair stayed worse (or broke)."""
    return 1 if any(c.failed for c in comparisons) else 0


def format_comparison(comparisons: list[Comparison], threshold: float) -> str:
    """The comparison table: key, baseline ratio, current ratio(s), change, verdict."""
    header = ("pair", "mode", "shape", "thr", "baseline", "current", "change", "status")
    rows = [header]

    def f(v: float | None) -> str:
        """A ratio with two decimals, '-' for none."""
        return "-" if v is None else f"{v:.2f}"

    for c in comparisons:
        pair, shape, threads, mode = c.key
        current = " -> ".join(f(a) for a in c.attempts) if c.attempts else "-"
        change = "-" if c.change is None else f"{c.change:+.0%}"
        status = c.status.upper() if c.failed else c.status
        if len(c.attempts) > 1 and not c.failed:
            status += " (after retry)"
        rows.append((pair, mode, shape, threads, f(c.baseline), current, change, status))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [c for c in comparisons if c.failed]
    counts = {s: sum(c.status == s for c in comparisons) for s in (OK, IMPROVED, WORSE, ERROR, CONTENDED, NEW, NOT_MEASURED)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = (f"FAIL: {len(failed)} pair(s) worse than the baseline by more than {threshold:.0%} after retries"
               if failed else f"OK: no ratio worse than the baseline by more than {threshold:.0%}")
    if counts[CONTENDED]:
        verdict += (f"\nnote: {counts[CONTENDED]} multi-thread entr{'y' if counts[CONTENDED] == 1 else 'ies'} stayed worse "
                    "but were measured under contention (another process held a core); not counted as failures")
    return "\n".join(lines) + f"\n{summary}\n{verdict}"

"""The run record: one JSON file per run, written atomically, validated on load.

A record is the only thing a run leaves behind that later stages read (docs/DESIGN.md section 1):
the report is rebuilt from records alone, and a sweep resumes from the records on disk.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RECORD_NAME = "record.json"
STATUSES = ("ok", "diverged", "failed", "interrupted")

# key -> (allowed types, required when status is ok)
_TOP_LEVEL: dict[str, tuple[tuple[type, ...], bool]] = {
    "schema_version": ((int,), True),
    "status": ((str,), True),
    "run_id": ((str,), True),
    "config": ((dict,), True),
    "pair": ((dict,), False),
    "identity": ((dict,), False),  # run_key, config_id, code_hash, harness_version (harness/store/keys.py)
    "metrics": ((dict,), True),
    "curves": ((dict,), True),
    "diagnostics": ((dict,), True),
    "environment": ((dict,), True),
    "started_at": ((str,), True),
    "ended_at": ((str,), True),
    "error": ((dict, type(None)), True),
}
_OK_METRICS = ("final_test_acc", "best_test_acc", "speed", "memory", "params", "steps_done")


class RecordError(ValueError):
    """A record file that is missing, unreadable or does not follow the schema."""


def _jsonable(value: Any) -> Any:
    """Make values JSON-safe: non-finite floats become None (JSON has no NaN), tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    return value


def validate_record(record: Any, source: str = "record") -> dict:
    """Return `record` if it follows the schema, else raise RecordError listing every problem."""
    if not isinstance(record, dict):
        raise RecordError(f"{source}: a record must be a JSON object, got {type(record).__name__}")
    problems = []
    for key, (types, required) in _TOP_LEVEL.items():
        if key not in record:
            if required:
                problems.append(f"missing key {key!r}")
        elif not isinstance(record[key], types):
            problems.append(f"{key!r} must be {' or '.join(t.__name__ for t in types)}, got {type(record[key]).__name__}")
    if record.get("schema_version") not in (None, SCHEMA_VERSION) and isinstance(record.get("schema_version"), int):
        problems.append(f"schema_version {record['schema_version']} is not supported (this harness reads {SCHEMA_VERSION})")
    status = record.get("status")
    if isinstance(status, str) and status not in STATUSES:
        problems.append(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if status == "ok" and isinstance(record.get("metrics"), dict):
        missing = [k for k in _OK_METRICS if k not in record["metrics"]]
        if missing:
            problems.append(f"an ok record needs metrics {', '.join(missing)}")
    if status == "failed" and not record.get("error"):
        problems.append("a failed record needs an 'error' entry")
    curves = record.get("curves")
    if isinstance(curves, dict) and curves:
        lengths = {k: len(v) for k, v in curves.items() if isinstance(v, list)}
        if "step" in lengths and any(n != lengths["step"] for n in lengths.values()):
            problems.append(f"curves have different lengths: {lengths}")
    if problems:
        raise RecordError(f"{source} is not a valid run record: " + "; ".join(problems))
    return record


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_record(record: dict, directory: str | Path) -> Path:
    """Validate and write `record` to `directory/record.json` atomically (temp file, then rename)."""
    record = validate_record(_jsonable(record))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RECORD_NAME
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".record.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; shared cluster stores need group read
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_record(path: str | Path) -> dict:
    """Read and validate one record (a file, or a run directory holding record.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read record {path}: {exc}") from None
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path} is not valid JSON: {exc}") from None
    return validate_record(record, str(path))


def find_records(root: str | Path) -> list[Path]:
    """All record files under `root`, sorted."""
    return sorted(Path(root).rglob(RECORD_NAME))

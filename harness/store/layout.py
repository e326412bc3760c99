"""Where records live in a store, and how a run claims its place.

A record's place follows from its key alone: `<store>/<key[:2]>/<key>/record.json`, with a
`label` file beside it naming the run for people (`relu-rectangular_mnist1d_mlp_s0`). Nothing can
overwrite another run's record, whatever job number a launcher gave it, and two sweeps pointed
at one store share every run they have in common.

A run holds an exclusive lock on `<key dir>/lock` while it trains (`claim`). A second process
that wants the same key waits, then finds the first one's record and skips: every run is done
once. Locks are `fcntl.lockf` (POSIX record locks, which also work on NFS through lockd) and die
with their process, so a `kill -9` leaves no stale lock, only at most a `.record.*.tmp` file
that `claim` removes.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .keys import code_hash
from .record import RECORD_NAME, RecordError, load_record

CACHED_STATUSES = ("ok", "diverged")  # results; failed and interrupted runs always run again
RERUN_MODES = ("none", "stale", "all")


def key_dir(store: str | Path, key: str) -> Path:
    """The folder of run `key` in `store`."""
    return Path(store) / key[:2] / key


def record_path(store: str | Path, key: str) -> Path:
    """Where the record of run `key` lives in `store`."""
    return key_dir(store, key) / RECORD_NAME


def is_stale(record: dict, current: str | None = None) -> bool:
    """A record made by other result-determining code than this checkout's (see keys.code_hash)."""
    made_by = (record.get("identity") or {}).get("code_hash")
    return made_by != (current or code_hash())


@dataclass(frozen=True)
class CacheHit:
    """A finished run found in the store, and why it counts (or not) as done."""

    record: dict
    path: Path
    stale: bool


def lookup(store: str | Path, key: str) -> CacheHit | None:
    """The stored result of run `key` if it is a result (ok or diverged), else None.

    A file that cannot be read is treated as missing: the run is done again and its new record
    replaces the unreadable one.
    """
    path = record_path(store, key)
    if not path.is_file():
        return None
    try:
        record = load_record(path)
    except RecordError:
        return None
    if record.get("status") not in CACHED_STATUSES:
        return None
    return CacheHit(record=record, path=path, stale=is_stale(record))


def should_skip(hit: CacheHit | None, rerun: str) -> bool:
    """Whether a run with this cache hit is skipped under `rerun` (none | stale | all)."""
    if rerun not in RERUN_MODES:
        from harness.errors import ConfigError

        raise ConfigError(f"rerun must be one of {', '.join(RERUN_MODES)}, got {rerun!r} "
                          f"(+rerun=stale reruns records made by other code, +rerun=all ignores the cache).")
    if hit is None or rerun == "all":
        return False
    return not (rerun == "stale" and hit.stale)


@contextlib.contextmanager
def claim(store: str | Path, key: str, label: str = "") -> Iterator[Path]:
    """Hold run `key`'s lock for the duration of the block; yields its folder.

    Blocks while another process holds it (that process is training the same run). Leftover
    temporary files of a killed writer are removed once the lock is ours.
    """
    folder = key_dir(store, key)
    folder.mkdir(parents=True, exist_ok=True)
    if label and not (folder / "label").exists():
        (folder / "label").write_text(label + "\n")
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o664)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        for leftover in folder.glob(".record.*.tmp"):
            leftover.unlink(missing_ok=True)
        yield folder
    finally:
        os.close(fd)  # releases the lock

"""Read an offline wandb run file (`run-*.wandb`) back, to check what the logger sent.

The file is a LevelDB-style log (wandb's datastore format): a 7-byte header (":W&B", magic,
version), then 32 KiB blocks of chunks, each with a CRC (4 bytes), a little-endian length (2) and a
type (1: full, 2: first, 3: middle, 4: last), carrying serialized `wandb_internal_pb2.Record`s.
wandb 0.31 ships no reader for it, so the test keeps this small one.
"""
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7


def records(path: str | Path):
    """Yield every protobuf Record in an offline run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a wandb run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero fill: the rest of this block is unused
            pos = (pos // BLOCK + 1) * BLOCK
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def finished_records(path: str | Path, timeout: float = 60.0) -> list:
    """All records of a run file once wandb's service has written its `exit` record (it writes
    asynchronously, so right after `run.finish()` the file may still be growing)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = list(records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)

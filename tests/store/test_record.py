"""Run records: atomic writes, validation with specific messages, round trip."""
import json
import math

import pytest

from harness.store.record import RECORD_NAME, SCHEMA_VERSION, RecordError, find_records, load_record, validate_record, write_record


def minimal(status="ok", **extra):
    record = {
        "schema_version": SCHEMA_VERSION, "status": status, "run_id": "abc", "config": {"seed": 0},
        "metrics": {"final_test_acc": 0.5, "best_test_acc": 0.6, "speed": {}, "memory": {}, "params": 10, "steps_done": 5},
        "curves": {"step": [1, 2], "test_acc": [0.1, 0.5]}, "diagnostics": {}, "environment": {"torch": "x"},
        "started_at": "t0", "ended_at": "t1", "error": None,
    }
    record.update(extra)
    return record


def test_round_trip_preserves_the_record_and_maps_nan_to_null(tmp_path):
    record = minimal(metrics={**minimal()["metrics"], "final_test_loss": math.nan})
    path = write_record(record, tmp_path / "run")
    assert path.name == RECORD_NAME
    loaded = load_record(tmp_path / "run")
    assert loaded["metrics"]["final_test_loss"] is None
    assert loaded["curves"] == record["curves"] and loaded["config"] == {"seed": 0}
    assert find_records(tmp_path) == [path]
    assert not list((tmp_path / "run").glob("*.tmp"))  # the temporary file was renamed away


def test_failed_write_leaves_previous_record_intact(tmp_path):
    write_record(minimal(), tmp_path)
    with pytest.raises(TypeError):
        write_record(minimal(config={"bad": object()}), tmp_path)
    assert load_record(tmp_path)["status"] == "ok"
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r.pop("status"), "missing key 'status'"),
    (lambda r: r.update(status="great"), "status 'great' is not one of ok, diverged, failed, interrupted"),
    (lambda r: r.update(schema_version=99), "schema_version 99 is not supported"),
    (lambda r: r["metrics"].pop("params"), "an ok record needs metrics params"),
    (lambda r: r.update(status="failed"), "a failed record needs an 'error' entry"),
    (lambda r: r.update(curves={"step": [1, 2], "test_acc": [0.1]}), "curves have different lengths"),
    (lambda r: r.update(config=[1]), "'config' must be dict, got list"),
])
def test_invalid_records_say_what_is_wrong(mutate, message):
    record = minimal()
    mutate(record)
    with pytest.raises(RecordError, match=message):
        validate_record(record)


def test_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(RecordError, match="cannot read record"):
        load_record(tmp_path / "nope.json")
    (tmp_path / RECORD_NAME).write_text("{not json")
    with pytest.raises(RecordError, match="is not valid JSON"):
        load_record(tmp_path)
    (tmp_path / RECORD_NAME).write_text(json.dumps([1, 2]))
    with pytest.raises(RecordError, match="must be a JSON object"):
        load_record(tmp_path)

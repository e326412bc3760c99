"""Records -> runs table: columns, field-by-field validation, Parquet round trip."""
import math

import pytest

from harness.store.keys import code_hash, config_id
from harness.store.table import COLUMNS, read_parquet, record_row, runs_table, write_parquet
from report.synthetic import make_record, mutate, write


def test_one_row_per_run_with_parameters_metrics_and_provenance(tmp_path):
    write(tmp_path, "a", make_record("relu", "rectangular", 1, 0.5, backward_params={"a": -0.5, "b": 0.5}, code_hash=code_hash()))
    write(tmp_path, "b", make_record("step", "exact", 2, 0.25, code_hash="stale000stale000"))
    df, problems = runs_table(tmp_path)
    assert problems == [] and len(df) == 2 and set(COLUMNS) <= set(df.columns)
    a, b = df.set_index("seed").loc[1], df.set_index("seed").loc[2]
    assert a.backward == "rectangular(a=-0.5, b=0.5)" and a.rule == "rectangular" and a["cfg.backward.a"] == -0.5
    assert a["cfg.optimizer.betas"] == "[0.9,0.999]"  # lists as JSON text: one type per column
    assert a.final_test_acc == 0.5 and a.step_ms == 1.0 and a.model_saved_bytes == 2_000_000
    assert a.grad_cos_pairs == 0.9 and a.grad_cos_all == 0.95 and a.grad_cos_min_layer == pytest.approx(0.8)
    assert a.curve_test_acc == pytest.approx([0.125, 0.25, 0.375, 0.5]) and a.fid_step == [0, 500, 1000]
    assert a["env.kernel_isa"] == "avx2" and a["env.git_commit"] == "abc123"
    assert a.stale == False and b.stale == True and b.flat == True and math.isnan(b.fid_cos_pairs[0])  # noqa: E712


def test_records_without_identity_get_their_config_id(tmp_path):
    record = make_record()
    del record["identity"]
    del record["pair"]["flat"]
    row = record_row(record, "x")
    assert row["config_id"] == config_id(record["config"]) and row["stale"] is None and row["flat"] is False


@pytest.mark.parametrize("path, value, field", [
    ("metrics.final_test_acc", "0.9", "metrics.final_test_acc must be a number, got str"),
    ("config.forward", "relu", "config.forward must be an object"),
    ("metrics.speed", 3, "metrics.speed must be an object"),
    ("metrics.speed.step_ms.median", True, "metrics.speed.step_ms.median must be a number, got bool"),
    ("config.seed", 1.5, "config.seed must be an integer"),
    ("diagnostics.fidelity", {"step": 0}, "diagnostics.fidelity must be a list"),
    ("pair.flat", "yes", "pair.flat must be true or false"),
])
def test_a_bad_field_skips_that_record_only_and_names_file_and_field(tmp_path, path, value, field):
    write(tmp_path, "good", make_record(seed=0))
    bad = write(tmp_path, "bad", mutate(make_record(seed=1), path, value))
    df, problems = runs_table(tmp_path)
    assert list(df.seed) == [0]
    assert len(problems) == 1 and str(bad) in problems[0] and field in problems[0] and "\n" not in problems[0]


def test_invalid_json_and_schema_errors_are_problems_too(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "record.json").write_text("{not json")
    write(tmp_path, "empty", {})
    write(tmp_path, "good", make_record())
    df, problems = runs_table(tmp_path)
    assert len(df) == 1 and len(problems) == 2
    assert any("not valid JSON" in p for p in problems) and any("missing key" in p for p in problems)


def test_parquet_round_trip_with_mixed_types(tmp_path):
    write(tmp_path, "a", make_record(seed=0, backward="quantized", backward_params={"of": "b_silu", "bits": 2}))
    write(tmp_path, "b", make_record(seed=1, backward="quantized", backward_params={"of": 3, "bits": 2}))  # a number where text was
    df, _ = runs_table(tmp_path)
    path = write_parquet(df, tmp_path / "out" / "runs.parquet")
    back = read_parquet(path)
    assert len(back) == 2 and sorted(back["cfg.backward.of"]) == ["3", "b_silu"]
    assert back.curve_test_acc.iloc[0] == pytest.approx(df.curve_test_acc.iloc[0])
    assert list(back.final_test_acc) == list(df.final_test_acc)


def test_probe_series_dead_units_and_layer_gradient_norms(tmp_path):
    """Dead-unit fraction per activation probe and per-parameter gradient norms at the first and last
    probe become list columns that survive Parquet; a norm of the wrong type is a named problem."""
    record = make_record(seed=0)
    record["diagnostics"]["activations"] = [{"step": 0, "mean": {"dead_fraction": 0.0}},
                                            {"step": 500, "mean": {"dead_fraction": 0.25}},
                                            {"step": 1000, "mean": {"dead_fraction": None}}]
    record["diagnostics"]["grad_norms"] = [{"step": 0, "layers.0.weight": 1e-4, "head.weight": 0.5},
                                           {"step": 1000, "layers.0.weight": 2e-3, "head.weight": 0.25}]
    write(tmp_path, "a", record)
    write(tmp_path, "bad", mutate(make_record(seed=1), "diagnostics.grad_norms", [{"step": 0, "w": "big"}]))
    df, problems = runs_table(tmp_path)
    row = df.set_index("seed").loc[0]
    assert row.fid_act_step == [0, 500, 1000] and row.fid_dead_fraction[:2] == [0.0, 0.25] and math.isnan(row.fid_dead_fraction[2])
    assert row.gn_param == ["layers.0.weight", "head.weight"]
    assert row.gn_norm_first == [1e-4, 0.5] and row.gn_norm_last == [2e-3, 0.25]
    assert len(problems) == 1 and "diagnostics.grad_norms[0].w must be a number, got str" in problems[0]
    back = read_parquet(write_parquet(df, tmp_path / "runs.parquet"))
    assert back.gn_param.iloc[0] == ["layers.0.weight", "head.weight"] and back.gn_norm_last.iloc[0] == [2e-3, 0.25]
    assert back.fid_dead_fraction.iloc[0][:2] == [0.0, 0.25]


def test_forward_label_says_what_the_model_really_uses(tmp_path):
    """A GRU ignores forward=relu (its gates are sigmoid and tanh pairs), a logistic model uses no
    activation: the table's forward label says so; a model that uses the configured forward keeps it."""
    gru = make_record("relu", "exact", 0)
    gru["pair"].update(used=["sigmoid/exact", "tanh/exact"], label="sigmoid/exact + tanh/exact")
    logistic = make_record("relu", "exact", 1)
    logistic["pair"].update(used=[], label="no activation")
    plain = make_record("gelu", "exact", 2)
    plain["pair"].update(used=["gelu(approximate=none)/exact"])
    rows = {r["seed"]: r for r in (record_row(gru, "g"), record_row(logistic, "l"), record_row(plain, "p"))}
    assert rows[0]["forward"] == "sigmoid + tanh" and rows[1]["forward"] == "none" and rows[2]["forward"] == "gelu"
    assert rows[0]["forward_name"] == "relu"  # the configured axis value stays where sweeps and scripts select by it

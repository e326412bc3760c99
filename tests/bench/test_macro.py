"""Macro benchmark: the rows it produces (structure, reference, errors) on a tiny size, and the CLI's
macro options and baseline comparison with a fake measurer. No timing is asserted."""
from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
import torch

import harness.bench.macro as macro
from harness.bench import cli
from harness.bench.compare import comparable, entry_key
from harness.bench.macro import REFERENCE, MacroConfig, format_macro, quick_macro_config, run_macro

TINY = dict(repeats=2, warmup=0, step_scale=0.01)  # 4 MLP steps a round


def test_eager_rows_have_every_candidate_with_ratios_against_the_hand_written_native_loop():
    entries = run_macro(MacroConfig(groups=(("mlp", "eager"),), **TINY))
    assert [e["candidate"] for e in entries] == [REFERENCE, "hand/exact", "harness/native", "harness/exact",
                                                "harness/rectangular"]
    for e in entries:
        assert (e["kind"], e["model"], e["shape"], e["mode"], e["threads"], e["steps"]) == ("macro", "mlp", "mlp", "eager", "1", 4)
        assert entry_key(e) == (e["candidate"], "mlp", "1", "eager") and comparable(e)
        assert e["seconds"]["n"] == 2 and e["steps_per_s"] > 0 and e["error"] is None
        assert set(e["ratios"]) >= {"vs_reference", "vs_reference_of_mins", "vs_hand_exact", "vs_harness_exact"}
        for key in ("vs_reference", "vs_hand_exact", "vs_harness_exact", "vs_harness_native"):
            lo, hi = e["intervals"][key]  # 2 rounds: the interval is (min, max) of the two per-round ratios
            assert lo <= e["ratios"][key] <= hi
    ref = entries[0]
    assert ref["ratios"]["vs_reference"] == ref["ratios"]["vs_reference_of_mins"] == 1.0
    assert ref["target"] is None and ref["status"] == "-"
    assert all(e["target"] == macro.TARGET and e["status"] in ("PASS", "UNCLEAR", "MISS") for e in entries[2:])
    assert macro.NOISE_FLOOR not in {e["candidate"] for e in entries}  # compiled groups only
    table = format_macro(entries)
    assert "harness/rectangular" in table and "x hand native" in table
    # 2 rounds: (min, max) covers the median with probability 1/2, and the table says so
    assert all(e["interval_coverage"] == 0.5 for e in entries)
    assert "(min-max)" in table and "(min, max) covers 50.0% here" in table


def test_a_candidate_that_fails_is_an_error_row_and_the_others_are_still_measured(monkeypatch):
    real = macro.candidates

    def with_broken(*args, **kwargs):
        out = real(*args, **kwargs)
        out["harness/broken"] = lambda: (_ for _ in ()).throw(RuntimeError("no kernel for this\nsecond line"))
        return out

    monkeypatch.setattr(macro, "candidates", with_broken)
    entries = {e["candidate"]: e for e in run_macro(MacroConfig(groups=(("mlp", "eager"),), rules=(), **TINY))}
    assert entries["harness/broken"]["status"] == "error" and entries["harness/broken"]["ratios"] == {}
    assert entries["harness/broken"]["error"] == "RuntimeError: no kernel for this"
    assert entries["harness/exact"]["ratios"]["vs_reference"] > 0


def test_harness_candidates_use_the_trainers_default_optimizer_flags_like_the_reference():
    data = macro.load_dataset("mnist1d")
    fit = macro.harness_candidate("mlp", data, macro._native_relu, steps=1, batch_size=100, compile=False)
    group = fit.__self__.optimizer.param_groups[0]
    assert (group["lr"], group["foreach"], group["fused"]) == (macro.LR, True, None)


def test_configs_reject_unknown_models_and_modes_and_the_quick_preset_is_smaller():
    with pytest.raises(ValueError, match="unknown macro model 'resnet'; known: mlp, cnn1d, mlp-1024"):
        MacroConfig(groups=(("resnet", "eager"),))
    with pytest.raises(ValueError, match="unknown macro mode 'jit'"):
        MacroConfig(groups=(("mlp", "jit"),))
    full, quick = MacroConfig(), quick_macro_config()
    assert set(quick.groups) < set(full.groups) and quick.steps("mlp") < full.steps("mlp")
    assert {mode for _, mode in full.groups} == {"eager", "compile"} and "mlp-1024" in {m for m, _ in full.groups}
    assert json.loads(json.dumps(full.to_json()))["steps"]["mlp-1024"] == full.steps("mlp-1024")


def _fake_macro(script):
    """A macro measurer whose harness/exact ratio is script(call index); remembers its configs."""
    configs = []

    def measure(config, log=None):
        call = len(configs)
        configs.append(config)
        return [{"kind": "macro", "pair": name, "candidate": name, "model": model, "shape": model, "mode": mode,
                 "threads": "1", "target": None, "status": "-", "error": None, "steps_per_s": 100.0,
                 "ratios": {"vs_reference": r, "vs_reference_of_mins": r}}
                for model, mode in config.groups
                for name, r in ((REFERENCE, 1.0), ("harness/exact", script(call)))]

    return measure, configs


def _baseline(tmp_path, entry) -> str:
    path = tmp_path / "base.json"
    doc = {"schema_version": 1, "benchmark": "micro", "created": "x", "machine_kind": "cpu-2core", "environment": {},
           "settings": {}, "entries": [entry("relu/exact", 1.0)],
           "macro": _fake_macro(lambda call: 1.0)[0](quick_macro_config())}
    path.write_text(json.dumps(doc))
    return str(path)


def test_macro_only_compares_the_macro_rows_and_fails_only_if_they_stay_worse(tmp_path, entry):
    base = _baseline(tmp_path, entry)
    measure, configs = _fake_macro(lambda call: 3.0 if call == 0 else 1.05)  # worse once, fine when re-measured
    out = io.StringIO()
    status = cli.main(["--macro-only", "--quick", "--compare", base, "--json", str(tmp_path / "o.json")],
                      macro_measurer=measure, out=out)
    assert status == 0 and "ok (after retry)" in out.getvalue()
    assert configs[1].groups == (("mlp", "eager"), ("cnn1d", "eager"), ("mlp", "compile"))  # all three had harness/exact worse
    assert configs[1].repeats == 2 * configs[0].repeats
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["entries"] == [] and len(doc["macro"]) == 6 and "comparison" not in doc
    assert {r["status"] for r in doc["macro_comparison"]["results"]} == {"ok"}

    measure, _ = _fake_macro(lambda call: 3.0)
    assert cli.main(["--macro-only", "--quick", "--compare", base, "--retries", "1"], macro_measurer=measure,
                    out=io.StringIO()) == 1


def test_macro_model_and_mode_options_select_groups_and_bad_names_exit_2(capsys):
    measure, configs = _fake_macro(lambda call: 1.0)
    assert cli.main(["--macro-only", "--macro-models", "mlp,mlp-1024", "--macro-modes", "compile",
                     "--macro-repeats", "5"], macro_measurer=measure, out=io.StringIO()) == 0
    assert configs[0].groups == (("mlp", "compile"), ("mlp-1024", "compile")) and configs[0].repeats == 5
    assert cli.main(["--macro-only", "--macro-models", "vgg"], macro_measurer=measure, out=io.StringIO()) == 2
    assert "unknown macro model 'vgg'" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_rows_time_the_trainers_compile_path_against_a_compiled_hand_loop():
    entries = run_macro(MacroConfig(groups=(("mlp", "compile"),), rules=(), **TINY))
    assert [e["candidate"] for e in entries] == [REFERENCE, "harness/native", macro.NOISE_FLOOR, "harness/exact"]
    assert all(e["mode"] == "compile" and e["status"] != "error" and e["compile_time_s"] is not None for e in entries)
    floor = entries[2]
    assert (floor["target"], floor["target_vs"], floor["status"]) == (None, "harness/native", "-")
    assert floor["intervals"]["vs_harness_native"][0] <= floor["ratios"]["vs_harness_native"]
    assert "noise floor x harness native" in format_macro(entries)


def test_compiled_pairs_are_held_to_compiled_native_relu_in_the_same_trainer():
    """The issue's compiled target: a pair <= 1.00x compiled native ReLU (harness/native); the
    trainer's own overhead (harness/native) and eager candidates against the hand loop, <= 1.02x."""
    config = MacroConfig(groups=(("mlp", "compile"),), **TINY)
    pair, native = (macro._entry("mlp", "compile", name, config, 4) for name in ("harness/rectangular", "harness/native"))
    eager = macro._entry("mlp", "eager", "harness/rectangular", config, 4)
    assert (pair["target"], pair["target_vs"]) == (1.00, "harness/native")
    assert (native["target"], native["target_vs"]) == (eager["target"], eager["target_vs"]) == (macro.TARGET, REFERENCE)
    assert macro.target_status(pair, {"vs_reference": 0.97, "vs_harness_native": 1.004}) == "MISS"
    assert macro.target_status(pair, {"vs_reference": 1.05, "vs_harness_native": 0.998}) == "PASS"
    assert macro.target_status(eager, {"vs_reference": 1.019}) == "PASS"
    assert macro.target_status(pair, {"vs_reference": 1.0}) == "-"  # no native row measured
    row = dict(pair, status="MISS", error=None, steps_per_s=10.0, ratios={"vs_reference": 0.97, "vs_harness_native": 1.004})
    assert "<=1.00 x harness native" in format_macro([row]) and "1.004" in format_macro([row])


def test_a_ratio_above_its_target_is_unclear_while_its_interval_reaches_the_target():
    config = MacroConfig(groups=(("mlp", "compile"),), **TINY)
    pair = macro._entry("mlp", "compile", "harness/rectangular", config, 4)
    ratios = {"vs_reference": 0.97, "vs_harness_native": 1.02}
    assert macro.target_status(pair, ratios, {"vs_harness_native": [0.99, 1.05]}) == "UNCLEAR"
    assert macro.target_status(pair, ratios, {"vs_harness_native": [1.001, 1.05]}) == "MISS"
    assert macro.target_status(pair, ratios, {"vs_reference": [0.9, 1.0]}) == "MISS"  # the interval of another ratio
    assert macro.target_status(pair, {"vs_harness_native": 0.999}, {"vs_harness_native": [1.0, 1.1]}) == "PASS"
    row = dict(pair, status="UNCLEAR", error=None, steps_per_s=10.0, ratios=ratios,
               intervals={"vs_reference": [0.9, 1.0], "vs_harness_native": [0.99, 1.05]})
    table = format_macro([row])
    assert "0.990-1.050" in table and "0.900-1.000" not in table and "UNCLEAR: above the target" in table


def test_flush_denormal_holds_for_the_measurement_only(monkeypatch):
    """--macro-flush-denormal: subnormals flush to 0 while the groups are measured, and not after."""
    seen = []
    monkeypatch.setattr(macro, "load_dataset", lambda name: None)
    monkeypatch.setattr(macro, "measure_group", lambda *a, **k: seen.append((torch.tensor([1e-39]) * 0.5).item()) or [])
    args = cli.build_parser().parse_args(["--macro-only", "--macro-flush-denormal", "--macro-models", "mlp", "--macro-modes", "eager"])
    config = cli.macro_config_from_args(args)
    assert config.flush_denormal and config.to_json()["flush_denormal"] is True
    run_macro(config)
    run_macro(replace(config, flush_denormal=False))
    assert seen[0] == 0.0 and seen[1] > 0.0
    assert (torch.tensor([1e-39]) * 0.5).item() > 0.0

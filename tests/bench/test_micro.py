"""The measurement on a tiny shape: structure and JSON schema, never timings."""
import itertools
import json

import pytest

from harness.bench.micro import MicroConfig, bandwidth_fraction, copy_bytes, effective_bytes, quick_config, restrict, run_micro
from harness.bench.memory import SavedState
from harness.bench.results import SCHEMA_VERSION, environment, format_table, load_document, make_document, validate_document, write_document
from harness.bench.specs import ThreadSetting
from harness.bench.timing import interleaved_rounds, round_ratios
from harness.measure import SUMMARY_KEYS

PAIRS = ("relu/rectangular", "relu/exact", "relu/constant", "relu/quantized:bits=2,of=b_silu", "step/fast_sigmoid", "tanh/exact")


@pytest.fixture(scope="module")
def tiny_entries():
    config = MicroConfig(pairs=PAIRS, shapes={"tiny": (8, 64)}, threads=(ThreadSetting("1", 1),),
                         repeats=3, warmup=1, peers=False)
    return config, run_micro(config)


def test_one_entry_per_pair_shape_and_threads(tiny_entries):
    config, entries = tiny_entries
    assert [e["pair"] for e in entries] == list(PAIRS)
    assert {(e["shape"], e["threads"], e["mode"], e["kind"]) for e in entries} == {("tiny", "1", "eager", "pair")}


def test_entries_report_three_speeds_ratios_memory_and_bandwidth(tiny_entries):
    _, entries = tiny_entries
    by = {e["pair"]: e for e in entries}
    for e in entries:
        for role in ("pair", "reference", "native_relu", "our_exact", "copy"):
            assert e["time_s"][role]["n"] == 3 and e["time_s"][role]["median"] > 0
            assert tuple(e["time_s"][role]) == SUMMARY_KEYS  # the trainer's step-time keys too
        assert e["ratios"]["vs_reference"] > 0 and e["ratios"]["vs_native_relu"] > 0
        assert e["ratios"]["vs_reference_of_mins"] > 0 and e["ratios"]["vs_native_relu_of_mins"] > 0
        assert e["status"] in ("PASS", "MISS") and e["target"] == 1.15
        assert e["memory"]["matches_expected"] is True
        assert e["bandwidth"]["fraction"] > 0
    assert by["relu/rectangular"]["reference"] == "native:relu"
    # Smooth pairs: held to their own forward's native op when it is smooth (tanh), else to SiLU.
    assert by["tanh/exact"]["reference"] == "native:tanh"
    assert by["step/fast_sigmoid"]["reference"] == "native:silu"
    assert by["relu/quantized:bits=2,of=b_silu"]["memory"]["saved_bytes_per_element"] == 0.25
    assert by["relu/constant"]["memory"]["saved_bytes_per_element"] == 0
    assert by["relu/rectangular"]["memory"]["reference_saved_bytes_per_element"] == 4.0
    # step has no native autograd: no native exact, so no our-exact/native ratio
    assert by["step/fast_sigmoid"]["time_s"]["native_exact"] is None
    assert by["step/fast_sigmoid"]["ratios"]["our_exact_vs_native_exact"] is None
    # relu/exact is our exact: the same candidate, timed once
    assert by["relu/exact"]["time_s"]["pair"] == by["relu/exact"]["time_s"]["our_exact"]


def test_document_has_the_schema_and_round_trips(tiny_entries, tmp_path):
    config, entries = tiny_entries
    doc = make_document(entries, config.to_json(), environment(), kind="test-kind", elapsed_s=0.1)
    validate_document(doc)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["machine_kind"] == "test-kind"
    env = doc["environment"]
    for key in ("python", "torch", "cpu_model", "torch_num_threads", "hostname", "harness_version", "git_commit"):
        assert key in env
    assert doc["settings"]["threads"] == [{"label": "1", "num_threads": 1}]
    assert doc["settings"]["shapes"] == {"tiny": [8, 64]}
    path = tmp_path / "out.json"
    write_document(doc, path)
    assert load_document(path)["entries"] == json.loads(json.dumps(entries))
    assert "relu/rectangular" in format_table(entries)


def test_validate_document_names_what_is_wrong():
    with pytest.raises(ValueError, match="missing keys"):
        validate_document({"schema_version": 1})
    with pytest.raises(ValueError, match="schema_version"):
        validate_document({k: 0 for k in ("benchmark", "created", "machine_kind", "environment", "settings")}
                          | {"schema_version": 99, "entries": []})


def test_peers_are_reported_when_installed():
    pytest.importorskip("freegrad")
    config = MicroConfig(pairs=("relu/rectangular",), shapes={"tiny": (8, 64)}, threads=(ThreadSetting("1", 1),),
                         repeats=2, warmup=0, peers=True)
    entries = run_micro(config)
    peer = next(e for e in entries if e["pair"] == "peer:freegrad/relu-rectangular")
    assert peer["kind"] == "peer" and peer["status"] == "INFO" and peer["target"] is None
    assert peer["memory"]["saved_bytes_per_element"] == 4.0  # FreeGrad keeps the float32 input
    assert peer["ratios"]["vs_equivalent"] > 0


@pytest.mark.slow
def test_compiled_pairs_report_compile_time_separately():
    config = MicroConfig(pairs=("relu/constant",), shapes={"tiny": (8, 64)}, threads=(ThreadSetting("1", 1),),
                         repeats=2, warmup=1, peers=False, compile=True)
    compiled = [e for e in run_micro(config) if e["mode"] == "compile"]
    assert len(compiled) == 1 and compiled[0]["target"] == 1.0
    assert compiled[0]["error"] is None and compiled[0]["compile_time_s"] > 0
    assert compiled[0]["ratios"]["vs_eager"] > 0


def test_quick_preset_and_restrict():
    q = quick_config()
    assert q.repeats >= 20 and list(q.shapes) == ["flat"] and q.quick
    r = restrict(MicroConfig(threads=(ThreadSetting("1", 1), ThreadSetting("all", 2))),
                 pairs=["relu/exact"], shapes={"conv"}, threads={"all"}, repeats=60)
    assert r.pairs == ("relu/exact",) and list(r.shapes) == ["conv"] and r.repeats == 60
    assert [t.label for t in r.thread_settings()] == ["all"]


def test_rounds_shuffle_the_order_and_time_every_candidate_once_per_round():
    calls = []
    candidates = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    ticks = itertools.count()
    samples = interleaved_rounds(candidates, repeats=30, warmup=1, timer=lambda: float(next(ticks)))
    assert calls[:4] == ["a", "b", "c", "d"]  # warm-up
    rounds = [calls[4 + 4 * r: 8 + 4 * r] for r in range(30)]
    assert all(sorted(r) == list("abcd") for r in rounds)  # each candidate once per round
    predecessors_of_d = {r[r.index("d") - 1] for r in rounds if r.index("d") > 0}
    assert len(predecessors_of_d) == 3  # no fixed neighbour (a rotation would always give "c")
    assert all(len(v) == 30 for v in samples.values()) and samples["a"] == [1.0] * 30
    again = []
    interleaved_rounds({n: (lambda n=n: again.append(n)) for n in "abcd"}, repeats=30, warmup=1, timer=lambda: 0.0)
    assert again == calls  # seeded: the same order every run


def test_round_ratios_need_the_same_rounds():
    assert round_ratios([2.0, 4.0], [1.0, 2.0]) == [2.0, 2.0]
    with pytest.raises(ValueError):
        round_ratios([1.0], [1.0, 2.0])


def test_bandwidth_bookkeeping():
    n, e = 1024, 4
    # native relu keeps its output (an alias: read in backward, no extra write)
    assert effective_bytes(n, e, SavedState(bytes=4 * n, new_bytes=0, numel=n)) == 20 * n
    # a 1-bit rule writes and reads n/8 bytes
    assert effective_bytes(n, e, SavedState(bytes=n // 8, new_bytes=n // 8, numel=n)) == 16 * n + n // 4
    assert copy_bytes(n, e) == 8 * n
    # 16n bytes in 4 ms vs 8n bytes in 1 ms: half the copy's bandwidth
    assert bandwidth_fraction(16 * n, 4e-3, 8 * n, 1e-3) == pytest.approx(0.5)


def test_multi_thread_groups_carry_a_contention_probe():
    from harness.bench.micro import PROBE, contention_of

    config = MicroConfig(pairs=("relu/constant",), shapes={"tiny": (8, 64)},
                         threads=(ThreadSetting("1", 1), ThreadSetting("two", 2)), repeats=3, warmup=0, peers=False)
    one, two = run_micro(config)
    assert one["contention"]["thread_scaling"] is None and one["contention"]["contended"] is False
    assert two["contention"]["thread_scaling"] > 0 and two["contention"]["one_thread_relu_s"]["n"] == 3
    # synthetic: N threads 10x slower than one thread in the same rounds -> contended
    assert contention_of({"native:relu": [10.0, 10.0], PROBE: [1.0, 1.0]})["contended"] is True
    assert contention_of({"native:relu": [0.6, 0.6], PROBE: [1.0, 1.0]})["contended"] is False

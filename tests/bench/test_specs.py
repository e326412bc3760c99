"""Pair-spec parsing: canonical names, typed parameters, clear errors."""
import pytest

from harness.activations import ParameterError, Saves, UnknownNameError
from harness.bench.specs import (
    DEFAULT_PAIRS, SHAPES, PairSpecError, parse_pair, parse_pairs, parse_shapes, parse_threads, reference_for,
)


def test_plain_spec_builds_the_pair():
    p = parse_pair("relu/rectangular")
    assert (p.name, p.forward, p.rule, p.params) == ("relu/rectangular", "relu", "rectangular", ())
    assert p.saves is Saves.BITS and p.reference == "relu"
    assert p.describe() == "relu/rectangular(a=-0.5, b=0.5)"


def test_parameters_are_typed_and_the_name_is_canonical():
    p = parse_pair(" relu/quantized:of=b_silu, bits=2 ")
    assert p.name == "relu/quantized:bits=2,of=b_silu"
    assert dict(p.params) == {"bits": 2, "of": "b_silu"}
    assert p.saves is Saves.CODES and p.spec.rule.bits == 2
    q = parse_pair("relu/rectangular:a=-1.5,b=0.25")
    assert dict(q.params) == {"a": -1.5, "b": 0.25}


def test_smooth_rules_are_held_to_silu_and_cheap_ones_to_relu():
    assert parse_pair("relu/b_silu").reference == "silu"
    assert parse_pair("tanh/exact").reference == "silu"  # saves its output
    assert parse_pair("relu/constant").reference == "relu"
    assert reference_for(Saves.CODES) == "relu"


@pytest.mark.parametrize("bad", ["relu", "relu-rectangular", "/rectangular", "relu/", "relu/rectangular/x",
                                 "relu/rectangular:", "relu/rectangular:a", "relu/rectangular:a=",
                                 "relu/rectangular:=1", "relu/rectangular:a=1,a=2"])
def test_bad_syntax_is_a_pair_spec_error_that_shows_the_syntax_or_the_culprit(bad):
    with pytest.raises(PairSpecError) as info:
        parse_pair(bad)
    assert repr(bad) in str(info.value) or "parameter" in str(info.value)


def test_unknown_names_pass_the_librarys_suggestions_through():
    with pytest.raises(UnknownNameError, match="rectangular"):
        parse_pair("relu/rectangulr")
    with pytest.raises(UnknownNameError, match="relu"):
        parse_pair("reluu/exact")


def test_bad_parameter_values_pass_the_librarys_message_through():
    with pytest.raises(ParameterError, match="bits"):
        parse_pair("relu/quantized:bits=9")
    with pytest.raises(ParameterError):
        parse_pair("relu/rectangular:width=3")


def test_default_pairs_parse_and_cover_every_storage_kind():
    pairs = parse_pairs(DEFAULT_PAIRS)
    assert len(pairs) == len(DEFAULT_PAIRS)
    assert {p.saves for p in pairs} == set(Saves)


def test_duplicates_are_dropped_in_order():
    assert [p.name for p in parse_pairs(["relu/exact", "relu/b_silu", "relu/exact"])] == ["relu/exact", "relu/b_silu"]


def test_threads_parse_one_all_and_numbers():
    settings = parse_threads("1,all", all_threads=4)
    assert [(s.label, s.num_threads) for s in settings] == [("1", 1), ("all", 4)]
    assert [s.label for s in parse_threads("2, 1,2", all_threads=4)] == ["2", "1"]
    for bad in ("0", "one", ""):
        with pytest.raises(ValueError):
            parse_threads(bad, all_threads=4)


def test_shapes_parse_names_and_custom_dims():
    assert parse_shapes("flat,conv") == {"flat": SHAPES["flat"], "conv": SHAPES["conv"]}
    assert parse_shapes("tiny=8x64") == {"tiny": (8, 64)}
    for bad in ("square", "tiny=8xq", "tiny=0x4", "=8x8"):
        with pytest.raises(ValueError):
            parse_shapes(bad)

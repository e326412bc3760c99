"""Registry behaviour: lookup errors, param validation, data-kind mismatches, parameter counting."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from harness.errors import ParameterError, UnknownNameError
from harness.models import (
    KINDS,
    MODELS,
    ModelDataMismatch,
    build_model,
    check_model_data,
    count_parameters,
    data_kinds,
    register_model,
)


def _never_called(forward=None):
    raise AssertionError("the model was constructed before its input was validated")


def test_registered_models():
    assert list(MODELS) == [
        "mlp", "cnn1d", "lenet5", "vgg", "resnet18", "gru", "transformer", "bnn", "logistic"
    ]
    for name, entry in MODELS.items():
        assert set(entry.kinds) <= set(KINDS), name
        assert entry.doc, f"{name} builder has no docstring"


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError) as err:
        build_model("cnn_1d", input_shape=(40,), num_classes=10, act=_never_called)
    msg = str(err.value)
    assert "'cnn_1d'" in msg and "Did you mean 'cnn1d'" in msg
    for name in MODELS:  # the full list is shown too
        assert name in msg
    assert isinstance(err.value, UnknownNameError)


def test_unknown_param_names_valid_params():
    with pytest.raises(TypeError) as err:
        build_model("mlp", input_shape=(40,), num_classes=10, act=_never_called, widht=5)
    msg = str(err.value)
    assert "'widht'" in msg and "did you mean 'width'" in msg
    assert "depth, width, residual, bias" in msg
    assert isinstance(err.value, ParameterError)


@pytest.mark.parametrize(
    "name, shape, params, expected",
    [
        # wrong kind: the message names the model, what it expects and what the data is
        ("cnn1d", (3, 32, 32), {}, ["'cnn1d'", "sequence (L,) or (L, F) input",
                                    "(3, 32, 32)", "kind image"]),
        ("lenet5", (40,), {}, ["'lenet5'", "image (C, H, W)", "(40,)", "kind vector or sequence"]),
        ("resnet18", (10, 3), {}, ["'resnet18'", "image", "(10, 3)", "kind sequence"]),
        # a flat feature vector is not a signal, once the dataset says which it is
        ("cnn1d", (64,), {"kind": "vector"}, ["'cnn1d'", "(64,)", "kind vector"]),
        ("gru", (2,), {"kind": "vector"}, ["'gru'", "(2,)", "kind vector"]),
        ("transformer", (10,), {"kind": "vector"}, ["'transformer'", "kind vector"]),
        # a kind that contradicts the shape
        ("mlp", (40,), {"kind": "image"}, ["'image'", "(C, H, W)", "(40,)"]),
        # right kind, wrong size
        ("cnn1d", (2,), {}, ["'cnn1d'", "L >= 3", "(2,)"]),
        ("lenet5", (1, 8, 8), {}, ["'lenet5'", "at least 12x12", "(1, 8, 8)"]),
        ("gru", (40,), {"chunk": 3}, ["'gru'", "divisible by chunk=3", "(40,)"]),
        ("transformer", (3, 32, 32), {"patch_size": 5}, ["'transformer'", "patch_size=5"]),
        ("transformer", (40,), {"patch_size": 3}, ["'transformer'", "patch_size=3"]),
    ],
)
def test_model_data_mismatch_before_construction(name, shape, params, expected):
    with pytest.raises(ModelDataMismatch) as err:
        build_model(name, input_shape=shape, num_classes=10, act=_never_called, **params)
    for fragment in expected:
        assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)  # callers catching ValueError still catch it


@pytest.mark.parametrize(
    "name, params",
    [("vgg", {"variant": "vgg13"}), ("lenet5", {"pool": "median"}), ("gru", {"readout": "mean"}),
     ("transformer", {"dim": 30, "heads": 4}), ("transformer", {"pool": "max"})],
)
def test_bad_param_values_fail_before_construction(name, params):
    shape = (3, 32, 32) if name in ("vgg", "lenet5") else (40,)
    with pytest.raises(ValueError) as err:
        check_model_data(name, input_shape=shape, **params)
    assert not isinstance(err.value, ModelDataMismatch)
    assert isinstance(err.value, ParameterError) and f"model {name!r}: " in str(err.value)


def test_builder_value_checks_are_parameter_errors():
    with pytest.raises(ParameterError, match="model 'mlp': mlp needs depth >= 0 and width >= 1"):
        build_model("mlp", input_shape=(4,), num_classes=2, act=lambda forward=None: nn.ReLU(), width=0)


@pytest.mark.parametrize("shape", [(), (1, 2, 3, 4), (0,), (3, 0, 4)])
def test_unsupported_shapes(shape):
    with pytest.raises(ModelDataMismatch):
        data_kinds(shape)


def test_data_kinds_by_rank_and_hint():
    assert data_kinds((40,)) == ("vector", "sequence")
    assert data_kinds((40,), "sequence") == ("sequence",)
    assert data_kinds((10, 3)) == ("sequence",)
    assert data_kinds((1, 28, 28)) == ("image",)
    with pytest.raises(ValueError, match="unknown data kind"):
        data_kinds((40,), "graph")


def test_kind_hint_accepts_matching_data(simple_act):
    model = build_model("cnn1d", input_shape=(40,), num_classes=10, act=simple_act,
                        kind="sequence")
    assert model(torch.randn(2, 40)).shape == (2, 10)


def test_input_shape_may_be_size_or_list(simple_act):
    a = build_model("mlp", input_shape=torch.Size([1, 4, 4]), num_classes=3, act=simple_act)
    b = build_model("mlp", input_shape=[1, 4, 4], num_classes=3, act=simple_act)
    assert count_parameters(a) == count_parameters(b) == 16 * 100 + 100 + 100 * 100 + 100 + 303


def test_count_parameters_counts_shared_once_and_trainable():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, shared, nn.Linear(3, 2))
    assert count_parameters(model) == 12 + 8
    model[2].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 12 + 2


def test_register_model_validation():
    with pytest.raises(ValueError, match="unknown data kinds"):
        register_model("x", kinds=("graph",))
    with pytest.raises(ValueError, match="already registered"):
        register_model("mlp", kinds=("vector",))(lambda *, input_shape, num_classes, act: None)
    with pytest.raises(TypeError, match="must accept"):
        register_model("_tmp_bad", kinds=("vector",))(lambda *, input_shape: None)
    assert "_tmp_bad" not in MODELS


def test_register_custom_model(simple_act):
    @register_model("_tmp_linear", kinds=("vector",))
    def build(*, input_shape, num_classes, act, bias: bool = True):
        """A linear probe."""
        return nn.Linear(input_shape[0], num_classes, bias=bias)

    try:
        assert MODELS["_tmp_linear"].params == {"bias": True}
        model = build_model("_tmp_linear", input_shape=(5,), num_classes=2, act=simple_act,
                            bias=False)
        assert count_parameters(model) == 10
        with pytest.raises(ModelDataMismatch):
            build_model("_tmp_linear", input_shape=(1, 5, 5), num_classes=2, act=simple_act)
    finally:
        MODELS.pop("_tmp_linear")


def test_num_classes_and_act_validated():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", input_shape=(4,), num_classes=0, act=_never_called)
    with pytest.raises(TypeError, match="act"):
        build_model("mlp", input_shape=(4,), num_classes=2, act="relu")

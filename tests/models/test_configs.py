"""conf/model/*.yaml: exactly `name` + the model's params, each commented, and they build."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from harness.models import MODELS, build_model, check_model_data, count_parameters

CONF_DIR = Path(__file__).resolve().parents[2] / "harness" / "conf" / "model"

# config file -> (reference dataset shape, its kind, parameter count with 10 classes or None to
# skip building here because the model is large and built in its own test)
REFERENCE = {
    "mlp": ((40,), "sequence", 15_210),
    "cnn1d": ((40,), "sequence", 5_210),
    "lenet5": ((1, 28, 28), "image", 61_706),
    "vgg": ((3, 32, 32), "image", 24_346),
    "vgg16": ((3, 32, 32), "image", None),
    "resnet18": ((3, 32, 32), "image", None),
    "gru": ((40,), "sequence", 5_134),
    "transformer": ((40,), "sequence", 68_810),
    "bnn": ((1, 28, 28), "image", 335_882),
    "logistic": ((40,), "sequence", 410),
}


def test_every_config_is_listed():
    assert sorted(p.stem for p in CONF_DIR.glob("*.yaml")) == sorted(REFERENCE)


@pytest.mark.parametrize("stem", sorted(REFERENCE))
def test_config_keys_are_name_plus_all_params(stem):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{stem}.yaml"))
    name = cfg["name"]
    assert set(cfg) == {"name", *MODELS[name].params}
    for line in (CONF_DIR / f"{stem}.yaml").read_text().splitlines():
        if line and not line.startswith("#"):
            assert " # " in line, f"{stem}.yaml: field without a comment: {line!r}"


@pytest.mark.parametrize("stem", sorted(REFERENCE))
def test_config_builds_for_its_reference_dataset(stem, simple_act):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{stem}.yaml"))
    shape, kind, params = REFERENCE[stem]
    check_model_data(**cfg, input_shape=shape, kind=kind)
    if params is not None:
        model = build_model(**cfg, input_shape=shape, num_classes=10, act=simple_act, kind=kind)
        assert count_parameters(model) == params

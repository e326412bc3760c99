"""Tests for harness.train.optimizers: equivalence with torch.optim, pass-through, config sync, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from harness.errors import ParameterError, ParameterTypeError, UnknownNameError
from harness.train.optimizers import OPTIMIZERS, build_optimizer, optimizer_defaults, register_optimizer

CONF = Path(__file__).resolve().parents[2] / "harness" / "conf" / "optimizer"


def _quadratic_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small, well-conditioned quadratic f(x) = 0.5 x^T A x - b^T x and a start point."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(5, 5, generator=gen)
    a = q @ q.T + 5 * torch.eye(5)
    b = torch.randn(5, generator=gen)
    x0 = torch.randn(5, generator=gen)
    return a, b, x0


def _run(opt_factory, steps: int = 3) -> torch.Tensor:
    """Run `steps` optimizer steps on the quadratic from the same start point; return x."""
    a, b, x0 = _quadratic_problem()
    x = torch.nn.Parameter(x0.clone())
    opt = opt_factory([x])
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * x @ a @ x - b @ x
        loss.backward()
        opt.step()
    return x.detach()


# (registry name, our settings, torch class, torch kwargs). Non-default settings everywhere so a
# dropped or renamed setting changes the numbers.
CASES = [
    ("sgd", dict(lr=0.05), torch.optim.SGD, dict(lr=0.05)),
    (
        "sgd",
        dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=1e-2),
        torch.optim.SGD,
        dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=1e-2),
    ),
    (
        "sgd",
        dict(lr=0.03, momentum=0.5, dampening=0.3),
        torch.optim.SGD,
        dict(lr=0.03, momentum=0.5, dampening=0.3),
    ),
    (
        "adam",
        dict(lr=0.02, betas=[0.8, 0.99], eps=1e-6, weight_decay=1e-2),  # list, as Hydra passes it
        torch.optim.Adam,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2),
    ),
    (
        "adamw",
        dict(lr=0.02, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.1),
        torch.optim.AdamW,
        dict(lr=0.02, betas=(0.85, 0.95), eps=1e-7, weight_decay=0.1),
    ),
    (
        "rmsprop",
        dict(lr=0.01, alpha=0.9, momentum=0.5, eps=1e-6, weight_decay=1e-3),
        torch.optim.RMSprop,
        dict(lr=0.01, alpha=0.9, momentum=0.5, eps=1e-6, weight_decay=1e-3),
    ),
]

IDS = [f"{case[0]}-{i}" for i, case in enumerate(CASES)]


@pytest.mark.parametrize(("name", "ours", "cls", "theirs"), CASES, ids=IDS)
def test_steps_match_torch_optimizer(name, ours, cls, theirs):
    """Same settings -> bit-identical parameters after several steps on a quadratic."""
    got = _run(lambda p: build_optimizer(name, p, **ours))
    want = _run(lambda p: cls(p, **theirs))
    start = _quadratic_problem()[2]
    assert not torch.equal(got, start)  # it actually moved
    assert torch.equal(got, want)


@pytest.mark.parametrize(("name", "ours", "cls", "theirs"), CASES, ids=IDS)
def test_settings_are_passed_through(name, ours, cls, theirs):
    """Every setting is visible in param_groups with the value given (betas as a tuple)."""
    opt = build_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], **ours)
    assert type(opt) is cls
    group = opt.param_groups[0]
    for key, value in theirs.items():
        assert group[key] == value, key


def test_defaults_when_settings_omitted():
    """Omitted settings take the documented defaults (MNIST-1D adam lr, Troiano sgd lr)."""
    p = [torch.nn.Parameter(torch.zeros(2))]
    assert build_optimizer("adam", p).param_groups[0]["lr"] == 1e-2
    sgd = build_optimizer("SGD", p).param_groups[0]  # names are case-insensitive
    assert (sgd["lr"], sgd["momentum"], sgd["nesterov"]) == (0.05, 0.0, False)


def test_module_and_param_groups_accepted():
    """An nn.Module means its parameters; param-group dicts keep per-group settings."""
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer("sgd", model, lr=0.1)
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    opt = build_optimizer(
        "adam", [{"params": [model.weight], "lr": 0.5}, {"params": [model.bias]}], lr=0.01
    )
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.01]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_config_matches_factory_defaults_and_builds(name):
    """conf/optimizer/<name>.yaml lists every setting, equal to the factory default, and builds."""
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    settings = optimizer_defaults(name)
    as_dict = OmegaConf.to_container(cfg)
    assert as_dict.pop("name") == name
    assert set(as_dict) == set(settings)
    for key, default in settings.items():
        value = as_dict[key]
        assert (list(value) if isinstance(value, list) else value) == (
            list(default) if isinstance(default, tuple) else default
        ), key
    # Exactly how the trainer will call it: a DictConfig unpacked (betas arrive as ListConfig).
    opt = build_optimizer(parameters=[torch.nn.Parameter(torch.zeros(2))], **cfg)
    assert opt.param_groups[0]["lr"] == cfg.lr


def test_config_files_cover_registry():
    """One config per registered optimizer and no stray configs."""
    assert {p.stem for p in CONF.glob("*.yaml")} == set(OPTIMIZERS)


# ---------------------------------------------------------------------------- errors


def _params():
    return [torch.nn.Parameter(torch.zeros(2))]


def test_unknown_name_suggests_closest_and_lists_all():
    with pytest.raises(ValueError) as err:
        build_optimizer("adma", _params())
    msg = str(err.value)
    assert msg.startswith("Unknown optimizer 'adma'. Did you mean 'adam'")
    assert "adam, adamw, rmsprop, sgd" in msg
    assert isinstance(err.value, UnknownNameError)


def test_unknown_setting_names_valid_settings():
    with pytest.raises(ValueError) as err:
        build_optimizer("sgd", _params(), momentun=0.9)
    msg = str(err.value)
    assert "'momentun'" in msg and "did you mean 'momentum'" in msg
    assert "lr, momentum, nesterov, weight_decay, dampening" in msg
    assert isinstance(err.value, ParameterError)


@pytest.mark.parametrize(
    ("name", "settings", "fragments"),
    [
        ("sgd", dict(lr=0.0), ["lr", "(0, inf)", "got 0.0"]),
        ("adam", dict(lr=-1e-3), ["lr", "(0, inf)", "got -0.001"]),
        ("sgd", dict(lr=math.nan), ["lr", "(0, inf)", "nan"]),
        ("sgd", dict(momentum=1.0), ["momentum", "[0, 1)", "got 1.0"]),
        ("sgd", dict(momentum=-0.1), ["momentum", "[0, 1)", "got -0.1"]),
        ("rmsprop", dict(momentum=1.5), ["momentum", "[0, 1)", "got 1.5"]),
        ("rmsprop", dict(alpha=1.0), ["alpha", "[0, 1)", "got 1.0"]),
        ("sgd", dict(nesterov=True), ["nesterov=True", "momentum in (0, 1)", "momentum=0.0"]),
        ("sgd", dict(nesterov=True, momentum=0.9, dampening=0.1), ["dampening=0", "0.1"]),
        ("sgd", dict(weight_decay=-1.0), ["weight_decay", "[0, inf)", "got -1.0"]),
        ("adam", dict(betas=[0.9, 1.0]), ["betas[1]", "[0, 1)", "got 1.0"]),
        ("adamw", dict(eps=0.0), ["eps", "(0, inf)", "got 0.0"]),
    ],
)
def test_out_of_range_values_name_value_and_range(name, settings, fragments):
    with pytest.raises(ValueError) as err:
        build_optimizer(name, _params(), **settings)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert isinstance(err.value, ParameterError)


@pytest.mark.parametrize(
    ("name", "settings", "fragments"),
    [
        ("adam", dict(lr="1e-2"), ["lr must be a number", "'1e-2'"]),
        ("adam", dict(betas=[0.9]), ["betas", "two numbers", "[0.9]"]),
        ("adam", dict(betas="0.9,0.99"), ["betas", "two numbers"]),
        ("sgd", dict(nesterov="false"), ["nesterov must be true or false", "'false'"]),
        ("sgd", dict(lr=True), ["lr must be a number", "True"]),
    ],
)
def test_wrong_types_raise_type_error(name, settings, fragments):
    with pytest.raises(TypeError) as err:
        build_optimizer(name, _params(), **settings)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert isinstance(err.value, ParameterTypeError)  # a TypeError and in the ConfigError family


def test_duplicate_registration_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_optimizer("SGD", torch.optim.SGD, {})


def test_unknown_name_suggestion_ignores_case():
    with pytest.raises(ValueError, match=r"Unknown optimizer 'Sgdd'\. Did you mean 'sgd'"):
        build_optimizer("Sgdd", _params())


def _train_mlp(opt_factory, steps: int = 25, dtype=torch.float32) -> list[torch.Tensor]:
    """A few steps of a small MLP (several parameter tensors of different shapes) on random data."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).to(dtype)
    opt = opt_factory(model.parameters())
    for _ in range(steps):
        x, y = torch.randn(32, 8, generator=gen, dtype=dtype), torch.randint(0, 3, (32,), generator=gen)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(("name", "ours", "cls", "theirs"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_default_foreach_implementation_is_bit_identical_to_torch_default(name, ours, cls, theirs, dtype):
    """The default (foreach) implementation trains to exactly torch's default single-tensor result."""
    got = _train_mlp(lambda p: build_optimizer(name, p, **ours), dtype=dtype)
    want = _train_mlp(lambda p: cls(p, **theirs, foreach=False), dtype=dtype)
    assert build_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], **ours).param_groups[0]["foreach"] is True
    assert all(torch.equal(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_fused_is_opt_in_and_close_to_the_default(name):
    """fused=True selects torch's fused kernel; it rounds differently, so the result is only close."""
    opt = build_optimizer(name, [torch.nn.Parameter(torch.zeros(2))], fused=True)
    assert opt.param_groups[0]["fused"] is True and not opt.param_groups[0]["foreach"]
    fused = _train_mlp(lambda p: build_optimizer(name, p, fused=True), steps=5, dtype=torch.float64)
    default = _train_mlp(lambda p: build_optimizer(name, p), steps=5, dtype=torch.float64)
    assert all(torch.allclose(f, d, rtol=0, atol=1e-12) for f, d in zip(fused, default))


def test_fused_without_a_fused_kernel_or_not_a_bool_is_rejected():
    """RMSprop has no fused kernel in torch; fused must be a real boolean."""
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ParameterError, match="optimizer 'rmsprop': fused=True, but torch's RMSprop has no fused"):
        build_optimizer("rmsprop", p, fused=True)
    with pytest.raises(ParameterTypeError, match="optimizer 'adam': fused must be true or false, got 'yes'"):
        build_optimizer("adam", p, fused="yes")

"""Behaviour every registered model must share: shapes, activation slots, a training step."""

from __future__ import annotations

import math

import pytest
import torch

from harness.models import MODELS, build_model, count_parameters, data_kinds

NUM_CLASSES = 7  # not 10, so a hard-coded class count would show up

# (model, params incl. the dataset kind, input_shape, expected number of act() calls)
CASES = [
    ("mlp", {"kind": "sequence"}, (40,), 2),
    ("mlp", {"depth": 3, "width": 16, "residual": True, "kind": "vector"}, (64,), 3),
    ("mlp", {"width": 8}, (2,), 2),
    ("mlp", {"width": 8}, (10, 3), 2),
    ("mlp", {"width": 8}, (1, 28, 28), 2),
    ("cnn1d", {"kind": "sequence"}, (40,), 3),
    ("cnn1d", {"channels": 4}, (20, 3), 3),
    ("lenet5", {}, (1, 28, 28), 4),
    ("lenet5", {"pool": "max"}, (3, 32, 32), 4),
    ("vgg", {}, (3, 32, 32), 3),
    ("vgg", {"batch_norm": False}, (1, 28, 28), 3),
    ("gru", {"kind": "sequence"}, (40,), 6),
    ("gru", {"bidirectional": False, "readout": "last", "chunk": 4}, (40,), 3),
    ("gru", {"hidden_size": 4}, (12, 3), 6),
    ("gru", {"hidden_size": 4}, (1, 28, 28), 6),
    ("transformer", {"kind": "sequence"}, (40,), 2),
    ("transformer", {"dim": 16, "heads": 2, "pool": "mean"}, (8, 3), 2),
    ("transformer", {"dim": 16, "heads": 2}, (1, 28, 28), 2),
    ("transformer", {"dim": 16, "heads": 2, "depth": 3}, (3, 32, 32), 3),
    ("bnn", {"width": 32}, (1, 28, 28), 3),
    ("bnn", {"width": 32, "depth": 2, "kind": "vector"}, (64,), 2),
    ("bnn", {"width": 32, "kind": "sequence"}, (40,), 3),
    ("logistic", {"kind": "vector"}, (64,), 0),
    ("logistic", {"kind": "sequence"}, (40,), 0),
    ("logistic", {}, (1, 28, 28), 0),
]
IDS = [f"{name}-{'x'.join(map(str, shape))}-{i}" for i, (name, _, shape, _) in enumerate(CASES)]


def _batch(shape: tuple[int, ...], n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, *shape), torch.arange(n) % NUM_CLASSES


def test_cases_cover_every_model_and_kind():
    """Every registered model is exercised on every data kind it declares (resnet18 elsewhere)."""
    covered = {(name, kind) for name, params, shape, _ in CASES
               for kind in data_kinds(shape, params.get("kind"))}
    covered |= {("resnet18", "image")}
    declared = {(name, kind) for name, entry in MODELS.items() for kind in entry.kinds}
    assert declared <= covered


@pytest.mark.parametrize("name, params, shape, slots", CASES, ids=IDS)
def test_output_shape(name, params, shape, slots, simple_act):
    model = build_model(name, input_shape=shape, num_classes=NUM_CLASSES, act=simple_act, **params)
    x, _ = _batch(shape, n=3)
    model.eval()  # batch statistics are irrelevant here; eval also checks the BN running path
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, NUM_CLASSES)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, params, shape, slots", CASES, ids=IDS)
def test_every_activation_slot_comes_from_act(
    name, params, shape, slots, counting_act, find_foreign
):
    model = build_model(
        name, input_shape=shape, num_classes=NUM_CLASSES, act=counting_act, **params
    )
    assert len(counting_act.calls) == slots
    assert find_foreign(model, counting_act.modules) == []
    # Each module the factory made is part of the model and runs in the forward pass.
    in_model = {id(m) for m in model.modules()}
    assert all(id(m) in in_model for m in counting_act.modules)
    used: set[int] = set()
    for m in counting_act.modules:
        m.register_forward_hook(lambda mod, inp, out: used.add(id(mod)))
    model(_batch(shape)[0])
    assert used == {id(m) for m in counting_act.modules}


@pytest.mark.parametrize("name, params, shape, slots", CASES, ids=IDS)
def test_training_step_with_nontrivial_pair(name, params, shape, slots, pair_act, train_step):
    model = build_model(name, input_shape=shape, num_classes=NUM_CLASSES, act=pair_act, **params)
    loss, change, has_grad = train_step(model, *_batch(shape))
    assert math.isfinite(loss)
    assert all(has_grad.values()), [n for n, g in has_grad.items() if not g]
    # The first parameter sits below every activation slot, so it moves only if the surrogate
    # gradient made it through all of them.
    first = next(iter(change))
    assert change[first] > 0, first
    assert all(math.isfinite(c) for c in change.values())


def _heavy_check(name, params, slots, make_counting, pair_act, find_foreign, train_step):
    """Forward + one step on 2 CIFAR-sized samples through a counting wrapper around the pair."""
    counting = make_counting(pair_act)
    model = build_model(
        name, input_shape=(3, 32, 32), num_classes=NUM_CLASSES, act=counting, **params
    )
    assert len(counting.calls) == slots
    assert find_foreign(model, counting.modules) == []
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    loss, change, has_grad = train_step(model, x, y, lr=0.01)
    assert math.isfinite(loss)
    assert all(has_grad.values())
    assert change[next(iter(change))] > 0
    return model


def test_vgg16_forward_and_step(make_counting, pair_act, find_foreign, train_step):
    model = _heavy_check("vgg", {"variant": "vgg16"}, 13, make_counting, pair_act, find_foreign,
                         train_step)
    assert count_parameters(model) == 14_722_503  # 7 classes; 14,724,042 with 10


def test_resnet18_forward_and_step(make_counting, pair_act, find_foreign, train_step):
    # 9 act() modules: stem + one per BasicBlock (applied twice inside the block).
    model = _heavy_check("resnet18", {}, 9, make_counting, pair_act, find_foreign, train_step)
    assert count_parameters(model) == 11_172_423  # 7 classes; 11,173,962 with 10


def test_harness_act_factory_builds_every_case(make_counting):
    """The real harness.activations.ActFactory plugs in: one fresh module per slot."""
    from harness.activations import ActFactory

    for name, params, shape, slots in CASES:
        act = make_counting(ActFactory("relu", "rectangular"))
        model = build_model(name, input_shape=shape, num_classes=NUM_CLASSES, act=act, **params)
        assert len(act.calls) == slots, name
        assert model(_batch(shape)[0]).shape == (4, NUM_CLASSES)

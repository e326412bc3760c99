"""What the report headlines, measured by the trainer: gradient fidelity through the pairs, the
whole model's saved bytes against the native op, and time to target in seconds."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.activations import ActivationPair
from harness.sweep.run import build_run
from harness.train.diagnostics import gradient_fidelity, parameters_through_pairs
from harness.train.memory import model_saved_memory, native_module
from harness.train.trainer import Trainer, TrainerSettings
from support.configs import tiny_config

N, IN, HID, OUT = 8, 16, 32, 4
F32 = 4


def _mlp(forward="relu", backward="exact", **params):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN, HID), ActivationPair(forward, backward, **params), nn.Linear(HID, HID),
                         ActivationPair(forward, backward, **params), nn.Linear(HID, OUT))


def test_parameters_through_pairs_excludes_the_output_layer_and_follows_residuals():
    model = _mlp()
    assert parameters_through_pairs(model, torch.randn(N, IN)) == {"0.weight", "0.bias", "2.weight", "2.bias"}

    class Skip(nn.Module):  # the head also sees the input directly: still downstream of no pair on that path
        def __init__(self):
            super().__init__()
            self.a, self.act, self.head, self.side = nn.Linear(IN, HID), ActivationPair("relu", "exact"), nn.Linear(HID, OUT), nn.Linear(IN, OUT)

        def forward(self, x):
            return self.head(self.act(self.a(x))) + self.side(x)

    assert parameters_through_pairs(Skip(), torch.randn(N, IN)) == {"a.weight", "a.bias"}


def test_through_pairs_cosine_matches_an_independent_computation():
    model, x, y = _mlp("relu", "full_jam"), torch.randn(64, IN), torch.randint(0, OUT, (64,))
    fid = gradient_fidelity(model, F.cross_entropy, x, y)
    pair_grads = torch.autograd.grad(F.cross_entropy(model(x), y), [model[0].weight, model[0].bias, model[2].weight, model[2].bias])
    exact = nn.Sequential(model[0], nn.ReLU(), model[2], nn.ReLU(), model[4])
    exact_grads = torch.autograd.grad(F.cross_entropy(exact(x), y), [model[0].weight, model[0].bias, model[2].weight, model[2].bias])
    a = torch.cat([g.flatten() for g in pair_grads]).double()
    b = torch.cat([g.flatten() for g in exact_grads]).double()
    # full_jam draws fresh uniforms per call, so the independent pass only bounds the value; the
    # headline excludes the exact head, hence it is below the all-parameter figure.
    assert fid["through_pairs_params"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert fid["through_pairs"]["cosine"] < fid["overall"]["cosine"]
    assert fid["layer_min"]["layer"] in ("0", "2") and fid["layer_min"]["cosine"] <= fid["through_pairs"]["cosine"] + 1e-12
    assert 0 < float(a @ b / (a.norm() * b.norm())) < 1
    exact_fid = gradient_fidelity(_mlp("relu", "exact"), F.cross_entropy, x, y)
    assert exact_fid["through_pairs"]["cosine"] == pytest.approx(1.0) and exact_fid["layer_min"]["cosine"] == pytest.approx(1.0)


def test_flat_forward_has_no_through_pairs_cosine():
    fid = gradient_fidelity(_mlp("step", "rectangular"), F.cross_entropy, torch.randn(32, IN), torch.randint(0, OUT, (32,)))
    assert fid["through_pairs"]["cosine"] is None and "zero" in fid["through_pairs"]["note"]
    assert fid["layer_min"]["cosine"] is None and fid["overall"]["cosine"] is not None  # the head's gradient is exact


def test_model_memory_against_native_relu_and_gelu():
    x, y = torch.randn(N, IN), torch.randint(0, OUT, (N,))
    # Not parameters: the input (saved by the first Linear), two hidden outputs, and the loss's own saves.
    relu = _mlp("relu", "exact")
    r = model_saved_memory(relu, lambda: F.cross_entropy(relu(x), y))
    masks = 2 * N * HID // 8  # the pair's 1-bit gates: the only bytes native ReLU does not keep
    assert r["saved_bytes"] - r["native_saved_bytes"] == masks and r["native_op"] == "ReLU"
    assert r["vs_native"] == pytest.approx(r["saved_bytes"] / r["native_saved_bytes"])
    assert all(isinstance(m, ActivationPair) for m in (relu[1], relu[3]))  # put back after the native pass
    gelu = _mlp("gelu", "quantized", bits=2)
    g = model_saved_memory(gelu, lambda: F.cross_entropy(gelu(x), y))
    # Native GELU keeps its input x (2 x N x HID floats) that nothing else shares; 2-bit codes replace it.
    assert g["native_saved_bytes"] - g["saved_bytes"] == 2 * N * HID * F32 - 2 * N * HID * 2 // 8
    step = _mlp("step", "rectangular")
    s = model_saved_memory(step, lambda: F.cross_entropy(step(x), y))
    assert s["native_saved_bytes"] is None and "step" in s["note"] and s["saved_bytes"] > 0
    assert native_module("silu", {"beta": 2.0}) is None and isinstance(native_module("leaky_relu", {"slope": 0.1}), nn.LeakyReLU)


def test_time_to_target_in_steps_and_seconds_with_a_dataset_default():
    run = build_run(tiny_config("trainer.steps=60", "trainer.eval_every=20", "trainer.target_by_dataset={mnist1d: 0.15}"))
    result = Trainer(run["model"], run["data"], run["optimizer"], run["scheduler"], run["settings"], generator=run["generator"]).fit()
    ttt, speed = result.metrics["time_to_target"], result.metrics["speed"]
    first = next(s for s, a in zip(result.curves["step"], result.curves["test_acc"]) if a >= 0.15)
    assert ttt["target"] == 0.15 and ttt["step"] == first
    times = speed["train_time_s_at_eval"]
    assert len(times) == len(result.curves["step"]) and times == sorted(times) and times[0] > 0
    assert speed["time_to_target_s"] == times[result.curves["step"].index(first)]
    assert TrainerSettings().target_by_dataset["mnist1d"] == 0.6
    with pytest.raises(ValueError, match="target_by_dataset.mnist1d"):
        TrainerSettings(target_by_dataset={"mnist1d": 2})

"""Tests for harness.train.schedules: lr values at specific steps, SNR adaptation, resume, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from harness.train.schedules import SCHEDULERS, SNRAdaptiveSchedule, build_scheduler

CONF = Path(__file__).resolve().parents[2] / "harness" / "conf" / "scheduler"
# Most tests here step a schedule without training, which torch's schedulers warn about.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")


def _opt(lr: float = 1.0, n: int = 4, groups: int = 1) -> torch.optim.SGD:
    """SGD over `groups` fresh parameter groups, group i having lr * (i + 1)."""
    return torch.optim.SGD(
        [{"params": [torch.nn.Parameter(torch.zeros(n))], "lr": lr * (i + 1)} for i in range(groups)],
        lr=lr,
    )


def _lrs(sched, steps: int) -> list[float]:
    """Group-0 lr used by steps 0 .. steps-1 (value before each step() call)."""
    out = []
    for _ in range(steps):
        out.append(sched.get_last_lr()[0])
        sched.step()
    return out


# ---------------------------------------------------------------------------- deterministic shapes


def test_constant():
    opt = _opt(0.3)
    sched = build_scheduler("constant", opt, total_steps=5)
    assert _lrs(sched, 8) == [0.3] * 8
    assert sched.last_scale == 1.0


def test_constant_schedule_steps_without_torchs_scheduler_and_resumes():
    """A constant schedule only counts steps (torch's step() would set the same rates); its
    state still resumes exactly, and a scale that moves (snr_adaptive) is still applied."""
    opt = _opt(0.3, groups=2)
    sched = build_scheduler("constant", opt, total_steps=100)
    sched.scheduler.step = lambda *a: (_ for _ in ()).throw(AssertionError("torch scheduler stepped"))
    for _ in range(50):
        sched.step()
    assert sched.last_step == 50 and sched.scheduler.last_epoch == 50
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.6] and sched.get_last_lr() == [0.3, 0.6]
    state = sched.state_dict()
    resumed = build_scheduler("constant", _opt(0.3, groups=2), total_steps=100)
    resumed.load_state_dict(state)
    assert resumed.last_step == 50 and resumed.scheduler.last_epoch == 50 and resumed.get_last_lr() == [0.3, 0.6]
    del sched.scheduler.step  # back to torch's method
    sched.last_scale = 0.5  # what snr_adaptive does before calling LRSchedule.step
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.15, 0.3])


def test_step_decay_at_boundaries():
    sched = build_scheduler("step", _opt(0.8), total_steps=10, step_size=3, gamma=0.5)
    lrs = _lrs(sched, 10)
    # t:      0    1    2    3    4    5    6    7    8    9
    want = [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1]
    assert lrs == pytest.approx(want, rel=1e-12)


def test_cosine_values():
    sched = build_scheduler("cosine", _opt(1.0), total_steps=8, min_lr=0.1)
    lrs = _lrs(sched, 11)
    assert lrs[0] == pytest.approx(1.0)
    # quarter way: 0.1 + 0.9 * (1 + cos(pi/4)) / 2
    assert lrs[2] == pytest.approx(0.1 + 0.9 * (1 + 0.7071067811865476) / 2)
    assert lrs[4] == pytest.approx((1.0 + 0.1) / 2)  # half-way = (base + min) / 2
    assert lrs[8] == pytest.approx(0.1)
    assert lrs[9:] == pytest.approx([0.1, 0.1])  # holds after the end, no restart
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_cosine_eta_min_alias_and_default_zero():
    a = _lrs(build_scheduler("cosine", _opt(2.0), total_steps=6, eta_min=0.5), 7)
    b = _lrs(build_scheduler("cosine", _opt(2.0), total_steps=6, min_lr=0.5), 7)
    assert a == b
    assert a[3] == pytest.approx(1.25)
    assert _lrs(build_scheduler("cosine", _opt(2.0), total_steps=6), 7)[6] == pytest.approx(0.0)


def test_warmup_then_cosine():
    sched = build_scheduler("warmup", _opt(1.0), total_steps=14, warmup_steps=4, min_lr=0.0)
    lrs = _lrs(sched, 15)
    # Linear ramp (t+1)/(W+1), reaching base exactly where cosine starts.
    assert lrs[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lrs[4] == pytest.approx(1.0)
    # Cosine over the remaining 10 steps: half-way at t = 4 + 5.
    assert lrs[9] == pytest.approx(0.5)
    assert lrs[6] == pytest.approx((1 + math.cos(math.pi * 2 / 10)) / 2)
    assert lrs[14] == pytest.approx(0.0)


def test_warmup_fraction_and_after_constant():
    by_fraction = _lrs(build_scheduler("warmup", _opt(1.0), total_steps=16, warmup_fraction=0.25), 17)
    by_steps = _lrs(build_scheduler("warmup", _opt(1.0), total_steps=16, warmup_steps=4), 17)
    assert by_fraction == by_steps  # round(0.25 * 16) = 4; default after = cosine
    const = _lrs(build_scheduler("warmup", _opt(1.0), total_steps=10, warmup_steps=3, after="constant"), 10)
    assert const == pytest.approx([0.25, 0.5, 0.75] + [1.0] * 7)


def test_every_param_group_scaled_from_its_own_base():
    opt = _opt(1.0, groups=2)  # base lrs 1.0 and 2.0
    sched = build_scheduler("cosine", opt, total_steps=4, min_lr=0.0)
    sched.step()
    sched.step()
    assert sched.get_last_lr() == pytest.approx([0.5, 1.0])
    assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    sched.get_last_lr().append(123.0)  # a copy: callers can't corrupt the schedule
    assert len(sched.get_last_lr()) == 2


def test_rebuilding_uses_configured_base_not_decayed_lr():
    opt = _opt(1.0)
    sched = build_scheduler("cosine", opt, total_steps=4)
    for _ in range(4):
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    again = build_scheduler("constant", opt, total_steps=4)
    assert again.get_last_lr() == [1.0]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("constant", {}),
        ("step", dict(step_size=2, gamma=0.5)),
        ("cosine", dict(min_lr=0.01)),
        ("warmup", dict(warmup_steps=3)),
        ("snr_adaptive", dict(base="warmup", warmup_steps=3, beta=0.8)),
    ],
)
def test_state_dict_resume_is_exact(name, params):
    """Stop at step 7, rebuild from state_dicts, continue: identical lrs to an uninterrupted run."""
    total, split = 12, 7
    grads = torch.randn(total, 4, generator=torch.Generator().manual_seed(1)) + 0.5

    def make():
        opt = _opt(0.5)
        return opt, build_scheduler(name, opt, total_steps=total, **params)

    def run(opt, sched, ts):
        out = []
        for t in ts:
            opt.param_groups[0]["params"][0].grad = grads[t].clone()
            opt.step()
            sched.step()
            out.append(sched.get_last_lr())
        return out

    opt, sched = make()
    full = run(opt, sched, range(total))
    opt, sched = make()
    first = run(opt, sched, range(split))
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt, sched = make()
    opt.load_state_dict(opt_state)
    sched.load_state_dict(sched_state)
    assert sched.get_last_lr() == first[-1]
    assert first + run(opt, sched, range(split, total)) == full


# ---------------------------------------------------------------------------- snr_adaptive


def _snr_run(grad_fn, *, steps: int, n: int = 2048, lr: float = 0.1, seed: int = 0, **params):
    """Feed gradients grad_fn(t, gen) through optimizer.step() + scheduler.step(); record per step."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.zeros(n))
    opt = torch.optim.SGD([p], lr=lr)
    params.setdefault("base", "constant")
    sched = build_scheduler("snr_adaptive", opt, total_steps=steps, **params)
    scales, lrs, rhos = [], [], []
    for t in range(steps):
        p.grad = grad_fn(t, gen)
        opt.step()
        sched.step()
        scales.append(sched.last_scale)
        lrs.append(sched.get_last_lr()[0])
        rhos.append(sched.last_rho)
    return sched, scales, lrs, rhos


def test_snr_pure_noise_drives_scale_to_min():
    n = 2048
    _, scales, lrs, _ = _snr_run(
        lambda t, g: torch.randn(n, generator=g), steps=120, rho_ref=0.5, ref_steps=5, min_scale=0.1
    )
    assert scales[:4] == [1.0] * 4  # hold period
    assert max(scales[20:]) < 0.3  # well below 1
    assert scales[-1] == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(0.01)


def test_snr_constant_gradient_stays_at_max():
    direction = torch.randn(2048, generator=torch.Generator().manual_seed(3))
    _, scales, lrs, rhos = _snr_run(
        lambda t, g: direction.clone(), steps=60, rho_ref=0.25, ref_steps=3, max_scale=2.0
    )
    assert scales[2:] == [2.0] * 58
    assert lrs[2:] == pytest.approx([0.2] * 58)
    assert min(rhos[1:]) > 0.999  # pure signal


def test_snr_calibrated_reference_on_constant_gradient_gives_scale_one():
    direction = torch.randn(256, generator=torch.Generator().manual_seed(4))
    sched, scales, _, _ = _snr_run(lambda t, g: direction.clone(), n=256, steps=40, ref_steps=10, max_scale=3.0)
    assert sched.rho_ref == pytest.approx(1.0, abs=1e-4)
    assert scales[9:] == pytest.approx([1.0] * 31, abs=1e-4)


def test_snr_estimates_signal_fraction():
    """g = mu + noise with ||mu||^2 = N/3 -> debiased rho ~= S/(S+N) = 0.25; scale follows it.

    beta = 0.8 makes the pure-noise share c = (1-beta)/(1+beta) = 0.11 large, so the raw ratio
    (~0.33) would fail: this checks the debiasing, not just the EMAs.
    """
    n = 4096
    mu = torch.randn(n, generator=torch.Generator().manual_seed(5))
    mu *= math.sqrt(n / 3.0) / mu.norm()  # S = n/3 exactly; N = E||noise||^2 = n
    _, scales, _, rhos = _snr_run(
        lambda t, g: mu + torch.randn(n, generator=g), n=n, steps=300, rho_ref=1.0, ref_steps=2, beta=0.8
    )
    assert sum(rhos[-100:]) / 100 == pytest.approx(0.25, abs=0.015)
    assert scales[-1] == pytest.approx(rhos[-1])  # rho_ref = 1 -> scale = rho


def test_snr_calibrate_on_signal_then_noise_drops_lr():
    n = 2048
    direction = torch.randn(n, generator=torch.Generator().manual_seed(6))

    def grads(t, g):
        noise = 0.3 * torch.randn(n, generator=g)
        return direction + noise if t < 40 else torch.randn(n, generator=g)

    sched, scales, _, _ = _snr_run(grads, steps=140, ref_steps=30, min_scale=0.05)
    assert 0.8 < sched.rho_ref <= 1.0  # calibrated on the mostly-signal phase
    assert scales[35] == pytest.approx(1.0, abs=0.05)
    assert max(scales[100:]) < 0.15


def test_snr_lr_stays_within_scale_bounds_times_base():
    """Random mix of signal/noise phases and magnitudes, cosine base: lr/base in [min, max]."""
    n, steps, base_lr = 512, 200, 0.1
    direction = torch.randn(n, generator=torch.Generator().manual_seed(7))

    magnitude = 10.0 ** torch.randn(steps // 25 + 1, generator=torch.Generator().manual_seed(8))

    def grads(t, g):
        # 25-step phases alternating mostly-signal / pure noise, each at its own random scale.
        w = 1.0 if (t // 25) % 2 == 0 else 0.0
        return float(magnitude[t // 25]) * (w * direction + 0.3 * torch.randn(n, generator=g))

    sched, scales, lrs, _ = _snr_run(
        grads, n=n, steps=steps, lr=base_lr, base="cosine", min_lr=0.01, rho_ref=0.3,
        ref_steps=5, min_scale=0.2, max_scale=1.5,
    )
    assert all(0.2 <= s <= 1.5 for s in scales)
    assert min(scales) < 1.0 < max(scales)  # both directions exercised
    for t, (lr, s) in enumerate(zip(lrs, scales), start=1):
        cosine = 0.01 + (base_lr - 0.01) * (1 + math.cos(math.pi * min(t, steps) / steps)) / 2
        assert lr == pytest.approx(cosine * s)


def test_snr_reads_grads_from_optimizer_of_real_model_and_keeps_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    model[2].bias.requires_grad_(False)  # frozen params are skipped
    model[0].bias.grad = None
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    sched = build_scheduler("snr_adaptive", opt, total_steps=50, base="cosine", ref_steps=5)
    assert isinstance(sched, SNRAdaptiveSchedule)
    buffers = [m.data_ptr() for m in sched._m]
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    for step in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if step % 2:
            model[0].bias.grad = None  # a param without gradient this step counts as zero
        opt.step()
        sched.step()
        assert 0.1 <= sched.last_scale <= 1.0
    assert [m.data_ptr() for m in sched._m] == buffers  # no per-step reallocation
    assert 0.0 <= sched.last_rho <= 1.0
    opt.zero_grad(set_to_none=True)
    with pytest.raises(RuntimeError, match="before optimizer.zero_grad"):
        sched.step()


def test_snr_half_precision_params_use_fp32_buffers():
    p = torch.nn.Parameter(torch.zeros(16, dtype=torch.bfloat16))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_scheduler("snr_adaptive", opt, total_steps=10, base="constant")
    p.grad = torch.ones(16, dtype=torch.bfloat16)
    opt.step()
    sched.step()
    assert sched._m[0].dtype == torch.float32


def test_snr_default_ref_steps():
    assert build_scheduler("snr_adaptive", _opt(), total_steps=200).ref_steps == 20
    warm = build_scheduler("snr_adaptive", _opt(), total_steps=200, base="warmup", warmup_steps=15)
    assert warm.ref_steps == 15


# ---------------------------------------------------------------------------- configs


def test_config_files_build():
    """Each conf/scheduler yaml builds exactly as the trainer will call it (DictConfig unpacked)."""
    files = {p.stem: OmegaConf.load(p) for p in CONF.glob("*.yaml")}
    assert set(files) == {"constant", "step", "cosine", "warmup_cosine", "snr_adaptive", "snr_constant"}
    for stem, cfg in files.items():
        assert cfg.name in SCHEDULERS, stem
        sched = build_scheduler(optimizer=_opt(0.01), total_steps=10_000, **cfg)
        assert sched.get_last_lr()[0] > 0
    warm = build_scheduler(optimizer=_opt(1.0), total_steps=1000, **files["warmup_cosine"])
    # W = 5% of 1000 = 50: the ramp's last value is 50/51, cosine then starts at the base.
    assert _lrs(warm, 51)[49:] == pytest.approx([50 / 51, 1.0])


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "params", "exc", "fragments"),
    [
        ("cosine", dict(total_steps=0), ValueError, ["total_steps", "[1, inf)", "got 0"]),
        ("cosine", dict(total_steps=10.0), TypeError, ["total_steps", "integer", "10.0"]),
        ("step", dict(step_size=2, gamma=0.0), ValueError, ["gamma", "(0, 1]", "got 0.0"]),
        ("step", dict(step_size=2, gamma=1.5), ValueError, ["gamma", "(0, 1]", "got 1.5"]),
        ("step", dict(step_size=0), ValueError, ["step_size", "[1, inf)", "got 0"]),
        ("step", {}, ValueError, ["missing required", "step_size"]),
        ("cosine", dict(min_lr=2.0), ValueError, ["min_lr=2.0", "[0, base lr]", "1.0"]),
        ("cosine", dict(min_lr=0.1, eta_min=0.1), ValueError, ["min_lr or its alias eta_min"]),
        ("warmup", dict(warmup_steps=10), ValueError, ["warmup_steps", "[0, 10)", "got 10"]),
        ("warmup", {}, ValueError, ["exactly one of warmup_steps or warmup_fraction"]),
        ("warmup", dict(warmup_steps=2, warmup_fraction=0.1), ValueError, ["exactly one"]),
        ("warmup", dict(warmup_fraction=1.0), ValueError, ["warmup_fraction", "(0, 1)", "got 1.0"]),
        ("warmup", dict(warmup_fraction=0.96), ValueError, ["warmup_fraction=0.96", "10 warm-up steps"]),
        ("warmup", dict(warmup_steps=2, after="cosin"), ValueError, ["after='cosin'", "Did you mean 'cosine'"]),
        ("warmup", dict(warmup_steps=2, after="warmup"), ValueError, ["after='warmup'", "constant, cosine, step"]),
        ("warmup", dict(warmup_steps=2, after="constant", min_lr=0.0), ValueError, ["unknown parameter", "'min_lr'"]),
        ("snr_adaptive", dict(min_scale=1.5), ValueError, ["min_scale", "(0, 1]", "got 1.5"]),
        ("snr_adaptive", dict(max_scale=0.5), ValueError, ["max_scale", "[1, inf)", "got 0.5"]),
        ("snr_adaptive", dict(beta=1.0), ValueError, ["beta", "(0, 1)", "got 1.0"]),
        ("snr_adaptive", dict(rho_ref=0.0), ValueError, ["rho_ref", "(0, 1]", "got 0.0"]),
        ("snr_adaptive", dict(ref_steps=1), ValueError, ["ref_steps", "[2, 10)", "got 1"]),
        ("snr_adaptive", dict(ref_steps=10), ValueError, ["ref_steps", "[2, 10)", "got 10"]),
        ("snr_adaptive", dict(base="linear"), ValueError, ["base='linear'", "constant, cosine, step, warmup"]),
        ("snr_adaptive", dict(bta=0.9), ValueError, ["'bta'", "did you mean 'beta'", "min_lr"]),
        (
            "snr_adaptive",
            dict(base="warmup", warmup_steps=2, bta=0.9),
            ValueError,
            ["'bta'", "did you mean 'beta'", "warmup_steps"],
        ),
    ],
)
def test_bad_inputs_name_value_and_allowed_range(name, params, exc, fragments):
    kwargs = {"total_steps": 10, **params}
    with pytest.raises(exc) as err:
        build_scheduler(name, _opt(1.0), **kwargs)
    for fragment in fragments:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_unknown_scheduler_name_suggests_and_lists():
    with pytest.raises(ValueError) as err:
        build_scheduler("cosin", _opt(), total_steps=10)
    msg = str(err.value)
    assert msg == "Unknown scheduler 'cosin'. Did you mean 'cosine'? Valid schedulers: constant, cosine, snr_adaptive, step, warmup."


def test_unknown_setting_lists_valid_settings():
    with pytest.raises(ValueError) as err:
        build_scheduler("step", _opt(), total_steps=10, step_size=2, gama=0.5)
    assert "'gama' (did you mean 'gamma'?)" in str(err.value)
    assert "step_size, gamma" in str(err.value)


def test_step_size_beyond_run_warns():
    with pytest.warns(UserWarning, match="never decays"):
        build_scheduler("step", _opt(), total_steps=10, step_size=10)

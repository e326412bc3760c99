"""FreeGrad's gradient transforms: scale, clip_norm, centralize, noise(mode=gradient)."""
import pytest
import torch

from harness.activations import ActivationPair, ParameterError, RandomSource, Saves, make_pair


def grad(forward, rule, x, upstream, seed=0, **params):
    spec = make_pair(forward, rule, rng=RandomSource(seed), **params)
    leaf = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(ActivationPair.from_spec(spec)(leaf), leaf, upstream)
    return g, spec


X = torch.randn(8, 5, 7, generator=torch.Generator().manual_seed(0)) * 2
UP = torch.randn(8, 5, 7, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("of,params,saves", [
    ("exact", {}, Saves.BITS),                       # relu's gate: levels scaled, still one bit
    ("quantized", {"bits": 3}, Saves.CODES),          # the few-bit code keeps its bits
    ("ste", {}, Saves.NOTHING),
    ("fast_sigmoid", {"k": 5.0}, Saves.INPUT),
    ("positive_jam", {}, Saves.BITS),                 # stochastic: same seed, same draws
    ("clip_norm", {"max_norm": 0.5}, Saves.BITS),     # a transform inside: scaled after it
])
def test_scale_multiplies_the_inner_rule_and_keeps_its_storage(of, params, saves):
    inner, inner_spec = grad("relu", of, X, UP, seed=4, **params)
    scaled, spec = grad("relu", "scale", X, UP, seed=4, s=-2.5, of=of, **params)
    assert spec.saves is saves and spec.rule.bits == inner_spec.rule.bits
    torch.testing.assert_close(scaled, -2.5 * inner, rtol=1e-6, atol=1e-6)
    if saves is Saves.BITS and of == "exact":
        assert spec.gate_pair_args is not None  # the fused C++ gate pair with levels (0, -2.5)


def test_scale_of_a_smooth_exact_rule_uses_the_closed_form_not_the_unscaled_native_kernel():
    g, _ = grad("silu", "scale", X, UP, s=3.0)
    ref, _ = grad("silu", "exact", X, UP)
    torch.testing.assert_close(g, 3.0 * ref)


def test_clip_norm_clips_the_whole_tensor_to_max_norm_and_leaves_small_gradients_alone():
    h = torch.where(X > 0, UP, torch.zeros_like(UP))  # relu's exact gradient
    g, spec = grad("relu", "clip_norm", X, UP, max_norm=0.75)
    assert h.norm() > 0.75
    torch.testing.assert_close(g, h * (0.75 / h.norm()))
    torch.testing.assert_close(g.norm(), torch.tensor(0.75))
    small, _ = grad("relu", "clip_norm", X, UP * 1e-3, max_norm=0.75)
    torch.testing.assert_close(small, h * 1e-3)
    zero, _ = grad("relu", "clip_norm", X, torch.zeros_like(UP))
    assert torch.equal(zero, torch.zeros_like(UP))  # eps: no 0/0
    assert spec.saves is Saves.BITS and not spec.rule.elementwise


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_centralize_subtracts_the_mean_along_dim(dim):
    h = UP / (1 + 25 * X.abs()) ** 2  # fast_sigmoid's gradient
    g, spec = grad("step", "centralize", X, UP, dim=dim, of="fast_sigmoid")
    torch.testing.assert_close(g, h - h.mean(dim=dim, keepdim=True))
    torch.testing.assert_close(g.mean(dim=dim), torch.zeros_like(g.mean(dim=dim)), rtol=0, atol=1e-7)
    assert spec.saves is Saves.INPUT


def test_centralize_with_a_dim_the_gradient_lacks_says_so():
    with pytest.raises(ValueError, match="dim=5 but the gradient has 3 dimensions"):
        grad("relu", "centralize", X, UP, dim=5)


def test_gradient_noise_is_added_to_the_gradient_not_scaled_by_it():
    x = torch.randn(200000)
    upstream = torch.full_like(x, 1e-3)
    g, spec = grad("relu", "noise", x, upstream, sigma=0.2, mode="gradient", of="ste")
    noise = g - upstream
    assert abs(noise.mean()) < 2e-3 and abs(noise.std() - 0.2) < 2e-3  # additive: 0.2, not 0.2 * 1e-3
    mult, _ = grad("relu", "noise", x, upstream, sigma=0.2, of="ste")  # in g: scaled by dL/dy
    assert (mult - upstream).std() < 1e-3
    again, _ = grad("relu", "noise", x, upstream, sigma=0.2, mode="gradient", of="ste")
    assert torch.equal(g, again) and spec.rule.stochastic


@pytest.mark.parametrize("outer", ["quantized", "noise"])
@pytest.mark.parametrize("inner", ["clip_norm", "centralize"])
def test_elementwise_combinators_refuse_gradient_transforms(outer, inner):
    with pytest.raises(ParameterError, match=f"needs an elementwise rule g\\(x\\) as `of`; '{inner}'"):
        make_pair("relu", outer, of=inner)


def test_transforms_have_no_elementwise_g():
    rule = make_pair("relu", "clip_norm").rule
    with pytest.raises(TypeError, match="reference_grad"):
        rule.values(X)
    torch.testing.assert_close(rule.reference_grad(X, UP), grad("relu", "clip_norm", X, UP)[0])


def test_transforms_describe_themselves_with_their_inner_rule():
    assert make_pair("step", "clip_norm", of="atan", a=3.0).describe() == "step/clip_norm(max_norm=1.0, of=atan, a=3.0)"
    assert make_pair("relu", "scale", s=0.5).describe() == "relu/scale(s=0.5, of=exact)"

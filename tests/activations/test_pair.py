"""The pair as a module and a function: dtypes, shapes, layouts, devices, compile, bad input."""
import pytest
import torch

from harness.activations import (
    RULES, ActivationPair, ParameterError, RandomSource, UnknownNameError, make_pair, pair,
)
from harness.measure import SavedBytesCounter

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SAMPLE_RULES = ["exact", "rectangular", "constant", "b_silu", "positive_jam", "noise"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("rule", RULES.names())
def test_dtypes_and_devices_give_the_rule_gradient(device, dtype, rule):
    x = (torch.linspace(-3, 3, 999) + 0.0013).to(device=device, dtype=dtype).requires_grad_()
    spec = make_pair("relu", rule, rng=RandomSource(3))
    y = ActivationPair.from_spec(spec)(x)
    assert y.dtype == dtype and y.device.type == device
    upstream = torch.linspace(-1, 1, 999, device=device).to(dtype)
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert grad.dtype == dtype and grad.shape == x.shape
    tol = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 2e-2}[dtype]
    if spec.rule.stochastic:  # the same draws need the same dtype: compare in it
        expected = spec.rule.reference_grad(x.detach().cpu(), upstream.cpu(), RandomSource(3)).double()
    else:  # deterministic: against the float64 formula at the same (rounded) points
        expected = spec.rule.reference_grad(x.detach().double().cpu(), upstream.double().cpu())
    torch.testing.assert_close(grad.double().cpu(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("rule", RULES.names())
def test_any_shape_and_non_contiguous_input(rule):
    base = torch.randn(6, 10, 12, dtype=torch.float64)
    view = base.permute(2, 0, 1)[:, ::2]  # non-contiguous
    assert not view.is_contiguous()
    spec = make_pair("relu", rule)
    for x in (view, view.contiguous(), torch.randn(()), torch.randn(0, 3)):
        leaf = x.detach().requires_grad_()  # keeps x's strides: the non-contiguous case stays one
        y = ActivationPair.from_spec(spec)(leaf)
        assert y.shape == x.shape
        upstream = torch.linspace(-1, 1, max(x.numel(), 1), dtype=x.dtype)[: x.numel()].reshape(x.shape)
        (grad,) = torch.autograd.grad(y, leaf, upstream)
        assert grad.shape == x.shape
        if not spec.rule.stochastic:
            torch.testing.assert_close(grad, spec.rule.reference_grad(x.detach(), upstream))


def test_pair_inside_a_model_matches_manual_chain_rule():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 7).double()
    act = ActivationPair("relu", "fast_sigmoid", k=10.0)
    x = torch.randn(4, 5, dtype=torch.float64)
    act(lin(x)).sum().backward()
    z = lin(x).detach()
    g = (1 + 10 * z.abs()) ** -2
    torch.testing.assert_close(lin.weight.grad, g.t() @ x)
    torch.testing.assert_close(lin.bias.grad, g.sum(0))


@pytest.mark.parametrize("rule,params", [("exact", {}), ("rectangular", {}), ("b_silu", {}), ("quantized", {"bits": 2, "of": "b_silu"}),
                                         ("constant", {}), ("full_jam", {}), ("noise", {}), ("sso", {}),
                                         ("clip_norm", {"max_norm": 0.1}), ("centralize", {}),
                                         ("scale", {"s": 2.0, "of": "piecewise_leaky_relu"})])
def test_compiles_without_graph_breaks_and_matches_eager(rule, params):
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), ActivationPair("relu", rule, **params), torch.nn.Linear(16, 3))
    x = torch.randn(5, 8)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")  # fullgraph: a break raises
    compiled(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    if not make_pair("relu", rule, **params).rule.stochastic:  # stochastic: different RNG stream
        model.zero_grad()
        model(x).sum().backward()
        for a, p in zip(grads, model.parameters()):
            torch.testing.assert_close(a, p.grad)


def _graph_recorder(targets: list):
    """An AOT backend that records the op names of the forward and backward graphs it compiles."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def record(gm, example_inputs):
        targets.extend(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return make_boxed_func(gm.forward)

    return aot_autograd(fw_compiler=record, bw_compiler=record)


@pytest.mark.parametrize("rule,params,forward_op,backward_op", [
    ("exact", {}, None, None),
    ("rectangular", {}, None, None),
    ("positive_jam", {}, None, "harness_kernels.jam_mul"),
    ("quantized", {"bits": 2, "of": "b_silu"}, "harness_kernels.encode_codes", "harness_kernels.decode_mul"),
])
def test_compiled_graphs_call_the_kernels_as_dispatcher_ops(rule, params, forward_op, backward_op):
    """float32 CPU graphs call the C++ ops for codes and jamming directly (no Python custom op per
    call) and express gates in plain ops Inductor can fuse (no opaque op at all); same numbers."""
    from harness.activations import kernels

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    torch._dynamo.reset()
    targets: list[str] = []
    module = ActivationPair("relu", rule, **params)
    x = torch.randn(3, 257, requires_grad=True)
    upstream = torch.randn(3, 257)
    compiled = torch.compile(module, fullgraph=True, backend=_graph_recorder(targets))
    (grad,) = torch.autograd.grad(compiled(x), x, upstream)
    opaque = {t.rsplit(".", 1)[0] for t in targets if t.startswith(("harness_kernels.", "harness."))}
    assert opaque == {op for op in (forward_op, backward_op) if op}, targets
    assert not any(t.startswith("harness.") for t in targets), targets  # no Python custom op left
    if not module.spec.rule.stochastic:
        (expected,) = torch.autograd.grad(module(x), x, upstream)
        assert torch.equal(grad, expected)
    else:  # jamming: 0 outside the gate, |g| <= |upstream| inside
        gate = x.detach() > 0
        assert torch.equal(grad[~gate], torch.zeros_like(grad[~gate]))
        assert (grad[gate].abs() <= upstream[gate].abs()).all() and (grad[gate] != 0).any()


def test_compiled_graphs_for_other_dtypes_use_the_python_custom_ops():
    torch._dynamo.reset()
    targets: list[str] = []
    module = ActivationPair("relu", "quantized", bits=2, of="b_silu")
    x = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(module, fullgraph=True, backend=_graph_recorder(targets))
    (grad,) = torch.autograd.grad(compiled(x).sum(), x)
    assert any(t.startswith("harness.encode_codes") for t in targets), targets
    assert any(t.startswith("harness.decode_mul") for t in targets), targets
    assert torch.equal(grad, torch.autograd.grad(module(x).sum(), x)[0])


@pytest.mark.parametrize("forward,rule,params", [("relu", "exact", {}), ("relu", "rectangular", {}), ("step", "rectangular", {}),
                                                 ("relu", "quantized", {"bits": 1, "of": "b_silu"})])
def test_cpp_gate_pair_equals_the_general_autograd_function(forward, rule, params):
    """The C++ fast path for gate pairs: same outputs, gradients and saved bytes as _PairFunction."""
    from harness.activations import kernels
    from harness.activations.pair import _PairFunction

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    spec = make_pair(forward, rule, **params)
    assert spec.gate_pair_args is not None
    x = torch.cat([torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0]), torch.randn(3000)]).reshape(5, 601)
    upstream = torch.randn(5, 601)
    results = []
    for fn in (lambda t: kernels.gate_pair(t, *spec.gate_pair_args), lambda t: _PairFunction.apply(t, spec)):
        leaf = x.clone().requires_grad_()
        with SavedBytesCounter() as counter:
            y = fn(leaf)
        (grad,) = torch.autograd.grad(y, leaf, upstream)
        results.append((y.detach(), grad, counter.result))
    (y_fast, g_fast, saved_fast), (y_ref, g_ref, saved_ref) = results
    assert torch.equal(y_fast.nan_to_num(7.0), y_ref.nan_to_num(7.0)) and torch.equal(g_fast, g_ref)
    # One save each, the packed mask alone (its whole storage: no larger buffer kept alive).
    fast, ref = (saved_fast.count_with_duplicates, saved_fast.total), (saved_ref.count_with_duplicates, saved_ref.total)
    assert fast == ref == (1, (x.numel() + 7) // 8)


def test_only_fused_gate_pairs_take_the_cpp_path():
    assert make_pair("relu", "exact").gate_pair_args is not None
    assert make_pair("leaky_relu", "exact").gate_pair_args is None  # no fused forward
    assert make_pair("relu", "positive_jam").gate_pair_args is None  # stochastic: Python RNG keys
    assert make_pair("relu", "b_silu").gate_pair_args is None


def test_unknown_names_suggest_the_closest_and_list_all():
    with pytest.raises(UnknownNameError) as err:
        ActivationPair("relux", "exact")
    assert "'relu'" in str(err.value) and "sigmoid" in str(err.value)
    with pytest.raises(UnknownNameError, match="Did you mean 'rectangular'"):
        ActivationPair("relu", "rectangle")
    with pytest.raises(UnknownNameError, match="b_silu"):
        ActivationPair("relu", "quantized", of="bsilu")


@pytest.mark.parametrize("kwargs,match", [
    (dict(backward="triangular", w=-1.0), r"w=-1.0 is out of range; w must be a number > 0"),
    (dict(backward="quantized", bits=9), r"bits=9 is out of range; bits must be an integer >= 1 and <= 8"),
    (dict(backward="quantized", bits=0), r"bits must be an integer"),
    (dict(backward="rectangular", a=1.0, b=0.0), r"a <= b"),
    (dict(backward="rectangular_jam", a=2.0, b=-2.0), r"a <= b"),
    (dict(backward="rectangular", width=2.0), r"unknown parameter 'width'.*rule parameters: \['a', 'b'\]"),
    (dict(backward="fast_sigmoid", k="steep"), r"k='steep' must be a number"),
    (dict(backward="noise", mode="both"), r"mode='both' is not allowed; mode must be one of 'additive', 'multiplicative'"),
    (dict(forward="hardtanh", min_val=1.0, max_val=-1.0), r"min_val must be < max_val"),
    (dict(forward="elu", alpha=0.0), r"alpha=0.0 is out of range"),
    (dict(backward="quantized", bits=float("inf")), r"bits=inf is out of range"),
    (dict(backward="fast_sigmoid", k=float("nan")), r"k=nan is out of range"),
])
def test_bad_parameters_raise_when_the_pair_is_built(kwargs, match):
    kwargs = {"forward": "relu", "backward": "exact", **kwargs}
    with pytest.raises(ParameterError, match=match):
        ActivationPair(**kwargs)


def test_parameters_shared_by_forward_and_rule_must_be_given_explicitly():
    with pytest.raises(ParameterError, match="forward_params"):
        ActivationPair("elu", "derivative_of", of="celu", alpha=2.0)
    p = ActivationPair("elu", "derivative_of", forward_params={"alpha": 2.0}, backward_params={"of": "celu", "alpha": 0.5})
    assert p.spec.forward.params == {"alpha": 2.0}
    assert "alpha=0.5" in p.spec.describe()


def test_functional_and_module_forms_agree_and_describe_themselves():
    x = torch.randn(100, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(pair(x, "step", "atan", a=3.0).sum(), x)
    module = ActivationPair("step", "atan", a=3.0)
    (g2,) = torch.autograd.grad(module(x).sum(), x)
    torch.testing.assert_close(g1, g2)
    assert repr(module) == "ActivationPair(step/atan(a=3.0))"


def test_pair_random_stream_is_not_the_weight_init_stream():
    from harness.activations import RandomSource

    torch.manual_seed(3)
    weights = torch.randn(5)
    assert not torch.equal(torch.randn(5, generator=RandomSource(3).generator(torch.device("cpu"))), weights)


@pytest.mark.slow
def test_smooth_rule_fusion_survives_many_rule_variants(monkeypatch):
    """Every smooth rule's backward compiles into one kernel (none falls back to the eager
    formula), also past Dynamo's recompile limit of 8 variants (a regression: one shared code
    object stopped fusing after 8)."""
    from harness.activations import fused
    from harness.activations.definitions import canonical_names

    monkeypatch.setattr(fused, "_compiled", {})
    x = torch.randn(fused.FUSE_MIN_NUMEL, requires_grad=True)
    variants = [(rule, torch.float32) for rule in canonical_names(RULES)
                if (r := make_pair("relu", rule).rule).saves.value in ("input", "output") and r.elementwise
                and not r.stochastic and getattr(r, "native", None) is None]
    variants += [(rule, torch.float64) for rule in ("b_silu", "fast_sigmoid", "atan", "sigmoid")]
    assert len(variants) > 16
    for rule, dtype in variants:
        xi = x.detach().to(dtype).requires_grad_()
        (g,) = torch.autograd.grad(pair(xi, "relu", rule).sum(), xi)
        torch.testing.assert_close(g, make_pair("relu", rule).rule.values(xi.detach()), rtol=1e-5, atol=1e-6)
    assert len(fused._compiled) == len(variants) and all(c is not None for c in fused._compiled.values())


@pytest.mark.slow  # subprocess or large model: runs with make test-slow (CI)
def test_first_use_under_compile_has_no_graph_break():
    """Regression: building the kernels inside a traced function broke the graph (a lock)."""
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from harness.activations import ActivationPair\n"
        "x = torch.randn(64, 64, requires_grad=True)\n"
        "for rule in ('exact', 'rectangular', 'positive_jam'):\n"
        "    m = torch.compile(ActivationPair('relu', rule), fullgraph=True, backend='aot_eager')\n"
        "    torch.autograd.grad(m(x).sum(), x)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@pytest.mark.parametrize("rule,params", [("exact", {}), ("rectangular", {}), ("quantized", {"bits": 2, "of": "b_silu"}),
                                         ("b_silu", {}), ("constant", {}), ("clip_norm", {"max_norm": 0.5}),
                                         ("centralize", {"of": "fast_sigmoid"}), ("scale", {"s": -3.0})])
def test_double_backward_is_differentiable_with_and_without_the_kernels(rule, params):
    """create_graph=True (gradient penalties): the input gradient stays differentiable in the
    upstream gradient, and gives the same numbers on the kernel path and the plain path."""
    from harness.activations import backends, kernels

    x = torch.randn(6, 50)
    results = []
    for use_kernels in (True, False):
        previous = backends.set_enabled(use_kernels)
        try:
            leaf = x.clone().requires_grad_()
            upstream = torch.linspace(-1, 1, 300).reshape(6, 50).requires_grad_()
            (grad,) = torch.autograd.grad(ActivationPair("relu", rule, **params)(leaf), leaf, upstream, create_graph=True)
            (second,) = torch.autograd.grad((grad * grad).sum(), upstream)
            results.append((grad.detach(), second))
        finally:
            backends.set_enabled(previous)
    (g_fast, s_fast), (g_plain, s_plain) = results
    torch.testing.assert_close(g_fast, g_plain)
    torch.testing.assert_close(s_fast, s_plain)
    assert s_fast.abs().sum() > 0  # d(grad^2)/d(upstream) = 2 g^2 upstream: not zero


def test_cpp_gate_pair_handles_zero_dim_and_empty_tensors():
    from harness.activations import kernels

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    args = make_pair("relu", "exact").gate_pair_args
    for x in (torch.tensor(1.5, requires_grad=True), torch.tensor(-2.0, requires_grad=True), torch.empty(0, 3, requires_grad=True)):
        y = kernels.gate_pair(x, *args)
        assert y.shape == x.shape and torch.equal(y, torch.relu(x.detach()))
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g, (x.detach() > 0).float())


def test_cpp_gate_pair_node_behaves_like_a_native_op():
    """The hand-written autograd node: a graph only under grad mode, its name in grad_fn, a second
    backward refused once the saved bits are freed (as native ops do); a pair module deep-copies
    without its bound callable (a cache, bound again on first use)."""
    import copy

    from harness.activations import kernels

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    spec = make_pair("relu", "rectangular")
    fused = kernels.gate_pair_function(*spec.gate_pair_args)
    x = torch.randn(4, 100, requires_grad=True)
    with torch.no_grad():
        assert fused(x).grad_fn is None and not fused(x).requires_grad
    assert fused(x.detach()).grad_fn is None
    y = fused(x)
    assert type(y.grad_fn).__name__ == "GatePairBackward" or "GatePairBackward" in y.grad_fn.name()
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()
    upstream = torch.randn(4, 100)
    leaf = x.detach().clone().requires_grad_()
    (g,) = torch.autograd.grad(fused(leaf), leaf, upstream)
    assert torch.equal(g, spec.rule.reference_grad(x.detach(), upstream))
    # A model holding pairs deep-copies after its pairs have bound their C++ callable.
    module = ActivationPair("relu", "exact")
    module(torch.randn(3, requires_grad=True))  # binds the C++ callable (a backward to prepare)
    assert module.spec.fused_gate is not None
    clone = copy.deepcopy(module)
    assert clone.spec.fused_gate is None
    assert torch.equal(clone(torch.tensor([-1.0, 2.0], requires_grad=True)), torch.tensor([0.0, 2.0]))
    assert clone.spec.fused_gate is not None


@pytest.mark.parametrize("rule,params", [("exact", {}), ("rectangular", {}), ("rectangular", {"a": 0.25, "b": 0.75}),
                                         ("clipped_ste", {}), ("scale", {"s": 0.5, "of": "rectangular"})])
def test_a_compiled_pairs_output_modified_in_place_keeps_eagers_gradients(rule, params):
    """Compiled gates behind relu keep y as their state (graph.py): an in-place op on the output
    (`h += skip`, `h.neg_()`) must not reach the state the backward reads (a regression: it did)."""
    from harness.activations import compile_model

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.act, self.l2 = torch.nn.Linear(16, 16), ActivationPair("relu", rule, **params), torch.nn.Linear(16, 16)

        def forward(self, x):
            h = self.act(self.l1(x))
            h += x
            h.neg_()
            return self.l2(h)

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Block()
    x, upstream = torch.randn(64, 16), torch.randn(64, 16)
    eager_x, compiled_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    model(eager_x).backward(upstream)
    compile_model(model, backend="aot_eager")(compiled_x).backward(upstream)
    assert torch.equal(compiled_x.grad, eager_x.grad)


@pytest.mark.parametrize("rule", ["exact", "rectangular", "b_silu", "quantized"])
def test_without_a_backward_to_prepare_a_pair_is_its_forward_alone(rule, monkeypatch):
    """no_grad (evaluation) or an input that needs no gradient: y = f(x), no state encoded or
    saved, no autograd node; with a gradient to prepare the rule's encoding runs as before."""
    calls = []
    module = ActivationPair("relu", rule, **({"bits": 2, "of": "b_silu"} if rule == "quantized" else {}))
    module.spec.gate_pair_args = None  # every rule through _PairFunction, so the encoding is observable
    real = module.spec.rule.forward_and_encode
    monkeypatch.setattr(module.spec.rule, "forward_and_encode", lambda x, f: calls.append(1) or real(x, f))
    x = torch.randn(5, 33)
    with torch.no_grad():
        y = module(x.requires_grad_())
    assert torch.equal(y, torch.relu(x.detach())) and y.grad_fn is None
    assert module(x.detach()).grad_fn is None and calls == []
    y = module(x)
    assert y.grad_fn is not None and calls


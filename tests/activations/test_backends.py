"""Every backend against the reference backend, bit for bit, through the one selector
(harness/activations/backends/). The Triton backend has its own file (test_triton_kernels.py)."""
import math

import pytest
import torch

from harness.activations import backends, kernels
from harness.activations.backends import CodeTable, FixedKeys, GateParams

SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 0.25]
GATES = [GateParams(0.0, math.inf, False, True), GateParams(-0.5, 0.5, True, True, (0.0, 2.5)),
         GateParams(-1.0, 1.0, False, False, (0.1, 1.3)), GateParams(-math.inf, 0.25, True, False, (-1.0, 0.5))]


def _same(got, want):
    """Equal values and NaN positions (+0 and -0 count as equal, as in torch.equal)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.nan_to_num(0.0), want.nan_to_num(0.0))


def _backend(name):
    if name == "cpu" and kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    return backends.BACKENDS[name]


def _inputs(n, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.tensor(SPECIAL), torch.randn(n, generator=gen)]).to(dtype)
    grad = torch.cat([torch.tensor(SPECIAL[::-1]), torch.randn(n, generator=gen)]).to(dtype)
    return x.reshape(-1, 1)[:, 0], grad  # odd lengths are not a multiple of 8


def test_the_selector_picks_by_device_dtype_and_tracing():
    assert backends.backend_for(torch.zeros(3, dtype=torch.float64)) is backends.NUMPY
    expected = backends.CPU if kernels.load() is not None else backends.NUMPY
    assert backends.backend_for(torch.zeros(3)) is expected
    previous = backends.set_enabled(False)
    try:
        assert backends.backend_for(torch.zeros(3)) is backends.NUMPY
    finally:
        backends.set_enabled(previous)
    seen = []
    torch.compile(lambda t: seen.append(backends.backend_for(t)) or t + 1, backend="eager")(torch.zeros(3))
    assert seen == [backends.GRAPH]


@pytest.mark.parametrize("name", ["numpy", "cpu"])
@pytest.mark.parametrize("n", [7, 64, 1001])
@pytest.mark.parametrize("gate", GATES, ids=["relu", "rect", "open", "left_inf"])
def test_eager_gate_ops_equal_the_reference(name, n, gate):
    backend, ref = _backend(name), backends.REFERENCE
    x, grad = _inputs(n, torch.float32, n)
    for op in (0, 1, 2):
        y, packed = backend.forward_pack(x, op, gate)
        y_ref, packed_ref = ref.forward_pack(x, op, gate)
        assert torch.equal(packed, packed_ref)
        if op:
            _same(y, y_ref)
    _same(backend.gate_mul(grad, packed_ref, gate), ref.gate_mul(grad, packed_ref, gate))
    _same(backend.jam_mul(grad, packed_ref, FixedKeys(3, 4)), ref.jam_mul(grad, packed_ref, FixedKeys(3, 4)))


# Every dtype, with a partial block of the compiled gates' word-block layout (45 and 56 elements
# with SPECIAL: padded to one 512-element block), and float32 over whole blocks only (1024) and
# whole blocks plus a padded last one (1110): the two code paths of graph._split_blocks.
INDUCTOR_CASES = [(dtype, n) for dtype in (torch.float32, torch.float64, torch.bfloat16) for n in (35, 46)]
INDUCTOR_CASES += [(torch.float32, 1014), (torch.float32, 1100)]


# Gates behind relu with their ends at 0 on either side: x = +-0 inside ([-0.5, 0.5]), outside at
# an open end ([-1, 0)) and outside from above ([0.25, 1]).
ZERO_EDGES = [GateParams(-0.5, 0.5, True, True), GateParams(-1.0, 0.0, True, False), GateParams(0.25, 1.0, True, True)]


def _check_relu_state(x, y, state, gate, backend):
    """A gate behind relu keeps y, equal to relu(x) but in its zeros' sign: -0.0 exactly where
    x <= 0 lies in the gate (+0.0 for 1[x > 0], relu's own y up to its zeros' sign)."""
    ref = backends.REFERENCE
    # y's values, zero signs included (a copy: in-place ops on the output must not reach it)
    assert state.dtype == x.dtype and torch.equal(state.isnan(), y.isnan())
    assert torch.equal(state.nan_to_num(0.0), y.nan_to_num(0.0)) and torch.equal(state.signbit(), y.signbit())
    bits = ref.unpack_bits(ref.forward_pack(x, 0, gate)[1], x.numel())
    if not gate.positive:  # (relu's own zeros keep the sign its vector max instruction gives)
        assert torch.equal((y == 0) & torch.signbit(y), bits & (x <= 0))
    assert torch.equal(backend.unpack_gate(state, x.numel(), gate), bits)


def test_inductor_gate_ops_equal_the_reference():
    """The plain-op gate forms as Inductor compiles and fuses them (static shapes): the same gate
    bits, outputs and gradients as the reference; behind a step forward the state is bits (1 per
    element, in the word-block layout), behind relu y itself, with the bit of x <= 0 in the sign
    of its zeros. The suite's only Inductor compile (the slow part on a cold cache): one graph
    holds every dtype and layout, and the gate's parameters are a graph input, so the gates share
    graphs by structure: levels (0, 1), whose backward reads no parameters, or others; a gate
    that straddles 0 or not (one compare fewer each way); and the gate 1[x > 0], whose relu state
    is relu's own y."""
    from torch._dynamo.utils import counters

    ref, graph = backends.REFERENCE, backends.GRAPH
    cases = [_inputs(n, dtype, n + 1) for dtype, n in INDUCTOR_CASES]

    def every_case(gate, tensors):
        outs = []
        for t, g in tensors:
            for op in (1, 2):
                y, packed = backends.backend_for(t).forward_pack(t, op, gate)
                outs.append((y, packed, backends.backend_for(g).gate_mul(g, packed, gate),
                             backends.backend_for(t).unpack_gate(packed, t.numel(), gate)))
        return outs

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(every_case, dynamic=False, fullgraph=True)  # the default backend: Inductor
    gates = GATES + ZERO_EDGES
    for gate in gates:
        results = iter(compiled(gate, cases))
        for x, grad in cases:
            for op in (1, 2):
                y, packed, grad_in, unpacked = next(results)
                y_ref, packed_ref = ref.forward_pack(x, op, gate)
                n = x.numel()
                if op == 1:
                    _check_relu_state(x, y, packed, gate, graph)
                else:
                    assert packed.dtype == torch.int32 and packed.numel() == -(-n // 512) * 16  # 1 bit per element
                assert torch.equal(unpacked, ref.unpack_bits(packed_ref, n))
                _same(y, y_ref)
                _same(grad_in, ref.gate_mul(grad, packed_ref, gate))
    assert [g.positive for g in gates] == [True] + [False] * 6
    assert [g.unit_levels for g in gates] == [True, False, False, False, True, True, True]
    assert [g.straddles_zero for g in gates] == [False, True, True, True, True, False, False]
    assert counters["stats"]["unique_graphs"] == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("levels", [(0.0, 1.0), (0.25, 1.5), (-1.0, 0.0)])
@pytest.mark.parametrize("ends", [(0.0, math.inf, False, True), (-0.5, 0.5, True, True), (-1.0, 0.0, True, False),
                                  (0.25, 1.0, True, True), (0.0, math.inf, True, True), (-math.inf, -0.25, True, True)],
                         ids=["relu", "rect", "open_at_0", "above_0", "closed_at_0", "below_0"])
def test_gates_behind_relu_keep_y_and_equal_the_bits(dtype, levels, ends):
    """The graph backend's gates behind relu keep y = relu(x), no bits: its gradient and unpacked
    gate equal the reference's bits for every special value (NaN of either sign, +-inf, +-0, the
    smallest subnormals), any levels and interval; a step forward keeps bits."""
    graph, ref = backends.GRAPH, backends.REFERENCE
    gate = GateParams(*ends, levels)
    tiny = torch.finfo(dtype).tiny
    x, grad = _inputs(300, dtype, 5)
    x = torch.cat([x, torch.tensor([tiny, -tiny, tiny / 4, -tiny / 4, -0.0, 0.0, -math.nan], dtype=dtype)])
    grad = torch.cat([grad, torch.tensor([1.0, math.nan, 2.0, 4.0, math.inf, 3.0, 5.0], dtype=dtype)])
    y, state = graph.forward_pack(x, 1, gate)
    y_ref, packed_ref = ref.forward_pack(x, 1, gate)
    _same(y, y_ref)
    _check_relu_state(x, y, state, gate, graph)
    _same(graph.gate_mul(grad, state, gate), ref.gate_mul(grad, packed_ref, gate))
    assert graph.forward_pack(x, 2, gate)[1].dtype == torch.int32


def test_unpacking_a_relu_state_needs_its_gate():
    y = torch.relu(torch.randn(10))
    with pytest.raises(ValueError, match="needs its gate"):
        backends.GRAPH.unpack_bits(y, 10)


def test_word_block_layout():
    """Bit j of word w of block a is element 512 a + 16 j + w (graph.py), checked element by element."""
    from harness.activations.backends import graph

    mask = torch.rand(1100, generator=torch.Generator().manual_seed(0)) < 0.5
    blocks = torch.nn.functional.pad(mask, (0, 436)).view(-1, 32, 16)
    words = graph.pack_words(blocks)
    assert words.dtype == torch.int32 and words.shape == (48,)
    for i in range(1100):
        a, j, w = i // 512, (i % 512) // 16, i % 16
        assert bool((int(words[16 * a + w]) >> j) & 1) == bool(mask[i])
    assert torch.equal(graph.unpack_any(words, 1100), mask)
    assert torch.equal(graph.unpack_any(graph.pack_lanes(mask), 1100), mask)  # uint8: packing.py's layout


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_graph_gate_mask_equals_the_interval_mask(dtype):
    """The graph's two compares with closed ends (GateParams.values) select exactly the reference's
    elements, at and next to every end, for open, closed, infinite and out-of-range ends."""
    from harness.activations.backends import graph

    ends = [0.0, -0.5, 0.1, 1.0 / 3.0, 1e39, -1e39, 1e-45, math.inf, -math.inf]
    for lo in ends:
        for hi in ends:
            if not lo <= hi:
                continue
            for closed_lo in (False, True):
                for closed_hi in (False, True):
                    gate = GateParams(lo, hi, closed_lo, closed_hi)
                    probes = [float("nan"), math.inf, -math.inf, 0.0, -0.0]
                    for end in (lo, hi):
                        e = torch.tensor(end, dtype=dtype if dtype != torch.bfloat16 else torch.float32)
                        probes += [float(e), float(torch.nextafter(e, torch.tensor(math.inf, dtype=e.dtype))),
                                   float(torch.nextafter(e, torch.tensor(-math.inf, dtype=e.dtype)))]
                    x = torch.tensor(probes, dtype=torch.float64).to(dtype)
                    want = backends.REFERENCE.unpack_bits(backends.REFERENCE.pack_interval(x, gate), x.numel())
                    assert torch.equal(graph.gate_mask(x, gate.values), want), (lo, hi, closed_lo, closed_hi)


@pytest.mark.parametrize("forward,expected", [("step", {"harness.gate_forward_t", "harness.gate_mul_t"}), ("relu", set())])
def test_compiled_gates_with_dynamic_shapes_call_the_tensor_parameter_ops(forward, expected):
    """Symbolic shapes: one opaque op per pass for bits (Inductor's symbolic bit loops were 10-50x
    slower); behind relu plain pointwise ops (the relu state keeps no bits)."""
    from harness.activations import ActivationPair

    torch._dynamo.reset()
    targets = []

    def record(gm, example_inputs):
        targets.extend(str(node.target) for node in gm.graph.nodes if node.op == "call_function")
        return gm.forward

    from torch._dynamo.backends.common import aot_autograd
    from functorch.compile import make_boxed_func

    module = ActivationPair(forward, "rectangular", a=-0.3, b=0.7)
    compiled = torch.compile(module, dynamic=True, backend=aot_autograd(
        fw_compiler=lambda gm, ex: make_boxed_func(record(gm, ex)), bw_compiler=lambda gm, ex: make_boxed_func(record(gm, ex))))
    for shape in [(5, 7), (16, 33)]:
        x = torch.randn(shape, requires_grad=True)
        upstream = torch.randn(shape)
        (grad,) = torch.autograd.grad(compiled(x), x, upstream)
        (expected_grad,) = torch.autograd.grad(module(x), x, upstream)
        assert torch.equal(grad, expected_grad)
    assert {t.rsplit(".", 1)[0] for t in targets if t.startswith("harness")} == expected


def test_large_compiled_gates_call_the_cpp_kernels_and_small_ones_expand():
    """Static shapes: a float32 CPU gate of at least ops.EXTERN_MIN_ELEMENTS elements runs the C++
    kernels as graph ops (packing.py's bytes), a smaller one expands into plain ops (int32 words);
    both give eager's outputs and gradients bit for bit, and the tensor-parameter ops equal the
    eager kernels for any gate."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    from harness.activations import ActivationPair, kernels
    from harness.activations.backends import ops

    if kernels.load() is None:
        pytest.skip("compiled kernels unavailable")
    targets = []

    def record(gm, example_inputs):
        for node in gm.graph.nodes:
            if node.op == "call_function":  # a mutating op appears wrapped in auto_functionalized
                functionalized = "auto_functionalized" in str(node.target)
                targets.append(str(node.args[0] if functionalized else node.target))
        return make_boxed_func(gm.forward)

    module = ActivationPair("step", "rectangular", a=-0.3, b=0.7)  # behind relu, gates keep no bits
    found = {}
    for n in (ops.EXTERN_MIN_ELEMENTS - 1, ops.EXTERN_MIN_ELEMENTS):
        torch._dynamo.reset()
        targets.clear()
        compiled = torch.compile(module, dynamic=False, backend=aot_autograd(fw_compiler=record, bw_compiler=record))
        x = torch.randn(n, requires_grad=True, generator=torch.Generator().manual_seed(n))
        upstream = torch.randn(n)
        (grad,) = torch.autograd.grad(compiled(x), x, upstream)
        (expected,) = torch.autograd.grad(module(x), x, upstream)
        assert torch.equal(grad, expected) and torch.equal(compiled(x), module(x))
        found[n] = {t.rsplit(".", 1)[0] for t in targets if t.startswith("harness")}
    # In place (the graph's clone of x and of grad is what Inductor removes, see ops.py).
    assert found[ops.EXTERN_MIN_ELEMENTS] == {"harness_kernels.gate_forward_inplace_p", "harness_kernels.gate_mul_inplace"}
    assert not any(t.startswith("harness_kernels") for t in found[ops.EXTERN_MIN_ELEMENTS - 1])
    for gate in GATES:
        x, grad = _inputs(1001, torch.float32, 3)
        y, packed = torch.ops.harness_kernels.gate_forward_p(x, 1, gate.values)
        y_ref, packed_ref = kernels.forward_pack(x, 1, *gate.kernel_args)
        assert torch.equal(packed, packed_ref)
        _same(y, y_ref)
        want = kernels.gate_mul(grad, packed, *gate.levels)
        _same(torch.ops.harness_kernels.gate_mul_p(grad, packed, gate.values), want)
        inplace = grad.clone()
        torch.ops.harness_kernels.gate_mul_inplace_p(inplace, packed, gate.values)
        _same(inplace, want)
        inplace = x.clone()
        assert torch.equal(torch.ops.harness_kernels.gate_forward_inplace_p(inplace, 1, gate.values), packed_ref)
        _same(inplace, y_ref)


@pytest.mark.parametrize("name", ["numpy", "cpu"])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_eager_code_ops_equal_the_reference(name, bits):
    backend, ref = _backend(name), backends.REFERENCE
    x, grad = _inputs(1001, torch.float32, bits)
    gen = torch.Generator().manual_seed(bits)
    table = CodeTable(torch.sort(torch.randn(2**bits - 1, generator=gen)).values, torch.randn(2**bits, generator=gen), bits)
    borders, levels = table.tables(x.device, x.dtype)
    for op in (0, 1, 2):
        y, packed = backend.encode_codes(x, borders, bits, op)
        y_ref, packed_ref = ref.encode_codes(x, borders, bits, op)
        assert torch.equal(packed, packed_ref) and (y is None) == (y_ref is None) == (op == 0)
    _same(backend.decode_mul(grad, packed_ref, levels, bits), ref.decode_mul(grad, packed_ref, levels, bits))
    _same(backend.decode_levels(packed_ref, x.numel(), bits, levels), ref.decode_levels(packed_ref, x.numel(), bits, levels))


def _pair_model():
    from harness.activations import ActFactory

    torch.manual_seed(0)
    act = ActFactory("relu", "rectangular")
    return torch.nn.Sequential(torch.nn.Linear(6, 16), act(), torch.nn.Linear(16, 3))


def test_compile_model_drops_the_guards_on_the_pair_librarys_own_code_only():
    """`library_guards_off`: Dynamo's guards on harness.activations' globals go (dozens per
    trace), its switches' and every guard on the model's own objects stay."""
    from harness.activations import compile_model
    from harness.activations.backends import select

    torch._dynamo.reset()
    seen = []

    def recording(entries):
        seen.extend(entries)
        return [True] * len(entries)

    model = _pair_model()
    compiled = compile_model(model, backend="aot_eager", options={"guard_filter_fn": recording})
    compiled(torch.randn(4, 6)).sum().backward()
    keep = select.library_guards_off(seen)
    dropped = [e for e, k in zip(seen, keep) if not k]
    assert len(dropped) >= 20
    assert all(e.is_global and "harness_dot_activations" in e.name for e in dropped)
    kept = [e for e, k in zip(seen, keep) if k]
    assert any("RELU_KEEPS_Y" in e.name for e in kept)  # a switch
    assert all(k for e, k in zip(seen, keep) if not e.is_global)  # the model's own objects
    assert any("gate.values" in e.name and e.guard_type == "TENSOR_MATCH" for e in kept)


def test_a_compiled_model_retraces_when_a_switch_flips():
    from torch._dynamo.utils import counters

    from harness.activations import compile_model
    from harness.activations.backends import graph

    torch._dynamo.reset()
    counters.clear()
    model = _pair_model()
    compiled = compile_model(model, backend="aot_eager")
    x = torch.randn(4, 6)
    compiled(x)
    compiled(x)
    assert counters["stats"]["unique_graphs"] == 1
    previous = graph.RELU_KEEPS_Y
    graph.RELU_KEEPS_Y = not previous
    try:
        torch.testing.assert_close(compiled(x), model(x))
    finally:
        graph.RELU_KEEPS_Y = previous
    assert counters["stats"]["unique_graphs"] == 2


def test_compile_model_leaves_mode_alone():
    """torch.compile takes `mode` only without `options`: no guard filter then, and no error."""
    from harness.activations import compile_model

    torch._dynamo.reset()
    compiled = compile_model(_pair_model(), mode="default", backend="aot_eager")
    assert compiled(torch.randn(2, 6)).shape == (2, 3)

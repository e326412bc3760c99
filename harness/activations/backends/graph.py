"""The graph backend: what a pair's bit work becomes inside a torch.compile graph.

Gates behind a relu forward keep no bits at all (`RELU_KEEPS_Y`): the state is y = relu(x),
which the next layer (a Linear, a conv, a pooling) keeps for its own backward anyway, so it costs
no bytes of its own where bits cost 1/32 of y more, and the graph has native ReLU's shape (an
in-place kernel after the matmul, a select fused with the bias gradient). For x > 0, y = x tells
the gate's bit; for x <= 0 the bit is the sign of y's zero (-0.0 inside the gate, +0.0 outside;
`relu_with_gate_sign`, `relu_state_gate`). The gate 1[x > 0] (relu/exact, relu/heaviside) is
1[y > 0] with relu's own y: native ReLU's graph, kernel for kernel (checked in Inductor's output
code). Compiled steps of the 256-W-W-10 MLP (scripts/compiled_step_bench.py, 81 / 41 rounds at
W = 128 / 1024, after `compile_model` dropped the library's guards): relu/rectangular 1.035x /
0.995x compiled native ReLU with bits, 1.009x / 0.980x with y, relu/exact 1.000x / 0.985x (a second
native model 0.988x / 0.990x); before the guard filter relu/exact ran 1.058x / 1.019x with bits.
The bits below serve the other forwards (step, or none). Eager pairs keep their bits
(the memory figures measure the eager model).

Other gates are graph ops with tensor parameters (`harness::gate_forward_g` / `gate_mul_g`,
ops.py): bounds and levels arrive as one tensor (`params.GateParams.values`), so pairs that
differ only in parameters share one graph. AOTAutograd expands them, for static shapes, into
the plain tensor ops below, which Inductor fuses: compare and bit packing into the kernel that
computes y, unpacking into the backward's multiply (no opaque op splits the graph).

The formulation decides whether Inductor's C++ backend vectorises. Timed as compiled functions
on a 256x1024 float32 tensor, 1 thread (call overhead included; a compiled ReLU: 105 us):
packing.py's layout (element 8 i + j in bit j of byte i) needs 8 strided loads or an 8-lane
reduction per byte, which Inductor emits as scalar loops: 620-740 us from x, 254 us via an int32
copy of the mask (the previous form; uint8 sums and shifts were 35-40x a ReLU); storing a compare
as bool or uint8 alone took 560-2770 us (the mask-to-byte conversion is scalar). The word-block
layout (`pack_words`: bit j of int32 word w of a 512-element block is element 16 j + w of the
block) loads 16 consecutive elements per step and shifts them all by j: a vectorised reduction,
183 us for y and the words. The backward in that layout (a vectorised select) ran 117 us, against
178 us in the (bytes, 8) layout and 175 us for native ReLU's compiled backward. The compiled
gates' state is therefore the words (int32, still one bit per element); `unpack_bits` reads
both layouts by dtype, and `pack_bits` / `pack_interval` keep packing.py's layout.
Large float32 CPU gates (`ops.EXTERN_MIN_ELEMENTS`, 65536 elements, and more) call the C++
kernels as graph ops instead, in place (`harness_kernels::gate_forward_inplace_p` /
`gate_mul_inplace`, parameters as the same tensor, packing.py's bytes; see ops.py): standalone at
256x1024 the out-of-place forward took 51 us against 183 us for Inductor's fused y-and-words
kernel; below that size the extern call's fixed cost wins. The backward follows the forward by
the state's dtype (uint8 or int32).
For symbolic shapes (Dynamo's automatic dynamic shapes after a second input shape, e.g. a second
model width in one process) Inductor's loops over the same ops were 10-50x slower still, so
there they expand into one opaque op per pass that runs the eager kernels.

Few-bit codes and jamming call dispatcher ops: the C++ kernels' own (`harness_kernels::*`) for
float32 CPU tensors when the kernels are loaded, else this package's (`harness::*`, ops.py),
which run the eager backend for their inputs. Jam keys are drawn inside the graph from torch's
global RNG: a Python int would be baked in as a constant, repeating the same draws every step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import kernels
from ..packing import FORWARD_OPS
from . import ops, switch
from .params import GRAPH_FIELDS as _F
from .reference import Reference, forward_value

_HALF = (torch.bfloat16, torch.float16)
_RELU = FORWARD_OPS["relu"]


def _dispatcher(t: Tensor):
    """The op namespace a graph calls for `t`'s codes and jam draws."""
    if switch.enabled() and kernels._module is not None and t.dtype == torch.float32 and t.device.type == "cpu":
        return torch.ops.harness_kernels
    return ops.namespace()


def _in_compare_dtype(x: Tensor) -> tuple[Tensor, str]:
    """(x in its compare dtype, the suffix of that dtype's fields in GRAPH_FIELDS): float64, or
    float32 for float32 and half types (their compares against the exact float32 ends)."""
    if x.dtype == torch.float64:
        return x, "_f64"
    return (x.float() if x.dtype in _HALF else x), "_f32"


def gate_mask(x: Tensor, params: Tensor, hi: str = "hi") -> Tensor:
    """1[x in the gate] from a gate's parameter tensor (`GateParams.values`): two compares with
    the interval's closed ends in the compare dtype; `hi` "zero_hi" for the gate's part at or
    below 0."""
    x, dtype = _in_compare_dtype(x)
    return (x >= params[_F["lo" + dtype]]) & (x <= params[_F[hi + dtype]])


# Gates behind a relu forward keep y = relu(x), which the next layer keeps anyway, instead of
# bits (module docstring): for x > 0, y = x tells the gate's bit; for x <= 0 (y = 0) the bit is
# the sign of the zero, -0.0 inside the gate, +0.0 outside. -0.0 == 0.0 in every compare, sum
# and product's magnitude, so the forward's values are relu's; what can tell them apart is what
# reads a zero's sign: 1 / y (-inf), atan2, copysign, signbit, sqrt, printing, a bitwise view. A
# compiled model writes them also under no_grad (the graph is the same).
#: Whether compiled gates behind relu keep y (True) or the gate's bits, as every other forward
#: does (False: for benchmarks that compare the two, scripts/compiled_step_bench.py).
RELU_KEEPS_Y = True


def relu_with_gate_sign(x: Tensor, gate) -> Tensor:
    """y = relu(x) with -0.0 where x <= 0 lies in the gate and +0.0 where it does not (NaN
    stays NaN), fused into the kernel that writes y in place: for a gate that straddles 0
    (lo' <= 0 <= hi', `GateParams.straddles_zero`) x <= 0 lies in it iff x >= lo', two compares
    and two selects; for any other, three compares. relu's own zero is not used: its sign for
    x = -0.0 is the vector max instruction's choice."""
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    if gate.straddles_zero:
        x_cmp, dtype = _in_compare_dtype(x)
        return torch.where(x <= 0, torch.where(x_cmp >= gate.values[_F["lo" + dtype]], -zero, zero), x)
    return torch.where(gate_mask(x, gate.values, "zero_hi"), -zero, torch.where(x <= 0, zero, x))


def _negative_zero(y: Tensor) -> Tensor:
    """y == -0.0 for a relu state y (never below 0): 1 / y < 0 (-inf; +0.0 gives +inf, NaN
    NaN), one vector division. Inductor's C++ backend emits signbit and bitwise views of floats
    as scalar loops and copysign as a library call per vector (5-7% slower than the division in
    a 2^20-element backward, 1 thread)."""
    return torch.reciprocal(y) < 0


def relu_state_gate(y: Tensor, gate) -> Tensor:
    """1[x in gate] from the relu state y (bool, y's shape): y > 0 and in the gate (for a gate
    that straddles 0: y <= hi'), or y = -0.0; 1[y > 0] alone for the gate 1[x > 0], whose y is
    relu's."""
    if gate.positive:
        return y > 0
    if gate.straddles_zero:
        y_cmp, dtype = _in_compare_dtype(y)
        return torch.where(y > 0, y_cmp <= gate.values[_F["hi" + dtype]], _negative_zero(y))
    return ((y > 0) & gate_mask(y, gate.values)) | _negative_zero(y)


def pack_lanes(mask: Tensor) -> Tensor:
    """A bool tensor packed 8 elements per byte (packing.py's layout) in plain ops."""
    flat = mask.reshape(-1).to(torch.int32)
    pad = (-flat.numel()) % 8
    if pad:
        flat = F.pad(flat, (0, pad))
    lanes = flat.view(-1, 8)
    out = lanes[:, 0]
    for j in range(1, 8):
        out = out | (lanes[:, j] << j)
    return out.to(torch.uint8)


def unpack_lanes(packed: Tensor) -> Tensor:
    """The packed bits as a (bytes, 8) bool tensor: lane j of row i is element 8 i + j."""
    shifts = torch.arange(8, dtype=torch.int32, device=packed.device)
    return ((packed.view(-1, 1).to(torch.int32) >> shifts) & 1) != 0


# The compiled gates' own bit layout ("word blocks"): blocks of BLOCK = 512 elements, each stored
# as WORDS = 16 int32 words; bit j of word w of block a is element 512 a + 16 j + w. Packing and
# unpacking then read and write 16 consecutive elements per step with one shift for all of them,
# a loop Inductor vectorises (packing.py's layout needs 8 strided loads or a lane reduction per
# byte, which it emits as scalar code, and a bool/uint8 store of a compare, which it emits at
# ~10 ns per element). Still one bit per element (plus < 64 bytes of padding per tensor). Used
# only between a graph's gate forward and its own backward, which both live in one graph.
BLOCK, WORDS = 512, 16


def _split_blocks(t: Tensor) -> list[Tensor]:
    """`t` flattened as whole blocks (blocks, 32, 16), [a, j, w] = element 512 a + 16 j + w, and,
    if its size is not a multiple of BLOCK, its last block padded (1, 32, 16). Padding all of
    `t` made Inductor guard every vector of the loop with a bounds mask (int64 index compares and
    masked loads, once per use): 1.10-1.15x native ReLU on the MNIST-1D CNN."""
    flat = t.reshape(-1)
    n = flat.numel()
    main = n - n % BLOCK
    parts = [flat[:main].view(-1, 32, WORDS)] if main else []
    if main < n:
        parts.append(F.pad(flat[main:], (0, main + BLOCK - n)).view(1, 32, WORDS))
    return parts


def _cat(parts: list[Tensor]) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _bit_shifts(device) -> Tensor:
    return torch.arange(32, dtype=torch.int32, device=device).view(1, 32, 1)


def pack_words(mask_blocks: Tensor) -> Tensor:
    """A (blocks, 32, 16) bool tensor as int32 words in the word-block layout: a sum of disjoint
    bits (an OR; bit 31 is INT32_MIN, so no partial sum overflows in any order), which Inductor
    emits as a vectorised reduction over j (selecting each bit's constant ran ~15% faster than
    shifting the mask)."""
    bits = torch.tensor([1 << j for j in range(31)] + [-(1 << 31)], dtype=torch.int32, device=mask_blocks.device)
    zero = torch.zeros((), dtype=torch.int32, device=mask_blocks.device)
    return torch.where(mask_blocks, bits.view(1, 32, 1), zero).sum(1, dtype=torch.int32).reshape(-1)


def unpack_words(words: Tensor) -> Tensor:
    """Word-block int32 words as a (blocks, 32, 16) bool tensor (padding included)."""
    return ((words.view(-1, 1, WORDS) >> _bit_shifts(words.device)) & 1) != 0


def plain_forward_pack(x: Tensor, op: int, params: Tensor) -> tuple[Tensor, Tensor]:
    """(y, or an empty tensor for op 0; the gate's words in the word-block layout) in plain ops."""
    y = forward_value(x, op)
    words = _cat([pack_words(gate_mask(part, params)) for part in _split_blocks(x)])
    return (y if y is not None else x.new_empty((0,))), words


def _gate_apply(grad: Tensor, words: Tensor, select) -> Tensor:
    """select(inside, g) over grad's blocks (whole ones, then the padded last), back in grad's shape."""
    n = grad.numel()
    inside, out, start = unpack_words(words), [], 0
    for part in _split_blocks(grad):
        stop = start + part.shape[0]
        out.append(select(inside[start:stop], part).reshape(-1))
        start = stop
    return _cat(out)[:n].view(grad.shape) if n % BLOCK else out[0].view(grad.shape)


def _level_select(params: Tensor | None, like: Tensor):
    """select(inside, g): g * level_hi inside, g * level_lo outside, 0 outside a gate whose low
    level is 0 even for a NaN gradient (native ReLU's select); params None: levels (0, 1), read
    from nowhere (the parameters are then not saved for backward)."""
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    if params is None:
        return lambda inside, g: torch.where(inside, g, zero)
    lo, hi = params[_F["level_lo"]], params[_F["level_hi"]]
    return lambda inside, g: torch.where(inside, g * hi, torch.where(lo == 0, zero, g * lo))


def plain_gate_mul(grad: Tensor, words: Tensor, params: Tensor) -> Tensor:
    """grad * (level_hi where the bit is set, level_lo elsewhere) in plain ops, for words from
    `plain_forward_pack` (`_level_select`'s semantics)."""
    return _gate_apply(grad, words, _level_select(params, grad))


def plain_gate_select(grad: Tensor, words: Tensor) -> Tensor:
    """`plain_gate_mul` for levels (0, 1): grad where the bit is set, else 0 (native ReLU's
    select, NaN gradients included), without reading the levels."""
    return _gate_apply(grad, words, _level_select(None, grad))


def relu_state_mul(grad: Tensor, y: Tensor, gate) -> Tensor:
    """`plain_gate_mul` for a gate behind relu from its relu state y (`relu_state_gate`); levels
    (0, 1) on a gate that straddles 0 as nested selects of the gradient (Inductor emits every
    bool op between masks as two conversions: the nested form ran the backward kernels ~25%
    faster inside the MLP's compiled step)."""
    if gate.unit_levels and gate.straddles_zero:  # (never 1[x > 0]: its lo' is above 0)
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        y_cmp, dtype = _in_compare_dtype(y)
        return torch.where(y > 0, torch.where(y_cmp <= gate.values[_F["hi" + dtype]], grad, zero),
                           torch.where(_negative_zero(y), grad, zero))
    return _level_select(None if gate.unit_levels else gate.values, grad)(relu_state_gate(y, gate), grad)


def unpack_any(packed: Tensor, n: int, gate=None) -> Tensor:
    """The first `n` gate bits as a flat bool tensor, from word-block words (int32, the compiled
    gates' state), packing.py's bytes (uint8: explicit pack_bits, and the opaque ops of graphs
    with symbolic shapes) or, for a gate behind relu, its relu state y (a float tensor, read
    with `gate`)."""
    if packed.is_floating_point():
        if gate is None:
            raise ValueError("unpack_any: a relu state (float tensor) needs its gate to tell the bits")
        return relu_state_gate(packed, gate).reshape(-1)[:n]
    if packed.dtype == torch.int32:
        return unpack_words(packed).reshape(-1)[:n]
    return unpack_lanes(packed).reshape(-1)[:n]


class Graph(Reference):
    """In-graph forms of the backend operations (see reference.py for the operations)."""

    name = "graph"

    def pack_bits(self, mask: Tensor) -> Tensor:
        return pack_lanes(mask)

    def unpack_bits(self, packed: Tensor, n: int) -> Tensor:
        return unpack_any(packed, n)

    def unpack_gate(self, packed: Tensor, n: int, gate) -> Tensor:
        return unpack_any(packed, n, gate)

    def pack_interval(self, x: Tensor, gate) -> Tensor:
        return pack_lanes(gate_mask(x, gate.values))  # packing.py's layout, as the API promises

    def forward_pack(self, x: Tensor, op: int, gate) -> tuple[Tensor | None, Tensor]:
        if op == _RELU and RELU_KEEPS_Y:  # the state is y (module docstring)
            y = torch.relu(x) if gate.positive else relu_with_gate_sign(x, gate)
            # A clone, not y itself: user code may modify the output in place (`h += skip`), and
            # a graph's saved state that is its output reads the modified values (no version
            # counter checks it inside a graph). The partitioner saves y for the clone, which
            # Inductor then reads in the backward kernel: no copy, no memory of its own.
            return y, y.clone()
        y, packed = ops.namespace().gate_forward_g(x, op, gate.values)
        return (y if op else None), packed

    def gate_mul(self, grad: Tensor, packed: Tensor, gate) -> Tensor:
        if packed.is_floating_point():
            return relu_state_mul(grad, packed, gate)
        if gate.unit_levels:  # no levels to read: the parameters are not saved for backward
            return ops.namespace().gate_select_g(grad, packed)
        return ops.namespace().gate_mul_g(grad, packed, gate.values)

    def jam_mul(self, grad: Tensor, packed: Tensor | None, keys, gate=None) -> Tensor:
        drawn = torch.randint(0, 2**31 - 1, (2,), dtype=torch.int64)
        empty = torch.empty(0, dtype=torch.uint8, device=grad.device)
        if packed is None or packed.dtype == torch.uint8:
            return _dispatcher(grad).jam_mul(grad, empty if packed is None else packed, drawn)
        # A compiled gate's words or relu state: the ops take packing.py's bytes, so gate the
        # ungated product here (the reference's where(gate, grad * u, 0)).
        inside = unpack_any(packed, grad.numel(), gate).view(grad.shape)
        return torch.where(inside, _dispatcher(grad).jam_mul(grad, empty, drawn), torch.zeros((), dtype=grad.dtype, device=grad.device))

    def encode_codes(self, x: Tensor, borders: Tensor, bits: int, op: int = 0) -> tuple[Tensor | None, Tensor]:
        y, packed = _dispatcher(x).encode_codes(x, borders, bits, op)
        return (y if op else None), packed

    def decode_mul(self, grad: Tensor, packed: Tensor, levels: Tensor, bits: int) -> Tensor:
        return _dispatcher(grad).decode_mul(grad, packed, levels, bits)

"""The Triton kernels themselves (triton_kernels.py loads and launches them).

This file is executed twice by `triton_kernels._kernels`, as two separate modules: once with
triton.jit compiling (CUDA tensors) and once with it interpreting (CPU tensors, the conformance
tests). triton.jit decides between the two when it decorates, and a kernel finds its helpers in
its own module's globals, so each copy's kernels call helpers of the same kind. Do not import it
directly. No `from __future__ import annotations`: the interpreter recognises `tl.constexpr`
parameters by the annotation object, not by a string.

Only builtins of triton.language are used (tl.full, tl.reduce, ...), not the jit functions of
triton.language.standard (tl.sum, tl.zeros, ...): those were decorated when triton was imported,
as compiled functions, which an interpreted kernel cannot call.

Each program owns BYTES whole bytes of packed output: the (BYTES, 8) block `idx` holds element
indices byte * 8 + lane in row-major order, so loads and stores are contiguous and no two programs
write the same byte. Bit `lane` of byte `byte` is element byte * 8 + lane (packing.py's layout).

Arithmetic happens in float32 and is rounded once to the output dtype, as torch's elementwise
kernels do for half and bfloat16 (their "opmath" type). Rounding to bfloat16 is done here in
integer arithmetic (round to nearest even, canonical NaN 0x7FC0 as torch's CPU conversion): the
interpreter's own float32 -> bfloat16 cast truncates, so `.to(tl.bfloat16)` would differ
between the two copies.
"""
import triton
import triton.language as tl

# tl.sum's own combine function, for the builtin tl.reduce: the interpreter sums with numpy when
# it sees this one (any other combine function runs element by element in Python).
_SUM = tl.standard._sum_combine


@triton.jit
def _block(BYTES: tl.constexpr):
    """(byte indices (BYTES,), lanes (8,), element indices (BYTES, 8)) of this program."""
    byte = tl.program_id(0).to(tl.int64) * BYTES + tl.arange(0, BYTES)
    lane = tl.arange(0, 8)
    return byte, lane, byte[:, None] * 8 + lane[None, :]


@triton.jit
def _pack_rows(bits, lane):
    """(BYTES, 8) 0/1 int32 -> (BYTES,) bytes: bit `lane` of each row."""
    return tl.reduce(bits << lane[None, :], 1, _SUM).to(tl.uint8)


@triton.jit
def _unpack_rows(bits_ptr, byte, lane, nbytes):
    """The packed bytes `byte` as (BYTES, 8) 0/1 int32 (bit `lane` of each byte; 0 past the end)."""
    packed = tl.load(bits_ptr + byte, mask=byte < nbytes, other=0).to(tl.int32)
    return (packed[:, None] >> lane[None, :]) & 1


@triton.jit
def _in_interval(vf, lo, hi, CLOSED_LO: tl.constexpr, CLOSED_HI: tl.constexpr):
    if CLOSED_LO:
        above = vf >= lo
    else:
        above = vf > lo
    if CLOSED_HI:
        below = vf <= hi
    else:
        below = vf < hi
    return above & below


@triton.jit
def _store_forward(y_ptr, idx, v, m, OP: tl.constexpr, BYTES: tl.constexpr):
    """y = relu(v) (OP 1; NaN and -0.0 kept, as torch.relu and the CPU kernels) or step(v) =
    1[v > 0] (OP 2; NaN -> 0); OP 0 stores nothing."""
    vf = v.to(tl.float32)
    if OP == 1:
        keep = (vf > 0.0) | (vf != vf) | (vf == 0.0)
        tl.store(y_ptr + idx, tl.where(keep, v, tl.full([BYTES, 8], 0, v.dtype)), mask=m)
    if OP == 2:  # a select, not bool.to(): the interpreter cannot cast bool to bfloat16
        tl.store(y_ptr + idx, tl.where(vf > 0.0, 1.0, 0.0).to(v.dtype), mask=m)


@triton.jit
def _bf16_bits(r):
    """float32 -> bfloat16 bit pattern (in uint32), round to nearest even; NaN -> 0x7FC0."""
    bits = r.to(tl.uint32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return tl.where(r != r, 0x7FC0, rounded).to(tl.uint32)


@triton.jit
def _round_to(r, like, BF16: tl.constexpr):
    """float32 r rounded to like's dtype and widened back to float32."""
    if BF16:
        return (_bf16_bits(r) << 16).to(tl.float32, bitcast=True)
    else:
        return r.to(like.dtype).to(tl.float32)


@triton.jit
def _store_as(out_ptr, idx, r, like, m, BF16: tl.constexpr):
    """Store float32 r in like's dtype (out_ptr is an int16 view of the output when BF16)."""
    if BF16:
        tl.store(out_ptr + idx, _bf16_bits(r).to(tl.int16), mask=m)
    else:
        tl.store(out_ptr + idx, r.to(like.dtype), mask=m)


@triton.jit
def _mix32(h):
    """murmur3's 32-bit finalizer on uint32 (multiplications wrap)."""
    h = h ^ (h >> 16)
    h = h * 0x85EBCA6B
    h = h ^ (h >> 13)
    h = h * 0xC2B2AE35
    return h ^ (h >> 16)


@triton.jit
def gate_forward(x_ptr, y_ptr, out_ptr, n, nbytes, lo, hi, OP: tl.constexpr, CLOSED_LO: tl.constexpr,
                 CLOSED_HI: tl.constexpr, BYTES: tl.constexpr):
    """Packed 1[x in interval] and, for OP 1/2, y = relu/step(x), in one pass."""
    byte, lane, idx = _block(BYTES)
    m = idx < n
    v = tl.load(x_ptr + idx, mask=m, other=0.0)
    inside = _in_interval(v.to(tl.float32), lo, hi, CLOSED_LO, CLOSED_HI) & m  # padding bits 0
    tl.store(out_ptr + byte, _pack_rows(inside.to(tl.int32), lane), mask=byte < nbytes)
    _store_forward(y_ptr, idx, v, m, OP, BYTES)


@triton.jit
def gate_mul(g_ptr, bits_ptr, out_ptr, n, nbytes, lo, hi, KIND: tl.constexpr, BF16: tl.constexpr,
             BYTES: tl.constexpr):
    """grad * (bit ? hi : lo). KIND 0: levels (0, 1); 1: (0, hi); 2: (lo, hi) with lo != 0. With
    lo == 0 the result is 0 outside the gate even for NaN/inf gradients (a select)."""
    byte, lane, idx = _block(BYTES)
    m = idx < n
    on = _unpack_rows(bits_ptr, byte, lane, nbytes) != 0
    g = tl.load(g_ptr + idx, mask=m, other=0.0)
    gf = g.to(tl.float32)
    zero = tl.full([BYTES, 8], 0, tl.float32)
    if KIND == 0:
        r = tl.where(on, gf, zero)
    elif KIND == 1:
        r = tl.where(on, gf * hi, zero)
    else:
        r = tl.where(on, gf * hi, gf * lo)
    _store_as(out_ptr, idx, r, g, m, BF16)


@triton.jit(do_not_specialize=["key_a", "key_b"])  # keys are data: no recompile when one equals 1
def jam_mul(g_ptr, bits_ptr, out_ptr, n, nbytes, key_a, key_b, GATED: tl.constexpr, BF16: tl.constexpr,
            BYTES: tl.constexpr):
    """grad * gate * u, u_i = (mix(mix(i + key_a) ^ key_b) >> 8) * 2^-24 (uint32, wrapping):
    packing.hash_uniform_reference. u is rounded to grad's dtype before the product, as there."""
    byte, lane, idx = _block(BYTES)
    m = idx < n
    h = _mix32(_mix32(idx.to(tl.uint32) + key_a.to(tl.uint32)) ^ key_b.to(tl.uint32))
    u = (h >> 8).to(tl.float32) * (1.0 / 16777216.0)
    g = tl.load(g_ptr + idx, mask=m, other=0.0)
    r = g.to(tl.float32) * _round_to(u, g, BF16)
    if GATED:  # 0 outside the gate, even for NaN gradients
        on = _unpack_rows(bits_ptr, byte, lane, nbytes) != 0
        r = tl.where(on, r, tl.full([BYTES, 8], 0, tl.float32))
    _store_as(out_ptr, idx, r, g, m, BF16)


@triton.jit
def encode(x_ptr, borders_ptr, y_ptr, out_ptr, n, nbytes, nb, OP: tl.constexpr, BITS: tl.constexpr,
           BYTES: tl.constexpr):
    """code(x) = #{borders < x} (NaN -> 0) in BITS planes of nbytes bytes; y = relu/step(x) for OP 1/2."""
    byte, lane, idx = _block(BYTES)
    m = idx < n
    v = tl.load(x_ptr + idx, mask=m, other=0.0)
    vf = v.to(tl.float32)
    code = tl.full([BYTES, 8], 0, tl.int32)
    for k in range(nb):  # NaN compares false against every border
        code += (vf > tl.load(borders_ptr + k).to(tl.float32)).to(tl.int32)
    code = tl.where(m, code, 0)  # padding bits of the last byte stay 0
    for p in tl.static_range(BITS):
        tl.store(out_ptr + p * nbytes + byte, _pack_rows((code >> p) & 1, lane), mask=byte < nbytes)
    _store_forward(y_ptr, idx, v, m, OP, BYTES)


@triton.jit
def decode_mul(g_ptr, packed_ptr, levels_ptr, out_ptr, n, nbytes, BITS: tl.constexpr, BF16: tl.constexpr,
               BYTES: tl.constexpr):
    """grad * levels[code], code read from BITS planes of nbytes bytes."""
    byte, lane, idx = _block(BYTES)
    m = idx < n
    code = tl.full([BYTES, 8], 0, tl.int32)
    for p in tl.static_range(BITS):
        code |= _unpack_rows(packed_ptr + p * nbytes, byte, lane, nbytes) << p
    level = tl.load(levels_ptr + code, mask=m, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + idx, mask=m, other=0.0)
    _store_as(out_ptr, idx, g.to(tl.float32) * level, g, m, BF16)


@triton.jit
def pack_bits(mask_ptr, out_ptr, n, nbytes, BYTES: tl.constexpr):
    """A 0/1 byte mask (a bool tensor's storage) packed 8 per byte."""
    byte, lane, idx = _block(BYTES)
    m = idx < n
    bit = (tl.load(mask_ptr + idx, mask=m, other=0) != 0) & m
    tl.store(out_ptr + byte, _pack_rows(bit.to(tl.int32), lane), mask=byte < nbytes)


@triton.jit
def unpack_bits(packed_ptr, out_ptr, n, nbytes, BYTES: tl.constexpr):
    """The first n packed bits as 0/1 bytes (a bool tensor's storage)."""
    byte, lane, idx = _block(BYTES)
    tl.store(out_ptr + idx, _unpack_rows(packed_ptr, byte, lane, nbytes).to(tl.uint8), mask=idx < n)

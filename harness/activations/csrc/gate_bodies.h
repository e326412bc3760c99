// The kernel bodies, written once over the vector traits of vec_traits.h. gate_kernels.cpp
// includes this file once per instruction set, inside that set's namespace, with
//   V               the traits (Scalar, Avx2 or Avx512)
//   HARNESS_TARGET  the set's target attribute (empty for Scalar; undefined again at the end)
// defined, so there is no include guard. Every function here carries HARNESS_TARGET: the
// intrinsics only inline into functions compiled for their instruction set (lambdas would not
// inherit it, so there are none).
//
// A body's `unit(i0, count)` handles `count` elements from i0, a multiple of 64: one 64-bit word
// of every bit plane (element i0 + j is bit j). count is 64, except for the tensor's last n % 64
// elements, which only the Scalar bodies get (any count, one lane at a time).

template <int Op>  // y = relu(x) (op 1) or step(x) (op 2) of the fused forwards
HARNESS_TARGET HARNESS_INLINE V::F forward(V::F v) {
  // max(0, v) is v where v is NaN or -0.0: as torch.relu.
  if constexpr (Op == 1) return V::max(V::set1(0.0f), v);
  else return V::select(V::cmp<kGT>(v, V::set1(0.0f)), V::set1(1.0f));
}

HARNESS_TARGET HARNESS_INLINE V::I mix32(V::I h) {  // murmur3's 32-bit finalizer
  h = V::xor_i(h, V::srli<16>(h));
  h = V::mullo(h, V::seti(0x85ebca6bu));
  h = V::xor_i(h, V::srli<13>(h));
  h = V::mullo(h, V::seti(0xc2b2ae35u));
  return V::xor_i(h, V::srli<16>(h));
}

// Elements [i0, i1): whole units (unrolled: count is a constant), then the short last one.
template <class Body>
HARNESS_TARGET HARNESS_INLINE void for_each_unit(const Body& body, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + kUnit <= i1; i += kUnit) body.unit(i, kUnit);
  if constexpr (V::kLanes == 1) {
    if (i < i1) body.unit(i, i1 - i);
  }
}

// Packed 1[lo PLo x PHi hi], and y = forward<Op>(x) unless Op is 0.
template <int Op, int PLo, int PHi>
struct GateForward {
  GateForwardArgs a;
  V::F lo, hi;
  HARNESS_TARGET HARNESS_INLINE explicit GateForward(const GateForwardArgs& args)
      : a(args), lo(V::set1(args.lo)), hi(V::set1(args.hi)) {}
  HARNESS_TARGET HARNESS_INLINE void unit(int64_t i0, int64_t count) const {
    uint64_t word = 0;
    for (int64_t j = 0; j < count; j += V::kLanes) {
      const V::F v = V::load(a.px + i0 + j);
      if constexpr (Op != 0) V::store(a.py + i0 + j, forward<Op>(v));
      word |= static_cast<uint64_t>(V::bits(V::mask_and(V::cmp<PLo>(v, lo), V::cmp<PHi>(v, hi)))) << j;
    }
    store_bits(a.po + plane_byte(i0), word, count);
  }
};

// grad * (bit ? hi : lo). Kind 0: levels (0, 1), 1: (0, hi), 2: (lo, hi) (see gate_kind). With
// lo == 0 a select, not a product: a NaN/inf gradient outside the gate becomes 0, as in native
// ReLU's backward.
template <int Kind>
struct GateMul {
  GateMulArgs a;
  V::F lo, hi;
  HARNESS_TARGET HARNESS_INLINE explicit GateMul(const GateMulArgs& args)
      : a(args), lo(V::set1(args.lo)), hi(V::set1(args.hi)) {}
  HARNESS_TARGET HARNESS_INLINE void unit(int64_t i0, int64_t count) const {
    const uint64_t word = load_bits(a.pb + plane_byte(i0), count);
    for (int64_t j = 0; j < count; j += V::kLanes) {
      const V::M on = V::mask_from_bits(word >> j);
      const V::F g = V::load(a.pg + i0 + j);
      V::F r;
      if constexpr (Kind == 0) r = V::select(on, g);
      else if constexpr (Kind == 1) r = V::select(on, V::mul(g, hi));
      else r = V::mul(g, V::blend(on, lo, hi));
      V::store(a.po + i0 + j, r);
    }
  }
};

// grad * gate * u_i, u_i = (mix(mix(i + ka) ^ kb) >> 8) * 2^-24 (packing.hash_uniform_reference);
// without a gate (Gated false) grad * u_i.
template <bool Gated>
struct JamMul {
  JamMulArgs a;
  HARNESS_TARGET HARNESS_INLINE explicit JamMul(const JamMulArgs& args) : a(args) {}
  HARNESS_TARGET HARNESS_INLINE void unit(int64_t i0, int64_t count) const {
    const uint64_t word = Gated ? load_bits(a.pb + plane_byte(i0), count) : 0;
    for (int64_t j = 0; j < count; j += V::kLanes) {
      const int64_t i = i0 + j;
      const V::I h = mix32(V::xor_i(mix32(V::add_i(V::iota(static_cast<uint32_t>(i)), V::seti(a.ka))), V::seti(a.kb)));
      const V::F uniform = V::mul(V::to_float(V::srli<8>(h)), V::set1(1.0f / 16777216.0f));
      V::F g = V::mul(V::load(a.pg + i), uniform);
      if constexpr (Gated) g = V::select(V::mask_from_bits(word >> j), g);
      V::store(a.po + i, g);
    }
  }
};

// code = #{borders < x} as `bits` bit planes, and y = forward<Op>(x) unless Op is 0. Up to 15
// borders: one compare each; a full set of 2^bits - 1 beyond that (encode_codes pads with +inf):
// a branchless binary search, `bits` gathers.
template <int Op>
struct Encode {
  EncodeArgs a;
  bool search;
  V::F border[15];
  HARNESS_TARGET HARNESS_INLINE explicit Encode(const EncodeArgs& args)
      : a(args), search(args.nb == (int64_t(1) << args.bits) - 1 && args.nb > 15) {
    for (int64_t k = 0; k < std::min<int64_t>(a.nb, 15); ++k) border[k] = V::set1(a.pb[k]);
  }
  HARNESS_TARGET HARNESS_INLINE void unit(int64_t i0, int64_t count) const {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = 0; j < count; j += V::kLanes) {
      const V::F v = V::load(a.px + i0 + j);
      if constexpr (Op != 0) V::store(a.py + i0 + j, forward<Op>(v));
      V::I c = V::seti(0);
      if (search) {
        for (int64_t step = int64_t(1) << (a.bits - 1); step > 0; step >>= 1) {
          const V::I cand = V::add_i(c, V::seti(static_cast<uint32_t>(step)));
          const V::F b = V::gather(a.pb, V::sub_i(cand, V::seti(1)));  // borders[cand - 1]
          c = V::blend_i(V::cmp<kGT>(v, b), c, cand);
        }
      } else {
        for (int64_t k = 0; k < a.nb; ++k) c = V::add_where(c, V::cmp<kGT>(v, border[k]));
      }
      for (int64_t p = 0; p < a.bits; ++p) planes[p] |= static_cast<uint64_t>(V::plane_bits(c, p)) << j;
    }
    for (int64_t p = 0; p < a.bits; ++p) store_bits(a.po + p * a.stride + plane_byte(i0), planes[p], count);
  }
};

// grad * levels[code], the code's bit p read from plane p. Bits a template argument: the loops
// over planes unroll and the lookup's choice (permute or gather) is made at compile time.
template <int Bits>
struct DecodeMul {
  DecodeMulArgs a;
  V::Levels levels;
  HARNESS_TARGET HARNESS_INLINE explicit DecodeMul(const DecodeMulArgs& args)
      : a(args), levels(args.table16, args.pl) {}
  HARNESS_TARGET HARNESS_INLINE void unit(int64_t i0, int64_t count) const {
    uint64_t planes[Bits];
    for (int64_t p = 0; p < Bits; ++p) planes[p] = load_bits(a.pp + p * a.stride + plane_byte(i0), count);
    for (int64_t j = 0; j < count; j += V::kLanes) {
      V::I code = V::seti(0);
      for (int64_t p = 0; p < Bits; ++p) code = V::or_where(code, V::mask_from_bits(planes[p] >> j), p);
      V::store(a.po + i0 + j, V::mul(V::load(a.pg + i0 + j), levels.at(code, Bits)));
    }
  }
};

// This instruction set's entry points, handed to the dispatcher as a type (see run_bodies).
struct Bodies {
  template <int Op, int PLo, int PHi>
  static HARNESS_TARGET void gate_forward(const GateForwardArgs& a, int64_t i0, int64_t i1) {
    for_each_unit(GateForward<Op, PLo, PHi>(a), i0, i1);
  }
  template <int Kind>
  static HARNESS_TARGET void gate_mul(const GateMulArgs& a, int64_t i0, int64_t i1) {
    for_each_unit(GateMul<Kind>(a), i0, i1);
  }
  template <bool Gated>
  static HARNESS_TARGET void jam_mul(const JamMulArgs& a, int64_t i0, int64_t i1) {
    for_each_unit(JamMul<Gated>(a), i0, i1);
  }
  template <int Op>
  static HARNESS_TARGET void encode(const EncodeArgs& a, int64_t i0, int64_t i1) {
    for_each_unit(Encode<Op>(a), i0, i1);
  }
  template <int Bits>
  static HARNESS_TARGET void decode_mul(const DecodeMulArgs& a, int64_t i0, int64_t i1) {
    for_each_unit(DecodeMul<Bits>(a), i0, i1);
  }
};

#undef HARNESS_TARGET

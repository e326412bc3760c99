// Vector traits for the kernel bodies in gate_bodies.h: the few operations they need, for one
// float (Scalar), 8 lanes (Avx2) or 16 lanes (Avx512). Every struct has the same members:
//
//   kLanes             elements per vector
//   F, I, M            float vector, int32 vector, per-lane mask
//   load/store/set1    float vectors; seti(k) broadcasts an int, iota(i) is i, i+1, ..., i+kLanes-1
//   add_i/sub_i/xor_i, srli<K>, mullo, to_float     int32 lanes (to_float: signed int -> float)
//   mul, max           float lanes; max(a, b) is x86's: a > b ? a : b (b when either is NaN)
//   cmp<P>             ordered, quiet compare (NaN -> false) of every lane -> M
//   mask_and           both masks
//   bits(m)            the mask as kLanes packed bits, lane j in bit j
//   mask_from_bits(w)  the inverse, from the low kLanes bits of w
//   select(m, a)       a where m, else +0.0 (even where a is NaN or inf)
//   blend(m, a, b)     b where m, else a (blend_i: the same for int lanes)
//   add_where(c, m)    c + 1 where m
//   or_where(c, m, p)  c | 1 << p where m
//   plane_bits(c, p)   bit p of every lane of c, packed as in bits()
//   gather(base, idx)  base[idx] per lane
//   Levels             levels[code] for decode, at(code, bits): 16 entries in registers, or a gather
//
// Each SIMD member carries its own target attribute (not `#pragma GCC target`, which clang
// ignores), so this compiles without -m flags and only runs where the CPU has the instructions.
// always_inline: the bodies must see through every call, or each one passes vectors in memory.
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define HARNESS_X86 1
#include <immintrin.h>
#endif

namespace gate_simd {

enum Cmp : int { kGE, kGT, kLE, kLT };  // the interval ends' predicates, ordered and quiet

#define HARNESS_INLINE inline __attribute__((always_inline))

struct Scalar {
  static constexpr int kLanes = 1;
  using F = float;
  using I = uint32_t;  // unsigned: the hash's multiplications wrap
  using M = bool;

  static HARNESS_INLINE F load(const float* p) { return *p; }
  static HARNESS_INLINE void store(float* p, F v) { *p = v; }
  static HARNESS_INLINE F set1(float v) { return v; }
  static HARNESS_INLINE I seti(uint32_t k) { return k; }
  static HARNESS_INLINE I iota(uint32_t i) { return i; }
  static HARNESS_INLINE I add_i(I a, I b) { return a + b; }
  static HARNESS_INLINE I sub_i(I a, I b) { return a - b; }
  static HARNESS_INLINE I xor_i(I a, I b) { return a ^ b; }
  template <int K>
  static HARNESS_INLINE I srli(I a) { return a >> K; }
  static HARNESS_INLINE I mullo(I a, I b) { return a * b; }
  static HARNESS_INLINE F to_float(I a) { return static_cast<float>(static_cast<int32_t>(a)); }
  static HARNESS_INLINE F mul(F a, F b) { return a * b; }
  static HARNESS_INLINE F max(F a, F b) { return a > b ? a : b; }
  template <int P>
  static HARNESS_INLINE M cmp(F a, F b) {
    if constexpr (P == kGE) return a >= b;
    else if constexpr (P == kGT) return a > b;
    else if constexpr (P == kLE) return a <= b;
    else return a < b;
  }
  static HARNESS_INLINE M mask_and(M a, M b) { return a && b; }
  static HARNESS_INLINE uint32_t bits(M m) { return m; }
  static HARNESS_INLINE M mask_from_bits(uint64_t w) { return w & 1; }
  static HARNESS_INLINE F select(M m, F a) { return m ? a : 0.0f; }
  static HARNESS_INLINE F blend(M m, F a, F b) { return m ? b : a; }
  static HARNESS_INLINE I blend_i(M m, I a, I b) { return m ? b : a; }
  static HARNESS_INLINE I add_where(I c, M m) { return c + m; }
  static HARNESS_INLINE I or_where(I c, M m, int64_t p) { return c | static_cast<I>(m) << p; }
  static HARNESS_INLINE uint32_t plane_bits(I c, int64_t p) { return (c >> p) & 1; }
  static HARNESS_INLINE F gather(const float* base, I idx) { return base[idx]; }

  struct Levels {
    const float* levels;
    HARNESS_INLINE Levels(const float* /*table16*/, const float* all) : levels(all) {}
    HARNESS_INLINE F at(I code, int64_t /*bits*/) const { return levels[code]; }
  };
};

#ifdef HARNESS_X86
#define HARNESS_AVX2 __attribute__((target("avx2,fma")))
#define HARNESS_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma")))

// Predicate immediates for _mm*_cmp_ps: a template argument, so every compare is one instruction.
template <int P>
constexpr int kCmpImm = P == kGE ? _CMP_GE_OQ : P == kGT ? _CMP_GT_OQ : P == kLE ? _CMP_LE_OQ : _CMP_LT_OQ;

#define HARNESS_AVX2_FN static HARNESS_AVX2 HARNESS_INLINE
struct Avx2 {
  static constexpr int kLanes = 8;
  using F = __m256;
  using I = __m256i;
  using M = __m256;  // all ones in a lane where true: AND selects, movemask packs

  HARNESS_AVX2_FN F load(const float* p) { return _mm256_loadu_ps(p); }
  HARNESS_AVX2_FN void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  HARNESS_AVX2_FN F set1(float v) { return _mm256_set1_ps(v); }
  HARNESS_AVX2_FN I seti(uint32_t k) { return _mm256_set1_epi32(static_cast<int>(k)); }
  HARNESS_AVX2_FN I iota(uint32_t i) { return _mm256_add_epi32(seti(i), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  HARNESS_AVX2_FN I add_i(I a, I b) { return _mm256_add_epi32(a, b); }
  HARNESS_AVX2_FN I sub_i(I a, I b) { return _mm256_sub_epi32(a, b); }
  HARNESS_AVX2_FN I xor_i(I a, I b) { return _mm256_xor_si256(a, b); }
  template <int K>
  HARNESS_AVX2_FN I srli(I a) { return _mm256_srli_epi32(a, K); }
  HARNESS_AVX2_FN I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
  HARNESS_AVX2_FN F to_float(I a) { return _mm256_cvtepi32_ps(a); }
  HARNESS_AVX2_FN F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  HARNESS_AVX2_FN F max(F a, F b) { return _mm256_max_ps(a, b); }
  template <int P>
  HARNESS_AVX2_FN M cmp(F a, F b) { return _mm256_cmp_ps(a, b, kCmpImm<P>); }
  HARNESS_AVX2_FN M mask_and(M a, M b) { return _mm256_and_ps(a, b); }
  HARNESS_AVX2_FN uint32_t bits(M m) { return static_cast<uint32_t>(_mm256_movemask_ps(m)); }
  // Broadcast the byte, keep bit j in lane j, compare: all ones where the bit is set.
  HARNESS_AVX2_FN M mask_from_bits(uint64_t w) {
    const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i sel = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(w)), lane_bits);
    return _mm256_castsi256_ps(_mm256_cmpeq_epi32(sel, lane_bits));
  }
  HARNESS_AVX2_FN F select(M m, F a) { return _mm256_and_ps(a, m); }
  HARNESS_AVX2_FN F blend(M m, F a, F b) { return _mm256_blendv_ps(a, b, m); }
  HARNESS_AVX2_FN I blend_i(M m, I a, I b) { return _mm256_blendv_epi8(a, b, _mm256_castps_si256(m)); }
  // A true lane is -1 as an int: subtracting it adds one.
  HARNESS_AVX2_FN I add_where(I c, M m) { return _mm256_sub_epi32(c, _mm256_castps_si256(m)); }
  HARNESS_AVX2_FN I or_where(I c, M m, int64_t p) {
    return _mm256_or_si256(c, _mm256_and_si256(_mm256_castps_si256(m), seti(1u << p)));
  }
  // Bit p to the sign bit, which is what movemask packs.
  HARNESS_AVX2_FN uint32_t plane_bits(I c, int64_t p) {
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(c, static_cast<int>(31 - p)))));
  }
  HARNESS_AVX2_FN F gather(const float* base, I idx) { return _mm256_i32gather_ps(base, idx, 4); }

  // Up to 8 levels (3 bits) live in one register: an in-register permute, no gather; 16 levels
  // (4 bits): two permutes, blended on bit 3 of the code; more: a gather.
  struct Levels {
    __m256 lo8, hi8;
    const float* all;
    HARNESS_AVX2 HARNESS_INLINE Levels(const float* table16, const float* levels)
        : lo8(_mm256_loadu_ps(table16)), hi8(_mm256_loadu_ps(table16 + 8)), all(levels) {}
    HARNESS_AVX2 HARNESS_INLINE F at(I code, int64_t bits) const {
      if (bits <= 3) return _mm256_permutevar8x32_ps(lo8, code);
      if (bits == 4) {
        const __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(code, 28));  // bit 3 -> sign
        return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo8, code), _mm256_permutevar8x32_ps(hi8, code), upper);
      }
      return gather(all, code);
    }
  };
};
#undef HARNESS_AVX2_FN

#define HARNESS_AVX512_FN static HARNESS_AVX512 HARNESS_INLINE
struct Avx512 {
  static constexpr int kLanes = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;  // a compare's result: already 16 packed bits

  HARNESS_AVX512_FN F load(const float* p) { return _mm512_loadu_ps(p); }
  HARNESS_AVX512_FN void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  HARNESS_AVX512_FN F set1(float v) { return _mm512_set1_ps(v); }
  HARNESS_AVX512_FN I seti(uint32_t k) { return _mm512_set1_epi32(static_cast<int>(k)); }
  HARNESS_AVX512_FN I iota(uint32_t i) {
    return _mm512_add_epi32(seti(i), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  }
  HARNESS_AVX512_FN I add_i(I a, I b) { return _mm512_add_epi32(a, b); }
  HARNESS_AVX512_FN I sub_i(I a, I b) { return _mm512_sub_epi32(a, b); }
  HARNESS_AVX512_FN I xor_i(I a, I b) { return _mm512_xor_si512(a, b); }
  template <int K>
  HARNESS_AVX512_FN I srli(I a) { return _mm512_srli_epi32(a, K); }
  HARNESS_AVX512_FN I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  HARNESS_AVX512_FN F to_float(I a) { return _mm512_cvtepi32_ps(a); }
  HARNESS_AVX512_FN F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  HARNESS_AVX512_FN F max(F a, F b) { return _mm512_max_ps(a, b); }
  template <int P>
  HARNESS_AVX512_FN M cmp(F a, F b) { return _mm512_cmp_ps_mask(a, b, kCmpImm<P>); }
  HARNESS_AVX512_FN M mask_and(M a, M b) { return static_cast<M>(a & b); }
  HARNESS_AVX512_FN uint32_t bits(M m) { return m; }
  HARNESS_AVX512_FN M mask_from_bits(uint64_t w) { return static_cast<M>(w); }
  // Zero-masking: 0 outside the mask whatever a holds.
  HARNESS_AVX512_FN F select(M m, F a) { return _mm512_maskz_mov_ps(m, a); }
  HARNESS_AVX512_FN F blend(M m, F a, F b) { return _mm512_mask_blend_ps(m, a, b); }
  HARNESS_AVX512_FN I blend_i(M m, I a, I b) { return _mm512_mask_mov_epi32(a, m, b); }
  HARNESS_AVX512_FN I add_where(I c, M m) { return _mm512_mask_add_epi32(c, m, c, seti(1)); }
  HARNESS_AVX512_FN I or_where(I c, M m, int64_t p) { return _mm512_mask_or_epi32(c, m, c, seti(1u << p)); }
  HARNESS_AVX512_FN uint32_t plane_bits(I c, int64_t p) { return _mm512_test_epi32_mask(c, seti(1u << p)); }
  HARNESS_AVX512_FN F gather(const float* base, I idx) { return _mm512_i32gather_ps(idx, base, 4); }

  // Up to 16 levels (4 bits): one in-register permute, no gather.
  struct Levels {
    __m512 table;
    const float* all;
    HARNESS_AVX512 HARNESS_INLINE Levels(const float* table16, const float* levels)
        : table(_mm512_loadu_ps(table16)), all(levels) {}
    HARNESS_AVX512 HARNESS_INLINE F at(I code, int64_t bits) const {
      return bits <= 4 ? _mm512_permutexvar_ps(code, table) : gather(all, code);
    }
  };
};
#undef HARNESS_AVX512_FN
#endif  // HARNESS_X86

}  // namespace gate_simd

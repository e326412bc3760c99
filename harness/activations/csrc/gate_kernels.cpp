// Fused CPU kernels for the state that gate, code and jamming rules save (float32, contiguous).
//
// gate_forward: one pass over x: y = relu(x) / step(x) (or no y) and the packed gate 1[x in I].
// gate_mul:     one pass over grad: grad * (bit ? hi : lo). Reads 4n + n/8 bytes, writes 4n:
//               less than native ReLU's backward (12n).
// jam_mul:      grad * gate * u, u ~ U(0,1) from a counter-based hash (no random tensor pass).
// encode_codes / decode_mul: b-bit codes #{borders < x} in b bit planes, and grad * levels[code].
//
// Layout (shared with harness/activations/packing.py): element i -> byte i / 8, bit i % 8 of
// each bit plane; a plane holds ceil(n / 8) bytes. The Python references are the
// specification; tests check every body below against them bit for bit.
//
// Each kernel has three bodies, chosen at run time from what the CPU supports (`set_isa` lets
// tests and benchmarks force a lower one):
//   avx512: 16 lanes; compares land directly in 16-bit masks, which *are* the packed bits.
//   avx2:   8 lanes; movemask turns a compare into one byte.
//   scalar: portable code, also used for the tails (the last n % 64 elements).
// Work is split into units of 64 elements: one 64-bit word of every bit plane, so parallel tasks
// never share a byte, and each unit is 4 (avx512) or 8 (avx2) vectors, unrolled.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#define HARNESS_X86 1
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kUnit = 64;           // elements per work unit
constexpr int64_t kGrainUnits = 1024;   // units per parallel task (64k elements)
enum Isa : int64_t { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

int64_t detect_isa() {
#ifdef HARNESS_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
#endif
  return kScalar;
}

const int64_t kBestIsa = detect_isa();
int64_t g_isa = kBestIsa;

// Runs body(u0, u1) over the full 64-element units in parallel; returns how many there are.
template <class Body>
int64_t for_units(int64_t n, const Body& body) {
  const int64_t units = n / kUnit;
  if (units > 0) at::parallel_for(0, units, kGrainUnits, body);
  return units;
}

inline uint64_t load_word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

inline void store_word(uint8_t* p, uint64_t w) { std::memcpy(p, &w, 8); }

// ---------------------------------------------------------------------------------------------
// Scalar bodies: element ranges [i0, i1) with i0 % 8 == 0 (whole bytes).

inline bool in_interval(float v, float lo, float hi, bool closed_lo, bool closed_hi) {
  const bool above = closed_lo ? v >= lo : v > lo;
  const bool below = closed_hi ? v <= hi : v < hi;
  return above && below;
}

// y = f(x) for the fused forwards: op 1 = relu (NaN and -0.0 kept, as torch.relu and the SIMD
// max(0, v) do), op 2 = step (1[x > 0], NaN -> 0).
inline float forward_scalar(int64_t op, float v) {
  return op == 1 ? (v > 0.0f || v != v || v == 0.0f ? v : 0.0f) : (v > 0.0f ? 1.0f : 0.0f);
}

// Select semantics: outside the gate with level 0 the result is 0 even for NaN/inf gradients.
inline float gate_level(float g, bool on, float lo, float hi) {
  return on ? g * hi : (lo == 0.0f ? 0.0f : g * lo);
}

inline bool bit_at(const uint8_t* packed, int64_t i) { return (packed[i / 8] >> (i % 8)) & 1; }

inline uint32_t mix32(uint32_t h) {  // murmur3's 32-bit finalizer
  h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
  return h;
}

// u_i = (mix(mix(i + ka) ^ kb) >> 8) * 2^-24: packing.hash_uniform_reference.
inline float hash_uniform(uint32_t i, uint32_t ka, uint32_t kb) {
  return static_cast<float>(mix32(mix32(i + ka) ^ kb) >> 8) * (1.0f / 16777216.0f);
}

void gate_forward_scalar(const float* px, float* py, uint8_t* po, int64_t i0, int64_t i1, int64_t op,
                         float lo, float hi, bool closed_lo, bool closed_hi) {
  for (int64_t b = i0 / 8; 8 * b < i1; ++b) {
    uint8_t byte = 0;
    for (int64_t i = 8 * b; i < std::min(8 * b + 8, i1); ++i) {
      if (op) py[i] = forward_scalar(op, px[i]);
      byte |= static_cast<uint8_t>(in_interval(px[i], lo, hi, closed_lo, closed_hi)) << (i - 8 * b);
    }
    po[b] = byte;
  }
}

void gate_mul_scalar(const float* pg, const uint8_t* pb, float* po, int64_t i0, int64_t i1, float lo, float hi) {
  for (int64_t i = i0; i < i1; ++i) po[i] = gate_level(pg[i], bit_at(pb, i), lo, hi);
}

void jam_mul_scalar(const float* pg, const uint8_t* pb, float* po, int64_t i0, int64_t i1, uint32_t ka, uint32_t kb) {
  for (int64_t i = i0; i < i1; ++i) {
    const bool on = pb == nullptr || bit_at(pb, i);
    po[i] = on ? pg[i] * hash_uniform(static_cast<uint32_t>(i), ka, kb) : 0.0f;
  }
}

void encode_scalar(const float* px, float* py, uint8_t* po, int64_t i0, int64_t i1, int64_t stride, int64_t op,
                   const float* pb, int64_t nb, int64_t bits) {
  for (int64_t b = i0 / 8; 8 * b < i1; ++b) {
    int codes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 8 * b; i < std::min(8 * b + 8, i1); ++i) {
      for (int64_t k = 0; k < nb; ++k) codes[i - 8 * b] += px[i] > pb[k];
      if (op) py[i] = forward_scalar(op, px[i]);
    }
    for (int64_t p = 0; p < bits; ++p) {
      uint8_t byte = 0;
      for (int j = 0; j < 8; ++j) byte |= static_cast<uint8_t>((codes[j] >> p) & 1) << j;
      po[p * stride + b] = byte;
    }
  }
}

void decode_scalar(const float* pg, const uint8_t* pp, const float* pl, float* po, int64_t i0, int64_t i1,
                   int64_t stride, int64_t bits) {
  for (int64_t i = i0; i < i1; ++i) {
    int c = 0;
    for (int64_t p = 0; p < bits; ++p) c |= static_cast<int>(bit_at(pp + p * stride, i)) << p;
    po[i] = pg[i] * pl[c];
  }
}

#ifdef HARNESS_X86
// Calls f(op, lo_predicate, hi_predicate) with compile-time constants, so the SIMD bodies get
// immediate compare predicates and no branches in their inner loops.
template <class F>
void with_interval(int64_t op, bool closed_lo, bool closed_hi, F&& f) {
  using GE = std::integral_constant<int, _CMP_GE_OQ>;
  using GT = std::integral_constant<int, _CMP_GT_OQ>;
  using LE = std::integral_constant<int, _CMP_LE_OQ>;
  using LT = std::integral_constant<int, _CMP_LT_OQ>;
  auto ends = [&](auto op_c) {
    if (closed_lo) {
      if (closed_hi) f(op_c, GE{}, LE{}); else f(op_c, GE{}, LT{});
    } else {
      if (closed_hi) f(op_c, GT{}, LE{}); else f(op_c, GT{}, LT{});
    }
  };
  if (op == 0) ends(std::integral_constant<int, 0>{});
  else if (op == 1) ends(std::integral_constant<int, 1>{});
  else ends(std::integral_constant<int, 2>{});
}

// Kind of gate levels: 0 = (0, 1) (a plain select), 1 = (0, hi), 2 = (lo, hi).
inline int gate_kind(float lo, float hi) { return lo != 0.0f ? 2 : (hi == 1.0f ? 0 : 1); }

template <class F>
void with_gate_kind(int kind, F&& f) {
  if (kind == 0) f(std::integral_constant<int, 0>{});
  else if (kind == 1) f(std::integral_constant<int, 1>{});
  else f(std::integral_constant<int, 2>{});
}

// ---------------------------------------------------------------------------------------------
// AVX2 bodies: units [u0, u1), 8 vectors of 8 lanes each.
// Target attributes per function (not `#pragma GCC target`, which clang ignores): the SIMD
// bodies compile without -m flags and only run where the CPU has the instructions.
#define HARNESS_AVX2 __attribute__((target("avx2,fma")))
#define HARNESS_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma")))
namespace avx2 {

HARNESS_AVX2 inline __m256 forward(int op, __m256 v) {
  const __m256 zero = _mm256_setzero_ps();
  // max_ps returns its second operand when either is NaN: (zero, v) keeps NaN like torch.relu.
  return op == 1 ? _mm256_max_ps(zero, v) : _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ), _mm256_set1_ps(1.0f));
}

// Lane j all ones where bit j of `byte` is set: the gate of 8 elements as a mask.
HARNESS_AVX2 inline __m256 bit_mask(uint32_t byte) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i sel = _mm256_and_si256(_mm256_set1_epi32(static_cast<int>(byte)), lane_bits);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(sel, lane_bits));
}

HARNESS_AVX2 inline __m256i mix32(__m256i h) {
  h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
  h = _mm256_mullo_epi32(h, _mm256_set1_epi32(static_cast<int>(0x85ebca6bu)));
  h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 13));
  h = _mm256_mullo_epi32(h, _mm256_set1_epi32(static_cast<int>(0xc2b2ae35u)));
  return _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
}

template <int Op, int PLo, int PHi>
HARNESS_AVX2 void gate_forward(const float* px, float* py, uint8_t* po, int64_t u0, int64_t u1, float lo, float hi) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (int64_t u = u0; u < u1; ++u) {
    uint64_t word = 0;
    for (int s = 0; s < 8; ++s) {
      const int64_t i = kUnit * u + 8 * s;
      const __m256 v = _mm256_loadu_ps(px + i);
      if constexpr (Op != 0) _mm256_storeu_ps(py + i, forward(Op, v));
      const __m256 in = _mm256_and_ps(_mm256_cmp_ps(v, vlo, PLo), _mm256_cmp_ps(v, vhi, PHi));
      word |= static_cast<uint64_t>(_mm256_movemask_ps(in)) << (8 * s);
    }
    store_word(po + 8 * u, word);
  }
}

template <int Kind>
HARNESS_AVX2 void gate_mul(const float* pg, const uint8_t* pb, float* po, int64_t u0, int64_t u1, float lo, float hi) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (int64_t u = u0; u < u1; ++u) {
    for (int s = 0; s < 8; ++s) {
      const int64_t i = kUnit * u + 8 * s;
      const __m256 mask = bit_mask(pb[8 * u + s]);
      const __m256 g = _mm256_loadu_ps(pg + i);
      // lo == 0: select (AND), so a NaN/inf gradient outside the gate becomes 0 as in native
      // ReLU's backward.
      __m256 r;
      if constexpr (Kind == 0) r = _mm256_and_ps(g, mask);
      else if constexpr (Kind == 1) r = _mm256_and_ps(_mm256_mul_ps(g, vhi), mask);
      else r = _mm256_mul_ps(g, _mm256_blendv_ps(vlo, vhi, mask));
      _mm256_storeu_ps(po + i, r);
    }
  }
}

template <bool Gated>
HARNESS_AVX2 void jam_mul(const float* pg, const uint8_t* pb, float* po, int64_t u0, int64_t u1, uint32_t ka, uint32_t kb) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i vka = _mm256_set1_epi32(static_cast<int>(ka)), vkb = _mm256_set1_epi32(static_cast<int>(kb));
  const __m256 scale = _mm256_set1_ps(1.0f / 16777216.0f);
  for (int64_t u = u0; u < u1; ++u) {
    for (int s = 0; s < 8; ++s) {
      const int64_t i = kUnit * u + 8 * s;
      const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(i))), lane);
      const __m256i h = mix32(_mm256_xor_si256(mix32(_mm256_add_epi32(idx, vka)), vkb));
      const __m256 uniform = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8)), scale);
      __m256 g = _mm256_mul_ps(_mm256_loadu_ps(pg + i), uniform);
      if constexpr (Gated) g = _mm256_and_ps(g, bit_mask(pb[8 * u + s]));
      _mm256_storeu_ps(po + i, g);
    }
  }
}

HARNESS_AVX2 void encode(const float* px, float* py, uint8_t* po, int64_t u0, int64_t u1, int64_t stride, int64_t op,
            const float* pb, int64_t nb, int64_t bits) {
  const bool search = nb == (int64_t(1) << bits) - 1 && nb > 15;
  __m256 vb[15];
  for (int64_t k = 0; k < std::min<int64_t>(nb, 15); ++k) vb[k] = _mm256_set1_ps(pb[k]);
  const __m256i one = _mm256_set1_epi32(1);
  for (int64_t u = u0; u < u1; ++u) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int s = 0; s < 8; ++s) {
      const int64_t i = kUnit * u + 8 * s;
      const __m256 v = _mm256_loadu_ps(px + i);
      if (op) _mm256_storeu_ps(py + i, forward(static_cast<int>(op), v));
      __m256i c = _mm256_setzero_si256();
      if (search) {
        // Branchless binary search over the 2^bits - 1 sorted borders: `bits` gathers.
        for (int64_t step = int64_t(1) << (bits - 1); step > 0; step >>= 1) {
          const __m256i cand = _mm256_add_epi32(c, _mm256_set1_epi32(static_cast<int>(step)));
          const __m256 border = _mm256_i32gather_ps(pb, _mm256_sub_epi32(cand, one), 4);  // borders[cand - 1]
          c = _mm256_blendv_epi8(c, cand, _mm256_castps_si256(_mm256_cmp_ps(v, border, _CMP_GT_OQ)));
        }
      } else {
        for (int64_t k = 0; k < nb; ++k)  // compare gives -1 where v > border: subtract it
          c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, vb[k], _CMP_GT_OQ)));
      }
      for (int64_t p = 0; p < bits; ++p) {  // bit p of each code -> sign bit -> movemask
        const int m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(c, static_cast<int>(31 - p))));
        planes[p] |= static_cast<uint64_t>(m) << (8 * s);
      }
    }
    for (int64_t p = 0; p < bits; ++p) store_word(po + p * stride + 8 * u, planes[p]);
  }
}

HARNESS_AVX2 void decode(const float* pg, const uint8_t* pp, const float* pl, int64_t nlevels, float* po, int64_t u0, int64_t u1,
            int64_t stride, int64_t bits) {
  float table[16] = {0};
  for (int64_t k = 0; k < std::min<int64_t>(16, nlevels); ++k) table[k] = pl[k];
  const __m256 lv_lo = _mm256_loadu_ps(table), lv_hi = _mm256_loadu_ps(table + 8);
  for (int64_t u = u0; u < u1; ++u) {
    for (int s = 0; s < 8; ++s) {
      const int64_t i = kUnit * u + 8 * s;
      __m256i code = _mm256_setzero_si256();
      for (int64_t p = 0; p < bits; ++p) {
        const __m256i bit = _mm256_srli_epi32(_mm256_castps_si256(bit_mask(pp[p * stride + 8 * u + s])), 31);  // 0 or 1
        code = _mm256_or_si256(code, _mm256_slli_epi32(bit, static_cast<int>(p)));
      }
      __m256 lv;
      if (bits <= 3) {  // up to 8 levels live in one register: an in-register permute, no gather
        lv = _mm256_permutevar8x32_ps(lv_lo, code);
      } else if (bits == 4) {  // 16 levels: two permutes, blended on bit 3
        const __m256 hi8 = _mm256_castsi256_ps(_mm256_slli_epi32(code, 28));
        lv = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lv_lo, code), _mm256_permutevar8x32_ps(lv_hi, code), hi8);
      } else {
        lv = _mm256_i32gather_ps(pl, code, 4);
      }
      _mm256_storeu_ps(po + i, _mm256_mul_ps(_mm256_loadu_ps(pg + i), lv));
    }
  }
}

}  // namespace avx2

// ---------------------------------------------------------------------------------------------
// AVX-512 bodies: units [u0, u1), 4 vectors of 16 lanes; a compare's __mmask16 is 2 packed bytes.
namespace avx512 {

HARNESS_AVX512 inline __mmask16 mask16(uint64_t word, int s) { return static_cast<__mmask16>(word >> (16 * s)); }

HARNESS_AVX512 inline __m512i mix32(__m512i h) {
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
  h = _mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int>(0x85ebca6bu)));
  h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 13));
  h = _mm512_mullo_epi32(h, _mm512_set1_epi32(static_cast<int>(0xc2b2ae35u)));
  return _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
}

template <int Op>
HARNESS_AVX512 inline void store_forward(float* py, __m512 v) {
  const __m512 zero = _mm512_setzero_ps();
  // max(zero, v) returns v when either is NaN, and v for -0.0: as torch.relu and the AVX2 body.
  if constexpr (Op == 1) _mm512_storeu_ps(py, _mm512_max_ps(zero, v));
  if constexpr (Op == 2) _mm512_storeu_ps(py, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), _mm512_set1_ps(1.0f)));
}

template <int Op, int PLo, int PHi>
HARNESS_AVX512 void gate_forward(const float* px, float* py, uint8_t* po, int64_t u0, int64_t u1, float lo, float hi) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (int64_t u = u0; u < u1; ++u) {
    uint64_t word = 0;
    for (int s = 0; s < 4; ++s) {
      const int64_t i = kUnit * u + 16 * s;
      const __m512 v = _mm512_loadu_ps(px + i);
      store_forward<Op>(py + i, v);
      const __mmask16 in = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(v, vlo, PLo), v, vhi, PHi);
      word |= static_cast<uint64_t>(in) << (16 * s);
    }
    store_word(po + 8 * u, word);
  }
}

template <int Kind>
HARNESS_AVX512 void gate_mul(const float* pg, const uint8_t* pb, float* po, int64_t u0, int64_t u1, float lo, float hi) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (int64_t u = u0; u < u1; ++u) {
    const uint64_t word = load_word(pb + 8 * u);
    for (int s = 0; s < 4; ++s) {
      const int64_t i = kUnit * u + 16 * s;
      const __mmask16 m = mask16(word, s);
      const __m512 g = _mm512_loadu_ps(pg + i);
      __m512 r;  // zero-masking: 0 outside the gate even for NaN/inf gradients (native ReLU)
      if constexpr (Kind == 0) r = _mm512_maskz_mov_ps(m, g);
      else if constexpr (Kind == 1) r = _mm512_maskz_mul_ps(m, g, vhi);
      else r = _mm512_mul_ps(g, _mm512_mask_blend_ps(m, vlo, vhi));
      _mm512_storeu_ps(po + i, r);
    }
  }
}

template <bool Gated>
HARNESS_AVX512 void jam_mul(const float* pg, const uint8_t* pb, float* po, int64_t u0, int64_t u1, uint32_t ka, uint32_t kb) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i vka = _mm512_set1_epi32(static_cast<int>(ka)), vkb = _mm512_set1_epi32(static_cast<int>(kb));
  const __m512 scale = _mm512_set1_ps(1.0f / 16777216.0f);
  for (int64_t u = u0; u < u1; ++u) {
    const uint64_t word = Gated ? load_word(pb + 8 * u) : 0;
    for (int s = 0; s < 4; ++s) {
      const int64_t i = kUnit * u + 16 * s;
      const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(i))), lane);
      const __m512i h = mix32(_mm512_xor_si512(mix32(_mm512_add_epi32(idx, vka)), vkb));
      const __m512 uniform = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(h, 8)), scale);
      const __m512 g = _mm512_loadu_ps(pg + i);
      _mm512_storeu_ps(po + i, Gated ? _mm512_maskz_mul_ps(mask16(word, s), g, uniform) : _mm512_mul_ps(g, uniform));
    }
  }
}

template <int Op>
HARNESS_AVX512 void encode(const float* px, float* py, uint8_t* po, int64_t u0, int64_t u1, int64_t stride,
            const float* pb, int64_t nb, int64_t bits) {
  const bool search = nb == (int64_t(1) << bits) - 1 && nb > 15;
  __m512 vb[15];
  for (int64_t k = 0; k < std::min<int64_t>(nb, 15); ++k) vb[k] = _mm512_set1_ps(pb[k]);
  const __m512i one = _mm512_set1_epi32(1);
  for (int64_t u = u0; u < u1; ++u) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int s = 0; s < 4; ++s) {
      const int64_t i = kUnit * u + 16 * s;
      const __m512 v = _mm512_loadu_ps(px + i);
      store_forward<Op>(py + i, v);
      __m512i c = _mm512_setzero_si512();
      if (search) {  // branchless binary search over the 2^bits - 1 sorted borders
        for (int64_t step = int64_t(1) << (bits - 1); step > 0; step >>= 1) {
          const __m512i cand = _mm512_add_epi32(c, _mm512_set1_epi32(static_cast<int>(step)));
          const __m512 border = _mm512_i32gather_ps(_mm512_sub_epi32(cand, one), pb, 4);  // borders[cand - 1]
          c = _mm512_mask_mov_epi32(c, _mm512_cmp_ps_mask(v, border, _CMP_GT_OQ), cand);
        }
      } else {
        for (int64_t k = 0; k < nb; ++k) c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(v, vb[k], _CMP_GT_OQ), c, one);
      }
      for (int64_t p = 0; p < bits; ++p)
        planes[p] |= static_cast<uint64_t>(_mm512_test_epi32_mask(c, _mm512_set1_epi32(1 << p))) << (16 * s);
    }
    for (int64_t p = 0; p < bits; ++p) store_word(po + p * stride + 8 * u, planes[p]);
  }
}

HARNESS_AVX512 void decode(const float* pg, const uint8_t* pp, const float* pl, int64_t nlevels, float* po, int64_t u0, int64_t u1,
            int64_t stride, int64_t bits) {
  float table[16] = {0};
  for (int64_t k = 0; k < std::min<int64_t>(16, nlevels); ++k) table[k] = pl[k];
  const __m512 levels16 = _mm512_loadu_ps(table);  // up to 4 bits: one in-register permute, no gather
  for (int64_t u = u0; u < u1; ++u) {
    uint64_t planes[8];
    for (int64_t p = 0; p < bits; ++p) planes[p] = load_word(pp + p * stride + 8 * u);
    for (int s = 0; s < 4; ++s) {
      const int64_t i = kUnit * u + 16 * s;
      __m512i code = _mm512_setzero_si512();
      for (int64_t p = 0; p < bits; ++p)
        code = _mm512_mask_or_epi32(code, mask16(planes[p], s), code, _mm512_set1_epi32(1 << p));
      const __m512 lv = bits <= 4 ? _mm512_permutexvar_ps(code, levels16) : _mm512_i32gather_ps(code, pl, 4);
      _mm512_storeu_ps(po + i, _mm512_mul_ps(_mm512_loadu_ps(pg + i), lv));
    }
  }
}

}  // namespace avx512
#endif  // HARNESS_X86

void check_float_input(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.device().is_cpu(), what, " needs a float32 CPU tensor");
}

}  // namespace

// Packed 1[x in [lo, hi]] (ends open or closed), and y = relu(x) (op 1) or step(x) (op 2) in
// the same pass; op 0 writes no y (an empty tensor is returned in its place).
std::tuple<torch::Tensor, torch::Tensor> gate_forward(torch::Tensor x, int64_t op, double lo_d, double hi_d, bool closed_lo, bool closed_hi) {
  check_float_input(x, "gate_forward");
  TORCH_CHECK(op >= 0 && op <= 2, "gate_forward: op must be 0 (none), 1 (relu) or 2 (step)");
  const int64_t n = x.numel();
  x = x.contiguous();
  auto y = op ? torch::empty_like(x) : torch::empty({0}, x.options());
  auto out = torch::empty({(n + 7) / 8}, x.options().dtype(torch::kUInt8));
  const float* px = x.data_ptr<float>();
  float* py = op ? y.data_ptr<float>() : nullptr;
  uint8_t* po = out.data_ptr<uint8_t>();
  const float lo = static_cast<float>(lo_d), hi = static_cast<float>(hi_d);
  const int64_t isa = g_isa;
  const int64_t units = for_units(n, [&](int64_t u0, int64_t u1) {
#ifdef HARNESS_X86
    if (isa != kScalar) {
      with_interval(op, closed_lo, closed_hi, [&](auto op_c, auto plo, auto phi) {
        if (isa == kAvx512) avx512::gate_forward<decltype(op_c)::value, decltype(plo)::value, decltype(phi)::value>(px, py, po, u0, u1, lo, hi);
        else avx2::gate_forward<decltype(op_c)::value, decltype(plo)::value, decltype(phi)::value>(px, py, po, u0, u1, lo, hi);
      });
      return;
    }
#endif
    gate_forward_scalar(px, py, po, kUnit * u0, kUnit * u1, op, lo, hi, closed_lo, closed_hi);
  });
  gate_forward_scalar(px, py, po, kUnit * units, n, op, lo, hi, closed_lo, closed_hi);
  return {y, out};
}

torch::Tensor gate_mul(torch::Tensor grad, torch::Tensor packed, double lo_level_d, double hi_level_d) {
  check_float_input(grad, "gate_mul");
  TORCH_CHECK(packed.scalar_type() == torch::kUInt8 && packed.device().is_cpu(), "gate_mul needs packed uint8 CPU bits");
  packed = packed.contiguous();
  const int64_t n = grad.numel();
  TORCH_CHECK(packed.numel() >= (n + 7) / 8, "packed bits are too short for the gradient");
  grad = grad.contiguous();
  auto out = torch::empty_like(grad);
  const float* pg = grad.data_ptr<float>();
  const uint8_t* pb = packed.data_ptr<uint8_t>();
  float* po = out.data_ptr<float>();
  const float lo = static_cast<float>(lo_level_d), hi = static_cast<float>(hi_level_d);
  const int64_t isa = g_isa;
  const int64_t units = for_units(n, [&](int64_t u0, int64_t u1) {
#ifdef HARNESS_X86
    if (isa != kScalar) {
      with_gate_kind(gate_kind(lo, hi), [&](auto kind) {
        if (isa == kAvx512) avx512::gate_mul<decltype(kind)::value>(pg, pb, po, u0, u1, lo, hi);
        else avx2::gate_mul<decltype(kind)::value>(pg, pb, po, u0, u1, lo, hi);
      });
      return;
    }
#endif
    gate_mul_scalar(pg, pb, po, kUnit * u0, kUnit * u1, lo, hi);
  });
  gate_mul_scalar(pg, pb, po, kUnit * units, n, lo, hi);
  return out;
}

// grad * gate * u_i with u_i = hash_uniform(i; key_a, key_b); `packed` empty: no gate.
torch::Tensor jam_mul(torch::Tensor grad, torch::Tensor packed, int64_t key_a, int64_t key_b) {
  check_float_input(grad, "jam_mul");
  const int64_t n = grad.numel();
  TORCH_CHECK(n < (int64_t(1) << 32), "jam_mul: at most 2^32 elements per call");
  const bool gated = packed.numel() > 0;
  TORCH_CHECK(!gated || (packed.scalar_type() == torch::kUInt8 && packed.device().is_cpu() && packed.numel() >= (n + 7) / 8),
              "jam_mul: the gate must be packed uint8 CPU bits, at least ceil(n/8) bytes");
  if (gated) packed = packed.contiguous();
  grad = grad.contiguous();
  auto out = torch::empty_like(grad);
  const float* pg = grad.data_ptr<float>();
  const uint8_t* pb = gated ? packed.data_ptr<uint8_t>() : nullptr;
  float* po = out.data_ptr<float>();
  const uint32_t ka = static_cast<uint32_t>(key_a), kb = static_cast<uint32_t>(key_b);
  const int64_t isa = g_isa;
  const int64_t units = for_units(n, [&](int64_t u0, int64_t u1) {
#ifdef HARNESS_X86
    if (isa == kAvx512) {
      gated ? avx512::jam_mul<true>(pg, pb, po, u0, u1, ka, kb) : avx512::jam_mul<false>(pg, pb, po, u0, u1, ka, kb);
      return;
    }
    if (isa == kAvx2) {
      gated ? avx2::jam_mul<true>(pg, pb, po, u0, u1, ka, kb) : avx2::jam_mul<false>(pg, pb, po, u0, u1, ka, kb);
      return;
    }
#endif
    jam_mul_scalar(pg, pb, po, kUnit * u0, kUnit * u1, ka, kb);
  });
  jam_mul_scalar(pg, pb, po, kUnit * units, n, ka, kb);
  return out;
}

// code(x) = #{borders < x} (borders sorted, fewer than 256), written as `bits` bit planes of
// ceil(n/8) bytes each; op 1 / 2 also writes y = relu(x) / step(x) in the same pass.
std::tuple<torch::Tensor, torch::Tensor> encode_codes(torch::Tensor x, torch::Tensor borders, int64_t bits, int64_t op) {
  check_float_input(x, "encode_codes");
  TORCH_CHECK(borders.scalar_type() == torch::kFloat32, "encode_codes: float32 borders");
  borders = borders.contiguous();
  TORCH_CHECK(bits >= 1 && bits <= 8, "encode_codes: bits in 1..8");
  TORCH_CHECK(op >= 0 && op <= 2, "encode_codes: op must be 0 (none), 1 (relu) or 2 (step)");
  TORCH_CHECK(borders.device().is_cpu() && borders.numel() <= (int64_t(1) << bits) - 1,
              "encode_codes: at most 2^bits - 1 CPU borders, got ", borders.numel(), " for bits=", bits);
  if (borders.numel() > 15 && borders.numel() < (int64_t(1) << bits) - 1) {
    // The SIMD bodies count compares for up to 15 borders and binary-search a full set of
    // 2^bits - 1 beyond that: pad with +inf (x > inf never holds, so no code changes).
    borders = torch::cat({borders, torch::full({(int64_t(1) << bits) - 1 - borders.numel()}, std::numeric_limits<float>::infinity(), borders.options())});
  }
  const int64_t n = x.numel(), stride = (n + 7) / 8, nb = borders.numel();
  auto out = torch::empty({bits * stride}, x.options().dtype(torch::kUInt8));
  x = x.contiguous();
  auto y = op ? torch::empty_like(x) : torch::empty({0}, x.options());
  const float* px = x.data_ptr<float>();
  const float* pb = borders.data_ptr<float>();
  float* py = op ? y.data_ptr<float>() : nullptr;
  uint8_t* po = out.data_ptr<uint8_t>();
  const int64_t isa = g_isa;
  const int64_t units = for_units(n, [&](int64_t u0, int64_t u1) {
#ifdef HARNESS_X86
    if (isa == kAvx512) {
      if (op == 0) avx512::encode<0>(px, py, po, u0, u1, stride, pb, nb, bits);
      else if (op == 1) avx512::encode<1>(px, py, po, u0, u1, stride, pb, nb, bits);
      else avx512::encode<2>(px, py, po, u0, u1, stride, pb, nb, bits);
      return;
    }
    if (isa == kAvx2) {
      avx2::encode(px, py, po, u0, u1, stride, op, pb, nb, bits);
      return;
    }
#endif
    encode_scalar(px, py, po, kUnit * u0, kUnit * u1, stride, op, pb, nb, bits);
  });
  encode_scalar(px, py, po, kUnit * units, n, stride, op, pb, nb, bits);
  return {y, out};
}

// grad * levels[code] with codes read from the `bits` planes written by encode_codes.
torch::Tensor decode_mul(torch::Tensor grad, torch::Tensor packed, torch::Tensor levels, int64_t bits) {
  check_float_input(grad, "decode_mul");
  TORCH_CHECK(bits >= 1 && bits <= 8, "decode_mul: bits in 1..8");
  TORCH_CHECK(levels.scalar_type() == torch::kFloat32 && levels.device().is_cpu() && levels.numel() >= (int64_t(1) << bits),
              "decode_mul: float32 CPU levels, 2^bits of them");
  levels = levels.contiguous();
  const int64_t n = grad.numel(), stride = (n + 7) / 8;
  TORCH_CHECK(packed.scalar_type() == torch::kUInt8 && packed.device().is_cpu() && packed.numel() >= bits * stride,
              "decode_mul: packed uint8 CPU planes, bits * ceil(n/8) bytes");
  packed = packed.contiguous();
  grad = grad.contiguous();
  auto out = torch::empty_like(grad);
  const float* pg = grad.data_ptr<float>();
  const uint8_t* pp = packed.data_ptr<uint8_t>();
  const float* pl = levels.data_ptr<float>();
  const int64_t nlevels = levels.numel();
  float* po = out.data_ptr<float>();
  const int64_t isa = g_isa;
  const int64_t units = for_units(n, [&](int64_t u0, int64_t u1) {
#ifdef HARNESS_X86
    if (isa == kAvx512) {
      avx512::decode(pg, pp, pl, nlevels, po, u0, u1, stride, bits);
      return;
    }
    if (isa == kAvx2) {
      avx2::decode(pg, pp, pl, nlevels, po, u0, u1, stride, bits);
      return;
    }
#endif
    decode_scalar(pg, pp, pl, po, kUnit * u0, kUnit * u1, stride, bits);
  });
  decode_scalar(pg, pp, pl, po, kUnit * units, n, stride, bits);
  return out;
}

// The instruction set the kernels use: 0 scalar, 1 avx2, 2 avx512. `set_isa` caps it at what
// the CPU supports and returns the level now in use.
int64_t isa() { return g_isa; }
int64_t best_isa() { return kBestIsa; }
int64_t set_isa(int64_t level) {
  g_isa = std::max<int64_t>(kScalar, std::min(level, kBestIsa));
  return g_isa;
}

// gate_pair: the whole eager pair for a gate rule with a fused forward, as a C++ autograd
// function: y = relu/step(x) with the packed gate saved, dL/dx = dL/dy * (bit ? hi : lo).
// The same computation as pair.py's _PairFunction with GateRule (tests compare them); it only
// skips the Python autograd.Function machinery: fwd+bwd of a 64-element pair took 40 us through
// it and 31 us here (native ReLU: 25 us), which is what a small model's activations cost.
class GatePairFunction : public torch::autograd::Function<GatePairFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t op, double lo,
                               double hi, bool closed_lo, bool closed_hi, double level_lo, double level_hi) {
    auto [y, packed] = gate_forward(x, op, lo, hi, closed_lo, closed_hi);
    ctx->save_for_backward({packed});
    ctx->saved_data["level_lo"] = level_lo;
    ctx->saved_data["level_hi"] = level_hi;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const double lo = ctx->saved_data["level_lo"].toDouble(), hi = ctx->saved_data["level_hi"].toDouble();
    torch::Tensor grad;
    if (grads[0].requires_grad()) {
      // create_graph=True (double backward): a product autograd can differentiate in the
      // upstream gradient; the kernel alone would return a result without history.
      grad = grads[0] * gate_mul(torch::ones_like(grads[0]), saved[0], lo, hi);
    } else {
      grad = gate_mul(grads[0], saved[0], lo, hi);
    }
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor gate_pair(const torch::Tensor& x, int64_t op, double lo, double hi, bool closed_lo, bool closed_hi,
                        double level_lo, double level_hi) {
  TORCH_CHECK(op == 1 || op == 2, "gate_pair: op must be 1 (relu) or 2 (step)");
  return GatePairFunction::apply(x, op, lo, hi, closed_lo, closed_hi, level_lo, level_hi);
}

// The same kernels as dispatcher ops, for torch.compile'd graphs: Inductor calls them straight
// from its generated code, without the ~45 us per call of a Python custom op (fwd+bwd of a
// compiled 64-element pair: 218 us with two such calls, 129 us with these ops). Only graphs traced with float32 CPU inputs use them (see
// packing.py); fake-tensor implementations are registered from Python (kernels.load).
torch::Tensor jam_mul_keys(torch::Tensor grad, torch::Tensor packed, torch::Tensor keys) {
  TORCH_CHECK(keys.numel() == 2 && keys.scalar_type() == torch::kInt64, "jam_mul: keys must be 2 int64 values");
  auto k = keys.contiguous().cpu();
  return jam_mul(grad, packed, k.data_ptr<int64_t>()[0] & 0xFFFFFFFF, k.data_ptr<int64_t>()[1] & 0xFFFFFFFF);
}

TORCH_LIBRARY(harness_kernels, m) {
  m.def("gate_forward(Tensor x, int op, float lo, float hi, bool closed_lo, bool closed_hi) -> (Tensor, Tensor)");
  m.def("gate_mul(Tensor grad, Tensor packed, float lo, float hi) -> Tensor");
  m.def("jam_mul(Tensor grad, Tensor packed, Tensor keys) -> Tensor");
  m.def("encode_codes(Tensor x, Tensor borders, int bits, int op) -> (Tensor, Tensor)");
  m.def("decode_mul(Tensor grad, Tensor packed, Tensor levels, int bits) -> Tensor");
}

TORCH_LIBRARY_IMPL(harness_kernels, CPU, m) {
  m.impl("gate_forward", &gate_forward);
  m.impl("gate_mul", &gate_mul);
  m.impl("jam_mul", &jam_mul_keys);
  m.impl("encode_codes", &encode_codes);
  m.impl("decode_mul", &decode_mul);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gate_forward", &gate_forward, "packed 1[x in interval], plus y = relu(x) or step(x) (op 1/2), in one pass");
  m.def("gate_mul", &gate_mul, "grad * (bit ? hi : lo)");
  m.def("gate_pair", &gate_pair, "relu/step forward with a 1-bit gate backward, as one C++ autograd function");
  m.def("jam_mul", &jam_mul, "grad * gate * U(0,1) from a counter-based hash");
  m.def("encode_codes", &encode_codes, "b-bit codes of x against sorted borders, packed in bit planes (+ relu/step y)");
  m.def("decode_mul", &decode_mul, "grad * levels[code] from packed bit planes");
  m.def("isa", &isa, "instruction set in use: 0 scalar, 1 avx2, 2 avx512");
  m.def("best_isa", &best_isa, "best instruction set this CPU supports");
  m.def("set_isa", &set_isa, "use at most this instruction set; returns the one in use");
}

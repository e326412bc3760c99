// Fused CPU kernels for 1-bit gate rules (float32, contiguous).
//
// pack_interval: one pass over x: compare 8 floats against [lo, hi], movemask -> one byte.
//   Layout: element i -> byte i / 8, bit i % 8 (the same as harness/activations/packing.py).
// gate_mul: one pass over grad: broadcast each byte to 8 lane masks, select grad * hi or
//   grad * lo. Reads 4n + n/8 bytes and writes 4n: less than native ReLU's backward (12n).
//
// The Python reference (packing.pack_bits_reference) is the specification; tests check these
// kernels against it bit for bit. Without AVX2 the scalar loops below do the same work.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdint>
#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kGrainBytes = 8192;  // bytes of packed output per parallel task

inline bool in_interval(float v, float lo, float hi, bool closed_lo, bool closed_hi) {
  const bool above = closed_lo ? v >= lo : v > lo;
  const bool below = closed_hi ? v <= hi : v < hi;
  return above && below;
}

#ifdef __AVX2__
// Bit j of the result = 1[lane j of v in the interval] (ordered compares: NaN is outside).
inline uint8_t interval_bits(__m256 v, __m256 vlo, __m256 vhi, bool closed_lo, bool closed_hi) {
  const __m256 m_lo = closed_lo ? _mm256_cmp_ps(v, vlo, _CMP_GE_OQ) : _mm256_cmp_ps(v, vlo, _CMP_GT_OQ);
  const __m256 m_hi = closed_hi ? _mm256_cmp_ps(v, vhi, _CMP_LE_OQ) : _mm256_cmp_ps(v, vhi, _CMP_LT_OQ);
  return static_cast<uint8_t>(_mm256_movemask_ps(_mm256_and_ps(m_lo, m_hi)));
}
#endif

// y = f(x) for the fused forwards: op 1 = relu (NaN and -0.0 kept, as torch.relu and the AVX
// max(0, v) do), op 2 = step (1[x > 0], NaN -> 0).
inline float forward_scalar(int64_t op, float v) {
  return op == 1 ? (v > 0.0f || v != v || v == 0.0f ? v : 0.0f) : (v > 0.0f ? 1.0f : 0.0f);
}

#ifdef __AVX2__
inline __m256 forward_avx(int64_t op, __m256 v) {
  const __m256 zero = _mm256_setzero_ps();
  // max_ps returns its second operand when either is NaN: (zero, v) keeps NaN like torch.relu.
  return op == 1 ? _mm256_max_ps(zero, v) : _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ), _mm256_set1_ps(1.0f));
}

// Lane j all ones where bit j of `byte` is set: the 1-bit gate of 8 elements as a mask.
inline __m256 bit_mask(uint8_t byte) {
  const __m256i lane_bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i sel = _mm256_and_si256(_mm256_set1_epi32(byte), lane_bits);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(sel, lane_bits));
}
#endif

// Select semantics: outside the gate with level 0 the result is 0 even for NaN/inf gradients.
inline float gate_level(float g, bool on, float lo, float hi) {
  return on ? g * hi : (lo == 0.0f ? 0.0f : g * lo);
}

}  // namespace

torch::Tensor pack_interval(torch::Tensor x, double lo_d, double hi_d, bool closed_lo, bool closed_hi) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.device().is_cpu(),
              "pack_interval needs a contiguous float32 CPU tensor");
  const int64_t n = x.numel();
  auto out = torch::empty({(n + 7) / 8}, x.options().dtype(torch::kUInt8));
  const float* px = x.data_ptr<float>();
  uint8_t* po = out.data_ptr<uint8_t>();
  const float lo = static_cast<float>(lo_d), hi = static_cast<float>(hi_d);
  const int64_t full = n / 8;
  at::parallel_for(0, full, kGrainBytes, [&](int64_t b0, int64_t b1) {
#ifdef __AVX2__
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int64_t b = b0; b < b1; ++b) {
      po[b] = interval_bits(_mm256_loadu_ps(px + 8 * b), vlo, vhi, closed_lo, closed_hi);
    }
#else
    for (int64_t b = b0; b < b1; ++b) {
      uint8_t byte = 0;
      for (int j = 0; j < 8; ++j) byte |= static_cast<uint8_t>(in_interval(px[8 * b + j], lo, hi, closed_lo, closed_hi)) << j;
      po[b] = byte;
    }
#endif
  });
  if (full * 8 < n) {
    uint8_t byte = 0;
    for (int64_t i = full * 8; i < n; ++i) byte |= static_cast<uint8_t>(in_interval(px[i], lo, hi, closed_lo, closed_hi)) << (i - full * 8);
    po[full] = byte;
  }
  return out;
}

// forward_pack: y = f(x) and the packed gate in one pass over x, for the forwards whose
// 1-bit pairs matter most: op 1 = relu (y = max(0, x), NaN kept), op 2 = step (y = 1[x > 0]).
std::vector<torch::Tensor> forward_pack(torch::Tensor x, int64_t op, double lo_d, double hi_d, bool closed_lo, bool closed_hi) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.device().is_cpu(),
              "forward_pack needs a contiguous float32 CPU tensor");
  TORCH_CHECK(op == 1 || op == 2, "forward_pack: op must be 1 (relu) or 2 (step)");
  const int64_t n = x.numel();
  auto y = torch::empty_like(x);
  auto out = torch::empty({(n + 7) / 8}, x.options().dtype(torch::kUInt8));
  const float* px = x.data_ptr<float>();
  float* py = y.data_ptr<float>();
  uint8_t* po = out.data_ptr<uint8_t>();
  const float lo = static_cast<float>(lo_d), hi = static_cast<float>(hi_d);
  const int64_t full = n / 8;
  at::parallel_for(0, full, kGrainBytes, [&](int64_t b0, int64_t b1) {
#ifdef __AVX2__
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int64_t b = b0; b < b1; ++b) {
      const __m256 v = _mm256_loadu_ps(px + 8 * b);
      _mm256_storeu_ps(py + 8 * b, forward_avx(op, v));
      po[b] = interval_bits(v, vlo, vhi, closed_lo, closed_hi);
    }
#else
    for (int64_t b = b0; b < b1; ++b) {
      uint8_t byte = 0;
      for (int j = 0; j < 8; ++j) {
        const float v = px[8 * b + j];
        py[8 * b + j] = forward_scalar(op, v);
        byte |= static_cast<uint8_t>(in_interval(v, lo, hi, closed_lo, closed_hi)) << j;
      }
      po[b] = byte;
    }
#endif
  });
  if (full * 8 < n) {
    uint8_t byte = 0;
    for (int64_t i = full * 8; i < n; ++i) {
      py[i] = forward_scalar(op, px[i]);
      byte |= static_cast<uint8_t>(in_interval(px[i], lo, hi, closed_lo, closed_hi)) << (i - full * 8);
    }
    po[full] = byte;
  }
  return {y, out};
}

torch::Tensor gate_mul(torch::Tensor grad, torch::Tensor packed, double lo_level_d, double hi_level_d) {
  TORCH_CHECK(grad.scalar_type() == torch::kFloat32 && grad.is_contiguous() && grad.device().is_cpu(),
              "gate_mul needs a contiguous float32 CPU gradient");
  TORCH_CHECK(packed.scalar_type() == torch::kUInt8 && packed.is_contiguous(), "gate_mul needs packed uint8 bits");
  const int64_t n = grad.numel();
  TORCH_CHECK(packed.numel() >= (n + 7) / 8, "packed bits are too short for the gradient");
  auto out = torch::empty_like(grad);
  const float* pg = grad.data_ptr<float>();
  const uint8_t* pb = packed.data_ptr<uint8_t>();
  float* po = out.data_ptr<float>();
  const float lo = static_cast<float>(lo_level_d), hi = static_cast<float>(hi_level_d);
  const int64_t full = n / 8;
  at::parallel_for(0, full, kGrainBytes, [&](int64_t b0, int64_t b1) {
#ifdef __AVX2__
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int64_t b = b0; b < b1; ++b) {
      const __m256 mask = bit_mask(pb[b]);
      const __m256 g = _mm256_loadu_ps(pg + 8 * b);
      // lo == 0: select (AND), so a NaN/inf gradient outside the gate becomes 0 as in native
      // ReLU's backward; hi == 1 as well (every plain gate) needs nothing else.
      const __m256 r = lo == 0.0f ? _mm256_and_ps(hi == 1.0f ? g : _mm256_mul_ps(g, vhi), mask)
                                  : _mm256_mul_ps(g, _mm256_blendv_ps(vlo, vhi, mask));
      _mm256_storeu_ps(po + 8 * b, r);
    }
#else
    for (int64_t b = b0; b < b1; ++b)
      for (int j = 0; j < 8; ++j) po[8 * b + j] = gate_level(pg[8 * b + j], (pb[b] >> j) & 1, lo, hi);
#endif
  });
  for (int64_t i = full * 8; i < n; ++i) po[i] = gate_level(pg[i], (pb[i / 8] >> (i % 8)) & 1, lo, hi);
  return out;
}

// jam_mul: grad * gate * u with u ~ U(0,1) from a counter-based hash (24 bits), for jamming rules.
// u_i = (mix(mix(i + key_a) ^ key_b) >> 8) * 2^-24 with mix = murmur3's 32-bit finalizer; the
// Python reference (packing.hash_uniform_reference) computes the same numbers with tensor ops.
// `packed` empty: no gate (full jamming).
namespace {
inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
  return h;
}
inline float hash_uniform(uint32_t i, uint32_t ka, uint32_t kb) {
  return static_cast<float>(mix32(mix32(i + ka) ^ kb) >> 8) * (1.0f / 16777216.0f);
}
#ifdef __AVX2__
inline __m256i mix32_avx(__m256i h) {
  h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
  h = _mm256_mullo_epi32(h, _mm256_set1_epi32(static_cast<int>(0x85ebca6bu)));
  h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 13));
  h = _mm256_mullo_epi32(h, _mm256_set1_epi32(static_cast<int>(0xc2b2ae35u)));
  return _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
}
#endif
}  // namespace

torch::Tensor jam_mul(torch::Tensor grad, torch::Tensor packed, int64_t key_a, int64_t key_b) {
  TORCH_CHECK(grad.scalar_type() == torch::kFloat32 && grad.is_contiguous() && grad.device().is_cpu(),
              "jam_mul needs a contiguous float32 CPU gradient");
  const int64_t n = grad.numel();
  TORCH_CHECK(n < (int64_t(1) << 32), "jam_mul: at most 2^32 elements per call");
  const bool gated = packed.numel() > 0;
  TORCH_CHECK(!gated || (packed.scalar_type() == torch::kUInt8 && packed.numel() >= (n + 7) / 8), "jam_mul: bad packed gate");
  auto out = torch::empty_like(grad);
  const float* pg = grad.data_ptr<float>();
  const uint8_t* pb = gated ? packed.data_ptr<uint8_t>() : nullptr;
  float* po = out.data_ptr<float>();
  const uint32_t ka = static_cast<uint32_t>(key_a), kb = static_cast<uint32_t>(key_b);
  const int64_t full = n / 8;
  at::parallel_for(0, full, kGrainBytes, [&](int64_t b0, int64_t b1) {
#ifdef __AVX2__
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i vka = _mm256_set1_epi32(static_cast<int>(ka)), vkb = _mm256_set1_epi32(static_cast<int>(kb));
    const __m256 scale = _mm256_set1_ps(1.0f / 16777216.0f);
    for (int64_t b = b0; b < b1; ++b) {
      const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(8 * b))), lane);
      const __m256i h = mix32_avx(_mm256_xor_si256(mix32_avx(_mm256_add_epi32(idx, vka)), vkb));
      const __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8)), scale);
      __m256 g = _mm256_mul_ps(_mm256_loadu_ps(pg + 8 * b), u);
      if (gated) {
        g = _mm256_and_ps(g, bit_mask(pb[b]));
      }
      _mm256_storeu_ps(po + 8 * b, g);
    }
#else
    for (int64_t i = 8 * b0; i < 8 * b1; ++i) {
      const bool on = !gated || ((pb[i / 8] >> (i % 8)) & 1);
      po[i] = on ? pg[i] * hash_uniform(static_cast<uint32_t>(i), ka, kb) : 0.0f;
    }
#endif
  });
  for (int64_t i = full * 8; i < n; ++i) {
    const bool on = !gated || ((pb[i / 8] >> (i % 8)) & 1);
    po[i] = on ? pg[i] * hash_uniform(static_cast<uint32_t>(i), ka, kb) : 0.0f;
  }
  return out;
}

// encode_codes: code(x) = #{borders < x} (borders sorted, at most 255), written as `bits` bit
// planes of ceil(n/8) bytes each (plane p holds bit p of every code), in one pass over x.
// op 1 / 2 also writes y = relu(x) / step(x) in the same pass (as forward_pack does for gates).
std::vector<torch::Tensor> encode_codes(torch::Tensor x, torch::Tensor borders, int64_t bits, int64_t op) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.device().is_cpu(), "encode_codes needs contiguous float32 CPU x");
  TORCH_CHECK(borders.scalar_type() == torch::kFloat32 && borders.is_contiguous() && borders.numel() < 256, "encode_codes: float32 borders, < 256");
  TORCH_CHECK(bits >= 1 && bits <= 8, "encode_codes: bits in 1..8");
  TORCH_CHECK(op >= 0 && op <= 2, "encode_codes: op must be 0 (none), 1 (relu) or 2 (step)");
  const int64_t n = x.numel(), stride = (n + 7) / 8, nb = borders.numel();
  auto out = torch::empty({bits * stride}, x.options().dtype(torch::kUInt8));
  auto y = op ? torch::empty_like(x) : torch::Tensor();
  const float* px = x.data_ptr<float>();
  const float* pb = borders.data_ptr<float>();
  float* py = op ? y.data_ptr<float>() : nullptr;
  uint8_t* po = out.data_ptr<uint8_t>();
  auto scalar_group = [&](int64_t b) {  // groups that run past n (the tail) or without AVX2
    int codes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 8 * b, j = 0; i < std::min<int64_t>(8 * b + 8, n); ++i, ++j) {
      for (int64_t k = 0; k < nb; ++k) codes[j] += px[i] > pb[k];
      if (op) py[i] = forward_scalar(op, px[i]);
    }
    for (int64_t p = 0; p < bits; ++p) {
      uint8_t byte = 0;
      for (int j = 0; j < 8; ++j) byte |= static_cast<uint8_t>((codes[j] >> p) & 1) << j;
      po[p * stride + b] = byte;
    }
  };
  const int64_t full = n / 8;
  at::parallel_for(0, full, kGrainBytes, [&](int64_t b0, int64_t b1) {
#ifdef __AVX2__
    const bool search = nb == (int64_t(1) << bits) - 1 && nb > 15;
    __m256 vb[15];
    for (int64_t k = 0; k < std::min<int64_t>(nb, 15); ++k) vb[k] = _mm256_set1_ps(pb[k]);
    for (int64_t b = b0; b < b1; ++b) {
      const __m256 v = _mm256_loadu_ps(px + 8 * b);
      if (op) _mm256_storeu_ps(py + 8 * b, forward_avx(op, v));
      __m256i c = _mm256_setzero_si256();
      if (search) {
        // Branchless binary search over the 2^bits - 1 sorted borders: `bits` gathers.
        for (int64_t step = int64_t(1) << (bits - 1); step > 0; step >>= 1) {
          const __m256i cand = _mm256_add_epi32(c, _mm256_set1_epi32(static_cast<int>(step)));
          const __m256 border = _mm256_i32gather_ps(pb - 1, cand, 4);  // borders[cand - 1]
          c = _mm256_blendv_epi8(c, cand, _mm256_castps_si256(_mm256_cmp_ps(v, border, _CMP_GT_OQ)));
        }
      } else {
        for (int64_t k = 0; k < nb; ++k)  // compare gives -1 where v > border: subtract it
          c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(v, vb[k], _CMP_GT_OQ)));
      }
      for (int64_t p = 0; p < bits; ++p)  // bit p of each code -> sign bit -> movemask
        po[p * stride + b] = static_cast<uint8_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(c, static_cast<int>(31 - p)))));
    }
#else
    for (int64_t b = b0; b < b1; ++b) scalar_group(b);
#endif
  });
  if (full < stride) scalar_group(full);
  return {y, out};
}

// decode_mul: grad * levels[code] with codes read from `bits` planes, in one pass.
torch::Tensor decode_mul(torch::Tensor grad, torch::Tensor packed, torch::Tensor levels, int64_t bits) {
  TORCH_CHECK(grad.scalar_type() == torch::kFloat32 && grad.is_contiguous() && grad.device().is_cpu(), "decode_mul needs contiguous float32 CPU grad");
  TORCH_CHECK(levels.scalar_type() == torch::kFloat32 && levels.is_contiguous() && levels.numel() >= (int64_t(1) << bits), "decode_mul: float32 levels, 2^bits of them");
  const int64_t n = grad.numel(), stride = (n + 7) / 8;
  TORCH_CHECK(packed.scalar_type() == torch::kUInt8 && packed.numel() >= bits * stride, "decode_mul: packed planes too short");
  auto out = torch::empty_like(grad);
  const float* pg = grad.data_ptr<float>();
  const uint8_t* pp = packed.data_ptr<uint8_t>();
  const float* pl = levels.data_ptr<float>();
  float* po = out.data_ptr<float>();
  at::parallel_for(0, stride, kGrainBytes, [&](int64_t b0, int64_t b1) {
#ifdef __AVX2__
    float table[16] = {0};
    for (int64_t k = 0; k < std::min<int64_t>(16, levels.numel()); ++k) table[k] = pl[k];
    const __m256 lv_lo = _mm256_loadu_ps(table), lv_hi = _mm256_loadu_ps(table + 8);
#endif
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t base = 8 * b, m = std::min<int64_t>(8, n - base);
#ifdef __AVX2__
      if (m == 8) {
        __m256i code = _mm256_setzero_si256();
        for (int64_t p = 0; p < bits; ++p) {
          const __m256i bit = _mm256_srli_epi32(_mm256_castps_si256(bit_mask(pp[p * stride + b])), 31);  // 0 or 1
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
        _mm256_storeu_ps(po + base, _mm256_mul_ps(_mm256_loadu_ps(pg + base), lv));
        continue;
      }
#endif
      for (int64_t j = 0; j < m; ++j) {
        int c = 0;
        for (int64_t p = 0; p < bits; ++p) c |= ((pp[p * stride + b] >> j) & 1) << p;
        po[base + j] = pg[base + j] * pl[c];
      }
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("encode_codes", &encode_codes, "b-bit codes of x against sorted borders, packed in bit planes (+ relu/step y)");
  m.def("decode_mul", &decode_mul, "grad * levels[code] from packed bit planes");
  m.def("jam_mul", &jam_mul, "grad * gate * U(0,1) from a counter-based hash");
  m.def("pack_interval", &pack_interval, "Pack 1[x in interval] into bits (float32, contiguous)");
  m.def("forward_pack", &forward_pack, "y = relu(x) or step(x), plus the packed interval gate, in one pass");
  m.def("gate_mul", &gate_mul, "grad * (bit ? hi : lo) (float32, contiguous)");
}

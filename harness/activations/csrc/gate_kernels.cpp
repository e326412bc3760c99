// Fused CPU kernels for the state that gate, code and jamming rules save (float32, contiguous).
//
// gate_forward: one pass over x: y = relu(x) / step(x) (or no y) and the packed gate 1[x in I].
// gate_mul:     one pass over grad: grad * (bit ? hi : lo). Reads 4n + n/8 bytes, writes 4n:
//               less than native ReLU's backward (12n).
// jam_mul:      grad * gate * u, u ~ U(0,1) from a counter-based hash (no random tensor pass).
// encode_codes / decode_mul: b-bit codes #{borders < x} in b bit planes, and grad * levels[code].
//
// Bit layout (shared with harness/activations/packing.py): element i is bit i % 8 of byte i / 8
// of each bit plane (little bit order); a plane holds ceil(n / 8) bytes. The Python references
// are the specification; tests check every instruction set against them bit for bit.
//
// Files:
//   vec_traits.h   Scalar, Avx2 (8 lanes) and Avx512 (16 lanes): load, compare to a mask, mask
//                  to packed bits and back, select/blend/multiply, store, ...
//   gate_bodies.h  each kernel's body, written once over those traits; included below once per
//                  instruction set, in namespaces scalar, avx2 and avx512.
//   this file      argument checks, the run-time dispatch (run_bodies) and the torch bindings.
// One build holds all three sets; the best one the CPU supports is used (`set_isa` lets tests
// and benchmarks force a lower one). Work is split into units of 64 elements, one 64-bit word of
// every bit plane, so parallel tasks never share a byte; the SIMD bodies get whole units only
// (4 or 8 vectors each, unrolled), the Scalar ones also the tensor's last n % 64 elements.
#include <torch/extension.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "vec_traits.h"

namespace {
using namespace gate_simd;

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

// Byte of a plane that holds element i's bit. A shift: i is never negative, and i / 8 on a signed
// integer costs three more instructions per unit.
inline int64_t plane_byte(int64_t i) { return i >> 3; }

// One unit's bits of a plane as a word (element j of the unit in bit j). A whole unit is one
// 8-byte access; the last, short unit touches only its ceil(count / 8) bytes.
inline uint64_t load_bits(const uint8_t* p, int64_t count) {
  uint64_t word = 0;
  if (count == kUnit && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
    std::memcpy(&word, p, 8);
  } else {
    for (int64_t k = 0; 8 * k < count; ++k) word |= static_cast<uint64_t>(p[k]) << (8 * k);
  }
  return word;
}

inline void store_bits(uint8_t* p, uint64_t word, int64_t count) {
  if (count == kUnit && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
    std::memcpy(p, &word, 8);
  } else {
    for (int64_t k = 0; 8 * k < count; ++k) p[k] = static_cast<uint8_t>(word >> (8 * k));
  }
}

// What each body reads and writes (pointers to element 0; planes `stride` bytes apart).
struct GateForwardArgs { const float* px; float* py; uint8_t* po; float lo, hi; };
struct GateMulArgs { const float* pg; const uint8_t* pb; float* po; float lo, hi; };
struct JamMulArgs { const float* pg; const uint8_t* pb; float* po; uint32_t ka, kb; };
struct EncodeArgs { const float* px; float* py; uint8_t* po; int64_t stride; const float* pb; int64_t nb, bits; };
// table16: the first 16 levels, zero-padded, for the in-register lookups.
struct DecodeMulArgs { const float* pg; const uint8_t* pp; const float* pl; float table16[16]; float* po; int64_t stride, bits; };

namespace scalar {
using V = Scalar;
#define HARNESS_TARGET
#include "gate_bodies.h"
}  // namespace scalar

#ifdef HARNESS_X86
namespace avx2 {
using V = Avx2;
#define HARNESS_TARGET HARNESS_AVX2
#include "gate_bodies.h"
}  // namespace avx2

namespace avx512 {
using V = Avx512;
#define HARNESS_TARGET HARNESS_AVX512
#include "gate_bodies.h"
}  // namespace avx512
#endif

// Calls f(bodies, i0, i1) over the n elements: whole units in parallel with the instruction set
// in use (read once per call, so a concurrent set_isa never splits one), then the last n % 64
// with the Scalar bodies. `bodies` is one of the namespaces' Bodies (gate_bodies.h).
template <class F>
void run_bodies(int64_t n, const F& f) {
  const int64_t isa = g_isa;
  const int64_t units = n / kUnit;
  if (units > 0) {
    at::parallel_for(0, units, kGrainUnits, [&](int64_t u0, int64_t u1) {
      const int64_t i0 = kUnit * u0, i1 = kUnit * u1;
#ifdef HARNESS_X86
      if (isa == kAvx512) return f(avx512::Bodies{}, i0, i1);
      if (isa == kAvx2) return f(avx2::Bodies{}, i0, i1);
#endif
      f(scalar::Bodies{}, i0, i1);
    });
  }
  if (kUnit * units < n) f(scalar::Bodies{}, kUnit * units, n);
}

// Calls f(std::integral_constant<int, value>{}) for a run-time value in [0, N): one
// instantiation of f per value (an op, a gate kind, a bit count).
template <int N, class F>
void with_constant(int64_t value, F&& f) {
  [&]<int... K>(std::integer_sequence<int, K...>) {
    ((value == K && (f(std::integral_constant<int, K>{}), true)) || ...);
  }(std::make_integer_sequence<int, N>{});
}

// Calls f(op, lo_predicate, hi_predicate) with compile-time constants, so the bodies get
// immediate compare predicates and no branches in their inner loops.
template <class F>
void with_interval(int64_t op, bool closed_lo, bool closed_hi, F&& f) {
  using GE = std::integral_constant<int, kGE>;
  using GT = std::integral_constant<int, kGT>;
  using LE = std::integral_constant<int, kLE>;
  using LT = std::integral_constant<int, kLT>;
  auto ends = [&](auto op_c) {
    if (closed_lo) {
      if (closed_hi) f(op_c, GE{}, LE{}); else f(op_c, GE{}, LT{});
    } else {
      if (closed_hi) f(op_c, GT{}, LE{}); else f(op_c, GT{}, LT{});
    }
  };
  with_constant<3>(op, ends);
}

// Kind of gate levels: 0 = (0, 1) (a plain select), 1 = (0, hi), 2 = (lo, hi).
inline int gate_kind(float lo, float hi) { return lo != 0.0f ? 2 : (hi == 1.0f ? 0 : 1); }

void check_float_input(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.device().is_cpu(), what, " needs a float32 CPU tensor");
}

void check_op(int64_t op, const char* what) {
  TORCH_CHECK(op >= 0 && op <= 2, what, ": op must be 0 (none), 1 (relu) or 2 (step)");
}

// y for the fused forwards: like x for op 1 / 2, an empty tensor (no y) for op 0.
torch::Tensor forward_output(const torch::Tensor& x, int64_t op) {
  return op ? torch::empty_like(x) : torch::empty({0}, x.options());
}

}  // namespace

namespace {
// The pass itself: y (op 1 / 2; may be x itself: each vector is loaded before it is stored) and
// the packed gate of a contiguous x.
torch::Tensor gate_forward_into(const torch::Tensor& x, float* y, int64_t op, double lo_d, double hi_d, bool closed_lo,
                                bool closed_hi) {
  const int64_t n = x.numel();
  auto out = torch::empty({(n + 7) / 8}, x.options().dtype(torch::kUInt8));
  const GateForwardArgs a{x.data_ptr<float>(), y, out.data_ptr<uint8_t>(), static_cast<float>(lo_d), static_cast<float>(hi_d)};
  with_interval(op, closed_lo, closed_hi, [&](auto op_c, auto plo, auto phi) {
    using Op = decltype(op_c);
    using PLo = decltype(plo);
    using PHi = decltype(phi);
    run_bodies(n, [&](auto bodies, int64_t i0, int64_t i1) {
      decltype(bodies)::template gate_forward<Op::value, PLo::value, PHi::value>(a, i0, i1);
    });
  });
  return out;
}
}  // namespace

// Packed 1[x in [lo, hi]] (ends open or closed), and y = relu(x) (op 1) or step(x) (op 2) in
// the same pass; op 0 writes no y (an empty tensor is returned in its place).
std::tuple<torch::Tensor, torch::Tensor> gate_forward(torch::Tensor x, int64_t op, double lo_d, double hi_d, bool closed_lo, bool closed_hi) {
  check_float_input(x, "gate_forward");
  check_op(op, "gate_forward");
  x = x.contiguous();
  auto y = forward_output(x, op);
  auto packed = gate_forward_into(x, op ? y.data_ptr<float>() : nullptr, op, lo_d, hi_d, closed_lo, closed_hi);
  return {y, packed};
}

namespace {
// out = grad * (bit ? hi : lo) over a contiguous grad; out may be grad itself (each vector is
// loaded before it is stored).
void gate_mul_into(const torch::Tensor& grad, torch::Tensor packed, float* out, double lo_level_d, double hi_level_d) {
  TORCH_CHECK(packed.scalar_type() == torch::kUInt8 && packed.device().is_cpu(), "gate_mul needs packed uint8 CPU bits");
  packed = packed.contiguous();
  const int64_t n = grad.numel();
  TORCH_CHECK(packed.numel() >= (n + 7) / 8, "packed bits are too short for the gradient");
  const GateMulArgs a{grad.data_ptr<float>(), packed.data_ptr<uint8_t>(), out, static_cast<float>(lo_level_d),
                      static_cast<float>(hi_level_d)};
  with_constant<3>(gate_kind(a.lo, a.hi), [&](auto kind) {
    using Kind = decltype(kind);
    run_bodies(n, [&](auto bodies, int64_t i0, int64_t i1) { decltype(bodies)::template gate_mul<Kind::value>(a, i0, i1); });
  });
}
}  // namespace

torch::Tensor gate_mul(torch::Tensor grad, torch::Tensor packed, double lo_level_d, double hi_level_d) {
  check_float_input(grad, "gate_mul");
  grad = grad.contiguous();
  auto out = torch::empty_like(grad);
  gate_mul_into(grad, std::move(packed), out.data_ptr<float>(), lo_level_d, hi_level_d);
  return out;
}

// gate_mul over grad's own buffer, for graphs (Inductor reinplaces it where grad is dead, as it
// computes native ReLU's backward in place).
void gate_mul_inplace(torch::Tensor grad, torch::Tensor packed, double lo_level_d, double hi_level_d) {
  check_float_input(grad, "gate_mul_inplace");
  TORCH_CHECK(grad.is_contiguous(), "gate_mul_inplace needs a contiguous grad");
  gate_mul_into(grad, std::move(packed), grad.data_ptr<float>(), lo_level_d, hi_level_d);
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
  const JamMulArgs a{grad.data_ptr<float>(), gated ? packed.data_ptr<uint8_t>() : nullptr, out.data_ptr<float>(),
                     static_cast<uint32_t>(key_a), static_cast<uint32_t>(key_b)};
  run_bodies(n, [&](auto bodies, int64_t i0, int64_t i1) {
    using B = decltype(bodies);
    gated ? B::template jam_mul<true>(a, i0, i1) : B::template jam_mul<false>(a, i0, i1);
  });
  return out;
}

// code(x) = #{borders < x} (borders sorted, fewer than 256), written as `bits` bit planes of
// ceil(n/8) bytes each; op 1 / 2 also writes y = relu(x) / step(x) in the same pass.
std::tuple<torch::Tensor, torch::Tensor> encode_codes(torch::Tensor x, torch::Tensor borders, int64_t bits, int64_t op) {
  check_float_input(x, "encode_codes");
  TORCH_CHECK(borders.scalar_type() == torch::kFloat32, "encode_codes: float32 borders");
  borders = borders.contiguous();
  TORCH_CHECK(bits >= 1 && bits <= 8, "encode_codes: bits in 1..8");
  check_op(op, "encode_codes");
  TORCH_CHECK(borders.device().is_cpu() && borders.numel() <= (int64_t(1) << bits) - 1,
              "encode_codes: at most 2^bits - 1 CPU borders, got ", borders.numel(), " for bits=", bits);
  if (borders.numel() > 15 && borders.numel() < (int64_t(1) << bits) - 1) {
    // The bodies count compares for up to 15 borders and binary-search a full set of
    // 2^bits - 1 beyond that: pad with +inf (x > inf never holds, so no code changes).
    borders = torch::cat({borders, torch::full({(int64_t(1) << bits) - 1 - borders.numel()}, std::numeric_limits<float>::infinity(), borders.options())});
  }
  const int64_t n = x.numel(), stride = (n + 7) / 8;
  auto out = torch::empty({bits * stride}, x.options().dtype(torch::kUInt8));
  x = x.contiguous();
  auto y = forward_output(x, op);
  const EncodeArgs a{x.data_ptr<float>(), op ? y.data_ptr<float>() : nullptr, out.data_ptr<uint8_t>(), stride,
                     borders.data_ptr<float>(), borders.numel(), bits};
  with_constant<3>(op, [&](auto op_c) {
    using Op = decltype(op_c);
    run_bodies(n, [&](auto bodies, int64_t i0, int64_t i1) { decltype(bodies)::template encode<Op::value>(a, i0, i1); });
  });
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
  DecodeMulArgs a{grad.data_ptr<float>(), packed.data_ptr<uint8_t>(), levels.data_ptr<float>(), {}, out.data_ptr<float>(), stride, bits};
  std::copy_n(a.pl, std::min<int64_t>(16, levels.numel()), a.table16);
  with_constant<9>(bits, [&](auto bits_c) {
    using Bits = decltype(bits_c);
    if constexpr (Bits::value > 0) {  // bits >= 1 was checked above
      run_bodies(n, [&](auto bodies, int64_t i0, int64_t i1) { decltype(bodies)::template decode_mul<Bits::value>(a, i0, i1); });
    }
  });
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

// gate_pair: the whole eager pair for a gate rule with a fused forward, in C++: y = relu/step(x)
// with the packed gate saved, dL/dx = dL/dy * (bit ? hi : lo). The same computation as pair.py's
// _PairFunction with GateRule (tests compare them), without Python in either pass.
//
// The backward is a hand-written autograd Node, as torch's generated ops have (ReluBackward0),
// not a torch::autograd::Function: Function's generic machinery (an AutogradContext, a hash map
// of saved values, output wrapping, a variable list per call) cost ~2 us per fwd+bwd more than
// native ReLU on a 100x100 tensor, which is what a small model's step feels. A `GatePair` object
// holds one pair's arguments, so a call converts one tensor instead of eight arguments.
struct GatePairBackward : public torch::autograd::Node {
  torch::autograd::SavedVariable packed_;
  double level_lo_ = 0.0, level_hi_ = 1.0;

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    const torch::Tensor& g = grads[0];
    if (!g.defined()) return {torch::Tensor()};
    const torch::Tensor packed = packed_.unpack();  // raises after release (backward twice)
    if (g.requires_grad()) {
      // create_graph=True (double backward): a product autograd can differentiate in the
      // upstream gradient; the kernel alone would return a result without history.
      return {g * gate_mul(torch::ones_like(g), packed, level_lo_, level_hi_)};
    }
    return {gate_mul(g, packed, level_lo_, level_hi_)};
  }
  std::string name() const override { return "GatePairBackward"; }
  void release_variables() override {
    std::lock_guard<std::mutex> lock(mutex_);
    packed_.reset_data();
  }
};

struct GatePair {
  int64_t op;
  double lo, hi;
  bool closed_lo, closed_hi;
  double level_lo, level_hi;

  torch::Tensor operator()(const torch::Tensor& x) const {
    const bool needs_grad = torch::autograd::compute_requires_grad(x);
    torch::Tensor y, packed;
    {
      // The kernels' own allocations skip the autograd dispatch keys (they record nothing).
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      std::tie(y, packed) = gate_forward(x, op, lo, hi, closed_lo, closed_hi);
    }
    if (needs_grad) {
      auto node = c10::make_intrusive<GatePairBackward>();
      node->set_next_edges(torch::autograd::collect_next_edges(x));
      node->packed_ = torch::autograd::SavedVariable(packed, /*is_output=*/false);
      node->level_lo_ = level_lo;
      node->level_hi_ = level_hi;
      torch::autograd::set_history(y, node);
    }
    return y;
  }
};

GatePair make_gate_pair(int64_t op, double lo, double hi, bool closed_lo, bool closed_hi, double level_lo, double level_hi) {
  TORCH_CHECK(op == 1 || op == 2, "gate_pair: op must be 1 (relu) or 2 (step), got ", op);
  return GatePair{op, lo, hi, closed_lo, closed_hi, level_lo, level_hi};
}

torch::Tensor gate_pair(const torch::Tensor& x, int64_t op, double lo, double hi, bool closed_lo, bool closed_hi,
                        double level_lo, double level_hi) {
  return make_gate_pair(op, lo, hi, closed_lo, closed_hi, level_lo, level_hi)(x);
}

// count_correct: #{i : argmax_j logits[i, j] == labels[i]}, with torch.argmax's rule (the first
// maximum; a NaN counts as the maximum, the first NaN wins). Not an activation kernel: the
// trainer's running train accuracy (harness/train/step_accounting.py), which in torch ops
// (argmax, eq, sum) cost a small model's step ~10 us (1.4 % of the MNIST-1D MLP's).
int64_t count_correct(torch::Tensor logits, torch::Tensor labels) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) > 0 && logits.scalar_type() == torch::kFloat32 && logits.device().is_cpu(),
              "count_correct needs float32 CPU logits of shape (N, C), C > 0");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0) && labels.scalar_type() == torch::kInt64 && labels.device().is_cpu(),
              "count_correct needs int64 CPU labels of shape (N,)");
  logits = logits.contiguous();
  labels = labels.contiguous();
  const float* p = logits.data_ptr<float>();
  const int64_t* y = labels.data_ptr<int64_t>();
  const int64_t n = logits.size(0), c = logits.size(1);
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;
    int64_t best = 0;
    float top = row[0];
    if (!std::isnan(top)) {
      for (int64_t j = 1; j < c; ++j) {
        const float v = row[j];
        if (std::isnan(v)) { best = j; break; }
        if (v > top) { top = v; best = j; }
      }
    }
    hits += best == y[i];
  }
  return hits;
}

// fold_steps: (sum of the losses, correct predictions) over a run of training steps, in one
// call: the trainer keeps each step's loss, logits and labels by reference and folds them here
// every few steps (each call from Python costs ~1 us, ~5 us inside a training loop).
std::tuple<double, int64_t> fold_steps(const std::vector<torch::Tensor>& losses, const std::vector<torch::Tensor>& logits,
                                       const std::vector<torch::Tensor>& labels) {
  TORCH_CHECK(losses.size() == logits.size() && logits.size() == labels.size(), "fold_steps: one loss, logits and labels per step");
  double loss_sum = 0.0;
  int64_t hits = 0;
  for (size_t k = 0; k < losses.size(); ++k) {
    const auto& loss = losses[k];
    TORCH_CHECK(loss.numel() == 1 && loss.device().is_cpu(), "fold_steps: a loss must be one CPU value");
    loss_sum += loss.scalar_type() == torch::kFloat32 ? static_cast<double>(*loss.data_ptr<float>()) : loss.item<double>();
    hits += count_correct(logits[k], labels[k]);
  }
  return {loss_sum, hits};
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

// The gate kernels with their parameters as one float64 tensor (params.py's GateParams.values:
// lo, hi, closed_lo, closed_hi, level_lo, level_hi first), for compiled graphs: a Python float
// would be baked into the graph and guarded, a tensor is a graph input shared by every gate.
const double* gate_params(const torch::Tensor& params) {
  TORCH_CHECK(params.scalar_type() == torch::kFloat64 && params.device().is_cpu() && params.numel() >= 6 && params.is_contiguous(),
              "gate params must be a contiguous float64 CPU tensor of at least 6 values");
  return params.data_ptr<double>();
}

std::tuple<torch::Tensor, torch::Tensor> gate_forward_p(torch::Tensor x, int64_t op, const torch::Tensor& params) {
  const double* v = gate_params(params);
  return gate_forward(std::move(x), op, v[0], v[1], v[2] != 0.0, v[3] != 0.0);
}

// gate_forward_p with y written over x (op 1 / 2): in a graph, where x is a matmul's output
// that nothing else reads, Inductor reinplaces it, as it computes native ReLU in place.
torch::Tensor gate_forward_inplace_p(torch::Tensor x, int64_t op, const torch::Tensor& params) {
  TORCH_CHECK(op == 1 || op == 2, "gate_forward_inplace_p: op must be 1 (relu) or 2 (step)");
  TORCH_CHECK(x.is_contiguous(), "gate_forward_inplace_p needs a contiguous x");
  check_float_input(x, "gate_forward_inplace_p");
  const double* v = gate_params(params);
  return gate_forward_into(x, x.data_ptr<float>(), op, v[0], v[1], v[2] != 0.0, v[3] != 0.0);
}

torch::Tensor gate_mul_p(torch::Tensor grad, torch::Tensor packed, const torch::Tensor& params) {
  const double* v = gate_params(params);
  return gate_mul(std::move(grad), std::move(packed), v[4], v[5]);
}

void gate_mul_inplace_p(torch::Tensor grad, torch::Tensor packed, const torch::Tensor& params) {
  const double* v = gate_params(params);
  gate_mul_inplace(std::move(grad), std::move(packed), v[4], v[5]);
}

TORCH_LIBRARY(harness_kernels, m) {
  m.def("gate_forward(Tensor x, int op, float lo, float hi, bool closed_lo, bool closed_hi) -> (Tensor, Tensor)");
  m.def("gate_mul(Tensor grad, Tensor packed, float lo, float hi) -> Tensor");
  m.def("gate_forward_p(Tensor x, int op, Tensor params) -> (Tensor, Tensor)");
  m.def("gate_mul_p(Tensor grad, Tensor packed, Tensor params) -> Tensor");
  m.def("gate_forward_inplace_p(Tensor(a!) x, int op, Tensor params) -> Tensor");
  m.def("gate_mul_inplace(Tensor(a!) grad, Tensor packed, float lo, float hi) -> ()");
  m.def("gate_mul_inplace_p(Tensor(a!) grad, Tensor packed, Tensor params) -> ()");
  m.def("jam_mul(Tensor grad, Tensor packed, Tensor keys) -> Tensor");
  m.def("encode_codes(Tensor x, Tensor borders, int bits, int op) -> (Tensor, Tensor)");
  m.def("decode_mul(Tensor grad, Tensor packed, Tensor levels, int bits) -> Tensor");
}

TORCH_LIBRARY_IMPL(harness_kernels, CPU, m) {
  m.impl("gate_forward", &gate_forward);
  m.impl("gate_mul", &gate_mul);
  m.impl("gate_forward_p", &gate_forward_p);
  m.impl("gate_mul_p", &gate_mul_p);
  m.impl("gate_forward_inplace_p", &gate_forward_inplace_p);
  m.impl("gate_mul_inplace", &gate_mul_inplace);
  m.impl("gate_mul_inplace_p", &gate_mul_inplace_p);
  m.impl("jam_mul", &jam_mul_keys);
  m.impl("encode_codes", &encode_codes);
  m.impl("decode_mul", &decode_mul);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gate_forward", &gate_forward, "packed 1[x in interval], plus y = relu(x) or step(x) (op 1/2), in one pass");
  m.def("gate_mul", &gate_mul, "grad * (bit ? hi : lo)");
  m.def("gate_pair", &gate_pair, "relu/step forward with a 1-bit gate backward, in C++ (one call)");
  pybind11::class_<GatePair>(m, "GatePair", "one gate pair's arguments; call it on a float32 CPU tensor")
      .def(pybind11::init(&make_gate_pair))
      .def("__call__", &GatePair::operator(), "relu/step(x) with the 1-bit gate backward");
  m.def("jam_mul", &jam_mul, "grad * gate * U(0,1) from a counter-based hash");
  m.def("count_correct", &count_correct, "#{i: argmax(logits[i]) == labels[i]} (torch.argmax's ties and NaNs)");
  m.def("fold_steps", &fold_steps, "(sum of losses, correct predictions) over a run of steps");
  m.def("encode_codes", &encode_codes, "b-bit codes of x against sorted borders, packed in bit planes (+ relu/step y)");
  m.def("decode_mul", &decode_mul, "grad * levels[code] from packed bit planes");
  m.def("isa", &isa, "instruction set in use: 0 scalar, 1 avx2, 2 avx512");
  m.def("best_isa", &best_isa, "best instruction set this CPU supports");
  m.def("set_isa", &set_isa, "use at most this instruction set; returns the one in use");
}

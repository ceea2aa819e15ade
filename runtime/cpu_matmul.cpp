// Portable path of matmul_rows and the choice of instruction set (runtime/cpu_matmul.h).
#include "runtime/cpu_matmul.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "kernels/common/expf_cephes.h"  // constants only (cpu_softmax_isa.h)
#include "runtime/dequant.h"

namespace spw::rt {
namespace {

#include "runtime/cpu_matmul_plain_isa.h"

// 8 lanes in plain C++ (auto-vectorised to what the baseline target has).
struct Lanes8 {
  float v[8];
};
struct V : PlainIsa<Lanes8, const uint8_t*> {
  static constexpr int lanes = 8;
  using reg = Lanes8;
  static reg zero() { return reg{}; }
  static reg load(const float* p) {
    reg r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store(float* p, const reg& a) { std::memcpy(p, a.v, sizeof a.v); }
  static reg fma(const reg& a, const reg& b, const reg& c) {  // not fused: -ffp-contract=off
    reg r;
    for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static float hsum(const reg& a) {
    return ((a.v[0] + a.v[4]) + (a.v[1] + a.v[5])) + ((a.v[2] + a.v[6]) + (a.v[3] + a.v[7]));
  }
  template <class F>
  static reg map(F f) {
    reg r;
    for (int i = 0; i < 8; ++i) r.v[i] = f(i);
    return r;
  }
  static reg set1(float v) { return map([&](int) { return v; }); }
  static reg mul(const reg& a, const reg& b) { return map([&](int i) { return a.v[i] * b.v[i]; }); }
  static reg add(const reg& a, const reg& b) { return map([&](int i) { return a.v[i] + b.v[i]; }); }
  static reg sub(const reg& a, const reg& b) { return map([&](int i) { return a.v[i] - b.v[i]; }); }
  static reg div(const reg& a, const reg& b) { return map([&](int i) { return a.v[i] / b.v[i]; }); }
  // x86's maxps / minps: the second operand unless the first is greater (smaller), so NaN in
  // either gives the second
  static reg max(const reg& a, const reg& b) { return map([&](int i) { return a.v[i] > b.v[i] ? a.v[i] : b.v[i]; }); }
  static reg min(const reg& a, const reg& b) { return map([&](int i) { return a.v[i] < b.v[i] ? a.v[i] : b.v[i]; }); }
  static reg round(const reg& a) { return map([&](int i) { return std::nearbyint(a.v[i]); }); }  // ties to even
  static reg pow2(const reg& n) {  // 2^n for whole n in [-126, 127]; NaN: NaN
    return map([&](int i) {
      if (n.v[i] != n.v[i]) return n.v[i];
      const uint32_t bits = static_cast<uint32_t>(static_cast<int>(n.v[i]) + 127) << 23;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    });
  }
  // A 32-element 4-bit block's bytes; vector sub (0-3) = elements 8 sub .. 8 sub + 7 (low
  // nibbles of the 16 bytes, then the high ones).
  using nib = const uint8_t*;
  static nib nib_load(const uint8_t* qs) { return qs; }
  static reg nib_get(nib qs, int sub) {
    return map([&](int i) {
      const int e = sub * 8 + i;
      return static_cast<float>(e < 16 ? qs[e] & 0x0f : qs[e - 16] >> 4);
    });
  }
  static reg i8(const int8_t* p) { return map([&](int i) { return static_cast<float>(p[i]); }); }
};
constexpr int kRows = 4, kTokens = 4;
constexpr int kFusedRows = kRows, kFusedBlock = kTokens;  // run_fused's register block
constexpr int kFusedWideBlock = kFusedBlock;  // no wider block
constexpr int kFusedTokens = 2 * kFusedBlock;  // cpu_matmul_blocked.h, run_blocked
constexpr int kOneTokenRows = kFusedRows;  // no taller block (registers)
#include "runtime/dequant_portable.h"
#include "runtime/dequant_kernels.h"
#include "runtime/cpu_matmul_blocked.h"
#include "runtime/cpu_softmax_isa.h"
#include "runtime/cpu_key_scores_isa.h"

using RunFn = void (*)(const MatmulArgs&, int, int, const detail::Panel&);
using WeightedFn = void (*)(const float*, int, const float*, long, int, float*);
using SoftmaxFn = void (*)(float*, int, int, long, float);
using SiluFn = void (*)(float*, const float*, size_t);
using KeyScoresFn = void (*)(const KeyScoreArgs&);
struct Isa {
  const char* name;
  RunFn fn;
  bool supported;
  WeightedFn weighted;
  SoftmaxFn softmax;
  SiluFn silu;
  KeyScoresFn key_scores;
};

#if defined(SPW_CPU_MATMUL_AVX512) || defined(SPW_CPU_MATMUL_AVX2)
// F16C (the fp16 conversions of the encoded-weight paths), from CPUID leaf 1: clang's
// __builtin_cpu_supports knows no "f16c".
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}
#endif

// Fastest first.
const Isa* isas(int* count) {
  static const Isa table[] = {
#if defined(SPW_CPU_MATMUL_AVX512)
      {"avx512", &detail::matmul_rows_avx512, __builtin_cpu_supports("avx512f") && cpu_has_f16c(),
       &detail::accumulate_weighted_rows_avx512, &detail::softmax_rows_avx512, &detail::silu_mul_avx512,
       &detail::key_scores_avx512},
#endif
#if defined(SPW_CPU_MATMUL_AVX2)
      {"avx2", &detail::matmul_rows_avx2,
       __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c(),
       &detail::accumulate_weighted_rows_avx2, &detail::softmax_rows_avx2, &detail::silu_mul_avx2,
       &detail::key_scores_avx2},
#endif
      {"generic", &run_blocked, true, &weighted_rows, &softmax_rows_impl, &silu_mul_impl, &key_scores_impl},
  };
  *count = static_cast<int>(sizeof table / sizeof table[0]);
  return table;
}

// The fastest supported ISA, or the one SPW_CPU_ISA names if the CPU supports it.
const Isa& chosen() {
  static const Isa& pick = []() -> const Isa& {
    int n = 0;
    const Isa* t = isas(&n);
    if (const char* want = std::getenv("SPW_CPU_ISA"))
      for (int i = 0; i < n; ++i)
        if (t[i].supported && std::strcmp(t[i].name, want) == 0) return t[i];
    for (int i = 0; i < n; ++i)
      if (t[i].supported) return t[i];
    return t[n - 1];
  }();
  return pick;
}

// Checks the weight fields and sizes this thread's dequantisation panel (grown once per thread
// to the widest matrix, then reused: no allocation per call).
detail::Panel prepare(const MatmulArgs& a) {
  detail::Panel p;
  if (!a.wq) {
    SPW_CHECK(a.w || a.rows == 0, "matmul_rows: w and wq are both null (rows = {})", a.rows);
    return p;
  }
  SPW_CHECK(!a.w, "matmul_rows: w and wq are both set: give the weights in one form");
  SPW_CHECK(a.w_stride == 0, "matmul_rows: w_stride = {}: encoded weights (wq) must be packed rows", a.w_stride);
  const int64_t be = type_block_elements(a.wq_type);
  SPW_CHECK(be > 0, "matmul_rows: wq_type = {}: not a supported tensor type", a.wq_type);
  SPW_CHECK(a.cols % be == 0, "matmul_rows: cols = {}: not a whole number of {}-element blocks of wq_type {}", a.cols,
            be, a.wq_type);
  p.row_bytes = static_cast<size_t>(a.cols / be) * static_cast<size_t>(type_block_bytes(a.wq_type));
  thread_local std::vector<float> panel;
  const size_t need = static_cast<size_t>(detail::kMaxPanelRows) * a.cols;
  if (panel.size() < need) panel.resize(need);
  p.panel = panel.data();
  return p;
}

}  // namespace

void matmul_rows(const MatmulArgs& a, int row_begin, int row_end) {
  chosen().fn(a, row_begin, row_end, prepare(a));
}

void accumulate_weighted_rows(const float* p, int count, const float* v, long v_stride, int n, float* out) {
  chosen().weighted(p, count, v, v_stride, n, out);
}

void softmax_rows(float* s, int rows, int n, long stride, float scale) {
  chosen().softmax(s, rows, n, stride, scale);
}

void silu_mul(float* g, const float* u, size_t n) { chosen().silu(g, u, n); }

void key_scores(const KeyScoreArgs& a) { chosen().key_scores(a); }

const char* matmul_isa() { return chosen().name; }

bool matmul_isa_supported(const char* isa) {
  int n = 0;
  const Isa* t = isas(&n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(t[i].name, isa) == 0) return t[i].supported;
  return false;
}

namespace {
const Isa& isa_named(const char* isa, const char* where) {
  int n = 0;
  const Isa* t = isas(&n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(t[i].name, isa) == 0) {
      SPW_CHECK(t[i].supported, "{}: isa = {}: not supported by this CPU or build", where, isa);
      return t[i];
    }
  fail("{}: isa = {}: unknown (avx512, avx2 or generic)", where, isa);
}
}  // namespace

void matmul_rows_isa(const char* isa, const MatmulArgs& a, int row_begin, int row_end) {
  isa_named(isa, "matmul_rows_isa").fn(a, row_begin, row_end, prepare(a));
}

void accumulate_weighted_rows_isa(const char* isa, const float* p, int count, const float* v, long v_stride, int n,
                                  float* out) {
  isa_named(isa, "accumulate_weighted_rows_isa").weighted(p, count, v, v_stride, n, out);
}

void softmax_rows_isa(const char* isa, float* s, int rows, int n, long stride, float scale) {
  isa_named(isa, "softmax_rows_isa").softmax(s, rows, n, stride, scale);
}

void silu_mul_isa(const char* isa, float* g, const float* u, size_t n) { isa_named(isa, "silu_mul_isa").silu(g, u, n); }

void key_scores_isa(const char* isa, const KeyScoreArgs& a) { isa_named(isa, "key_scores_isa").key_scores(a); }

}  // namespace spw::rt

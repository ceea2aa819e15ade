// Portable path of matmul_rows and the choice of instruction set (runtime/cpu_matmul.h).
#include "runtime/cpu_matmul.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "kernels/common/error.h"

namespace spw::rt {
namespace {

struct V {  // 8 lanes in plain C++ (auto-vectorised to what the baseline target has)
  static constexpr int lanes = 8;
  struct reg {
    float v[8];
  };
  static reg zero() { return reg{}; }
  static reg load(const float* p) {
    reg r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static reg fma(const reg& a, const reg& b, const reg& c) {  // not fused: -ffp-contract=off
    reg r;
    for (int i = 0; i < 8; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static float hsum(const reg& a) {
    return ((a.v[0] + a.v[4]) + (a.v[1] + a.v[5])) + ((a.v[2] + a.v[6]) + (a.v[3] + a.v[7]));
  }
};
constexpr int kRows = 4, kTokens = 4;
#include "runtime/cpu_matmul_blocked.h"

using RunFn = void (*)(const MatmulArgs&, int, int);
struct Isa {
  const char* name;
  RunFn fn;
  bool supported;
};

// Fastest first.
const Isa* isas(int* count) {
  static const Isa table[] = {
#if defined(SPW_CPU_MATMUL_AVX512)
      {"avx512", &detail::matmul_rows_avx512, static_cast<bool>(__builtin_cpu_supports("avx512f"))},
#endif
#if defined(SPW_CPU_MATMUL_AVX2)
      {"avx2", &detail::matmul_rows_avx2, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
#endif
      {"generic", &run_blocked, true},
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

}  // namespace

void matmul_rows(const MatmulArgs& a, int row_begin, int row_end) { chosen().fn(a, row_begin, row_end); }

const char* matmul_isa() { return chosen().name; }

bool matmul_isa_supported(const char* isa) {
  int n = 0;
  const Isa* t = isas(&n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(t[i].name, isa) == 0) return t[i].supported;
  return false;
}

void matmul_rows_isa(const char* isa, const MatmulArgs& a, int row_begin, int row_end) {
  int n = 0;
  const Isa* t = isas(&n);
  for (int i = 0; i < n; ++i)
    if (std::strcmp(t[i].name, isa) == 0) {
      SPW_CHECK(t[i].supported, "matmul_rows_isa: isa = {}: not supported by this CPU or build", isa);
      t[i].fn(a, row_begin, row_end);
      return;
    }
  SPW_CHECK(false, "matmul_rows_isa: isa = {}: unknown (avx512, avx2 or generic)", isa);
}

}  // namespace spw::rt

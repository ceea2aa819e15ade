// matmul_rows for AVX2 + FMA (8 fp32 lanes; 4 weight rows x 2 tokens = 8 accumulators of 16
// registers). Compiled with -mavx2 -mfma (runtime/CMakeLists.txt) on x86-64 only; called
// only after the CPU was checked to support it. Includes nothing but intrinsics so that no
// shared inline function gets compiled with these flags.
#include "runtime/cpu_matmul.h"

#if defined(SPW_CPU_MATMUL_AVX2)
#include <immintrin.h>

#include <cstddef>
#include <utility>

namespace spw::rt {
namespace {

struct V {
  static constexpr int lanes = 8;
  using reg = __m256;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(reg a) {  // (low 128 + high 128), then pairs
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
  }
};
constexpr int kRows = 4, kTokens = 2;
#include "runtime/cpu_matmul_blocked.h"

}  // namespace

namespace detail {
void matmul_rows_avx2(const MatmulArgs& a, int r0, int r1) { run_blocked(a, r0, r1); }
}  // namespace detail
}  // namespace spw::rt
#endif

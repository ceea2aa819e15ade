// matmul_rows for AVX2 + FMA (8 fp32 lanes; 4 weight rows x 2 tokens = 8 accumulators of 16
// registers). Compiled with -mavx2 -mfma -mf16c (runtime/CMakeLists.txt) on x86-64 only; called
// only after the CPU was checked to support it. Includes nothing but intrinsics so that no
// shared inline function gets compiled with these flags.
#include "runtime/cpu_matmul.h"
#include "kernels/common/expf_cephes.h"  // constants only
#include "runtime/dequant.h"  // TensorType only

#if defined(SPW_CPU_MATMUL_AVX2)
#include <immintrin.h>

#include <cstddef>
#include <utility>

namespace spw::rt {
namespace {

// (PlainIsa<__m256, ...> only names the types in declarations: the vector types' alignment
// attributes, which GCC says it drops from template arguments, do not matter there.)
#pragma GCC diagnostic ignored "-Wignored-attributes"
#include "runtime/cpu_matmul_plain_isa.h"

struct V : PlainIsa<__m256, __m128i> {
  static constexpr int lanes = 8;
  using reg = __m256;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg a) { _mm256_storeu_ps(p, a); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float hsum(reg a) {  // (low 128 + high 128), then pairs
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
  }
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg div(reg a, reg b) { return _mm256_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg round(reg a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg pow2(reg n) {  // 2^n: n + 127 as the exponent field
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  }
  // A 32-element 4-bit block's 16 bytes; vector sub (0-3) = elements 8 sub .. 8 sub + 7: low
  // nibbles of bytes 0-7, 8-15, then the high nibbles of the same.
  using nib = __m128i;
  static nib nib_load(const uint8_t* qs) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)); }
  static reg nib_get(const nib& q, int sub) {
    const __m256i w = _mm256_cvtepu8_epi32(sub & 1 ? _mm_srli_si128(q, 8) : q);
    return _mm256_cvtepi32_ps(sub >= 2 ? _mm256_srli_epi32(w, 4) : _mm256_and_si256(w, _mm256_set1_epi32(15)));
  }
  static reg i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
};
constexpr int kRows = 4, kTokens = 2;
constexpr int kFusedRows = kRows, kFusedBlock = kTokens;  // run_fused's register block
constexpr int kFusedWideBlock = kFusedBlock;  // no wider block
constexpr int kFusedTokens = 2 * kFusedBlock;  // cpu_matmul_blocked.h, run_blocked
constexpr int kOneTokenRows = kFusedRows;  // no taller block (registers)
float dq_half(uint16_t bits);
void dq_f16(const uint8_t* src, int64_t n, float* dst);
void dq_nibbles16(const uint8_t* q, float* lo, float* hi) {
  for (int h = 0; h < 16; h += 8) {
    const __m256i w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + h)));
    _mm256_storeu_ps(lo + h, _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(15))));
    _mm256_storeu_ps(hi + h, _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 4)));
  }
}
void dq_q6_16(const uint8_t* ql, const uint8_t* qh, int ls, int hs, float* out) {
  for (int j = 0; j < 16; j += 8) {
    const __m256i l = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ql + j)));
    const __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qh + j)));
    const __m256i lo = _mm256_and_si256(_mm256_srl_epi32(l, _mm_cvtsi32_si128(ls)), _mm256_set1_epi32(15));
    const __m256i hi =
        _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(h, _mm_cvtsi32_si128(hs)), _mm256_set1_epi32(3)), 4);
    _mm256_storeu_ps(out + j, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_or_si256(lo, hi), _mm256_set1_epi32(32))));
  }
}
#include "runtime/dequant_kernels.h"
#include "runtime/cpu_matmul_blocked.h"
#include "runtime/cpu_softmax_isa.h"
#include "runtime/cpu_key_scores_isa.h"

// fp16 -> fp32 with F16C conversions (exact, like half_bits_to_float).
float dq_half(uint16_t bits) { return _cvtsh_ss(bits); }
void dq_f16(const uint8_t* src, int64_t n, float* dst) {
  dq_f16_vectors<8>(src, n, dst, [](const uint8_t* s, float* d) {
    _mm256_storeu_ps(d, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s))));
  });
}

}  // namespace

namespace detail {
void matmul_rows_avx2(const MatmulArgs& a, int r0, int r1, const Panel& p) { run_blocked(a, r0, r1, p); }
void accumulate_weighted_rows_avx2(const float* p, int count, const float* v, long v_stride, int n, float* out) {
  weighted_rows(p, count, v, v_stride, n, out);
}
void softmax_rows_avx2(float* s, int rows, int n, long stride, float scale) {
  softmax_rows_impl(s, rows, n, stride, scale);
}
void silu_mul_avx2(float* g, const float* u, size_t n) { silu_mul_impl(g, u, n); }
void key_scores_avx2(const KeyScoreArgs& a) { key_scores_impl(a); }
}  // namespace detail
}  // namespace spw::rt
#endif

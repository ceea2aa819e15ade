// matmul_rows for AVX-512F (16 fp32 lanes; 4 weight rows x 4 tokens = 16 accumulators of 32
// registers; encoded weights over up to 16 tokens in blocks of 8 x 1, 4 x 2, 4 x 4 and 4 x 6).
// Compiled with -mavx512f -mavx2 -mfma -mf16c (runtime/CMakeLists.txt) on x86-64 only;
// called only after the CPU was checked to support it. Includes nothing but intrinsics so
// that no shared inline function gets compiled with these flags.
#include "runtime/cpu_matmul.h"
#include "kernels/common/expf_cephes.h"  // constants only
#include "runtime/dequant.h"  // TensorType only

#if defined(SPW_CPU_MATMUL_AVX512)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_ps() (a self-initialised value) as the
// unused merge source, which -Wuninitialized reports at every use; nothing here is uninitialised.
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstddef>
#include <utility>

namespace spw::rt {
namespace {

struct V {
  static constexpr int lanes = 16;
  using reg = __m512;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg a) { _mm512_storeu_ps(p, a); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static float hsum(reg a) {  // (low 256 + high 256), then as in the AVX2 path
    const __m512 swapped = _mm512_shuffle_f32x4(a, a, 0x4E);  // 128-bit chunks 2, 3, 0, 1
    const __m256 h = _mm512_castps512_ps256(_mm512_add_ps(a, swapped));
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
  }
  // hsum of a[0 .. n) (n <= 16) into out[0 .. n), by the same additions hsum makes for each
  // (lanes i + 8, then i + 4, i + 2, i + 1), done for 16 registers together: each step adds
  // two registers' halves at once, 15 adds and 30 shuffles instead of 64 and 64. For a block
  // of short rows (attention scores: 4 vectors of a 64-wide head per sum) that reduction
  // cost more than the FMAs. Lane 4 c + e of the last sum holds a[c + 4 e].
  static constexpr bool kHsum16 = true;
  static void hsum16(const reg* a, int n, float* out) {
    reg x[16];
    for (int i = 0; i < 16; ++i) x[i] = zero();
    for (int i = 0; i < n; ++i) x[i] = a[i];
    reg p[8], s[4], t[2];
    for (int i = 0; i < 8; ++i)  // lanes 0-7: x[2i]'s i + (i + 8); 8-15: x[2i + 1]'s
      p[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x44),
                           _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; ++i)  // 128-bit chunk c: x[4i + c]'s i + (i + 4)
      s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0x88),
                           _mm512_shuffle_f32x4(p[2 * i], p[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; ++i)  // chunk c: x[8i + c]'s 0 + 2, 1 + 3, then x[8i + 4 + c]'s
      t[i] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * i], s[2 * i + 1], 0x44),
                           _mm512_shuffle_ps(s[2 * i], s[2 * i + 1], 0xEE));
    alignas(64) float r[16];  // chunk c: x[c], x[4 + c], x[8 + c], x[12 + c]: 0 + 1
    _mm512_store_ps(r, _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], 0x88), _mm512_shuffle_ps(t[0], t[1], 0xDD)));
    for (int i = 0; i < n; ++i) out[i] = r[i % 4 * 4 + i / 4];
  }
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg div(reg a, reg b) { return _mm512_div_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg round(reg a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg pow2(reg n) {  // 2^n: n + 127 as the exponent field
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  }
  // A 32-element 4-bit block's 16 bytes as 16 int32; vector 0 = the low nibbles (elements
  // 0-15), vector 1 = the high ones (16-31).
  using nib = __m512i;
  static nib nib_load(const uint8_t* qs) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  }
  static reg nib_get(const nib& w, int sub) {
    return _mm512_cvtepi32_ps(sub ? _mm512_srli_epi32(w, 4) : _mm512_and_si512(w, _mm512_set1_epi32(15)));
  }
  static reg i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // Q4_0 / Q4_1 by table: `table` holds a block's 16 dequantised values (entry q = what
  // nib_get's q becomes), and nib_lookup picks table[nibble] for the 16 nibbles of vector sub
  // (vpermps reads the low 4 bits of each index: the low nibbles need no mask). Per 16 weights
  // that is one permute (and a shift) instead of a mask, a conversion, a multiply and an add.
  static constexpr bool kNibbleTable = true;
  static reg iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static reg nib_lookup(const nib& w, int sub, reg table) {
    return _mm512_permutexvar_ps(sub ? _mm512_srli_epi32(w, 4) : w, table);
  }
  // fp32 values of the fp16 at b + j * stride (d[j]) and, when m, at + 2 (m[j]), j < n: 16
  // blocks per gather of their first 4 bytes (lanes past n masked off, not read).
  static constexpr bool kGatherScales = true;
  static void block_scales(const uint8_t* b, int stride, int n, float* d, float* m) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(stride));
    for (int j = 0; j < n; j += 16, b += 16 * stride) {
      const __mmask16 live = n - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - j)) - 1);
      const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, b, 1);
      _mm512_mask_storeu_ps(d + j, live, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)));
      if (m) _mm512_mask_storeu_ps(m + j, live, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))));
    }
  }
};
constexpr int kRows = 4, kTokens = 4;
constexpr int kFusedRows = 4, kFusedBlock = 4;  // run_fused's register block (16 accumulators)
constexpr int kFusedWideBlock = 6;              // T = 5, 6: one 4 x 6 block (24 accumulators)
constexpr int kFusedTokens = 16;  // cpu_matmul_blocked.h, run_blocked
constexpr int kOneTokenRows = 8;  // run_fused for T = 1 (8 accumulators; T = 2: 4 x 2)
float dq_half(uint16_t bits);
void dq_f16(const uint8_t* src, int64_t n, float* dst);
void dq_nibbles16(const uint8_t* q, float* lo, float* hi) {
  const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  _mm512_storeu_ps(lo, _mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(15))));
  _mm512_storeu_ps(hi, _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4)));
}
void dq_q6_16(const uint8_t* ql, const uint8_t* qh, int ls, int hs, float* out) {
  const __m512i l = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ql)));
  const __m512i h = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qh)));
  const __m512i lo = _mm512_and_si512(_mm512_srl_epi32(l, _mm_cvtsi32_si128(ls)), _mm512_set1_epi32(15));
  const __m512i hi = _mm512_slli_epi32(_mm512_and_si512(_mm512_srl_epi32(h, _mm_cvtsi32_si128(hs)), _mm512_set1_epi32(3)), 4);
  _mm512_storeu_ps(out, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_or_si512(lo, hi), _mm512_set1_epi32(32))));
}
#include "runtime/dequant_kernels.h"
#include "runtime/cpu_matmul_blocked.h"
#include "runtime/cpu_softmax_isa.h"
#include "runtime/cpu_key_scores_isa.h"

// fp16 -> fp32 with F16C / AVX-512F conversions (exact, like half_bits_to_float).
float dq_half(uint16_t bits) { return _cvtsh_ss(bits); }
void dq_f16(const uint8_t* src, int64_t n, float* dst) {
  dq_f16_vectors<16>(src, n, dst, [](const uint8_t* s, float* d) {
    _mm512_storeu_ps(d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s))));
  });
}

}  // namespace

namespace detail {
void matmul_rows_avx512(const MatmulArgs& a, int r0, int r1, const Panel& p) { run_blocked(a, r0, r1, p); }
void accumulate_weighted_rows_avx512(const float* p, int count, const float* v, long v_stride, int n, float* out) {
  weighted_rows(p, count, v, v_stride, n, out);
}
void softmax_rows_avx512(float* s, int rows, int n, long stride, float scale) {
  softmax_rows_impl(s, rows, n, stride, scale);
}
void silu_mul_avx512(float* g, const float* u, size_t n) { silu_mul_impl(g, u, n); }
void key_scores_avx512(const KeyScoreArgs& a) { key_scores_impl(a); }
}  // namespace detail
}  // namespace spw::rt
#endif

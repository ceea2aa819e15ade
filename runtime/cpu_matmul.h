// The CPU backend's matrix product Y[t, r] (+)= X[t, :] · W[r, :] (+ bias[r]) for a few
// activation rows t (the new tokens of a forward) against a large row-major fp32 weight W.
//
// Register-blocked: a block of weight rows is loaded once per vector step and multiplied
// with a block of activation rows, so a forward over k tokens reads every weight once and
// issues about one load per FMA instead of two: verifying k draft tokens costs little more
// than one token, which is what speculative decoding relies on.
//
// Batch invariance: every output element is computed by the same sequence of operations
// whatever T, the block it falls in and the row range (thread split) are, so the logits of a
// token do not depend on how many tokens share its forward. Greedy speculative decoding is
// bit-identical to plain decoding because of this. The instruction set (AVX-512F,
// AVX2+FMA, or portable C++) is picked once per process from the CPU's features; results
// differ between instruction sets only by fp32 rounding.
//
// Encoded weights: W may also be a GGUF-encoded matrix (F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K,
// Q6_K; runtime/dequant.h). Every weight is then read from memory in its compact form once
// per product (Q4_1: 0.625 bytes per weight instead of 4). Q8_0 / Q4_0 / Q4_1 products over a
// few tokens (T <= 16 with AVX-512: blocks of 8 weight rows x 1 token, 4 x 2, 4 x 4 or 4 x 6,
// the 4-bit types through a 16-entry table per block; T <= 4 with AVX2: two blocks of 4 x 2)
// dequantise in registers, once per block of tokens, the block's rows re-read from L1;
// otherwise each block of weight rows is dequantised once into a per-thread fp32 panel right
// before the token rows are multiplied with it. Both give exactly dequantize()'s values, so
// the result is bit-identical to the same product over pre-dequantised fp32 weights.

#pragma once

#include <cstddef>
#include <cstdint>

namespace spw::rt {

/// One product, restricted to output columns (weight rows) [row_begin, row_end) so that
/// callers can split the rows over threads. x: [T, cols], w: [rows, cols], bias: [rows] or
/// null, y: [T, rows]; each with a row stride in elements (0 = packed: cols, cols, rows), so
/// that e.g. one head of a KV cache row can be the weight. accumulate: y += product, else y =.
/// Encoded weights: w = nullptr, wq = the rows in TensorType `wq_type`, packed (w_stride 0);
/// cols must be a whole number of the type's blocks.
struct MatmulArgs {
  const float* x = nullptr;
  int T = 0;
  const float* w = nullptr;
  int rows = 0, cols = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  bool accumulate = false;
  long x_stride = 0, w_stride = 0, y_stride = 0;
  const uint8_t* wq = nullptr;  // encoded weights instead of w
  uint32_t wq_type = 0;         // their TensorType
};
/// Throws spw::Error naming the field if the encoded-weight fields are inconsistent (both or
/// neither of w / wq, unsupported type, cols not whole blocks, a w_stride with wq).
void matmul_rows(const MatmulArgs& a, int row_begin, int row_end);

/// out[d] += sum over j < count of p[j] * v[j * v_stride + d], for d < n: attention's weighted
/// sum of value rows, vectorised over d. Each out[d] takes its terms in j order, one rounded
/// multiply and one rounded add each, so the result equals the plain scalar loop bit for bit
/// on every instruction set (and calls for consecutive j ranges compose).
void accumulate_weighted_rows(const float* p, int count, const float* v, long v_stride, int n, float* out);
/// The same with an explicit instruction set (tests); throws like matmul_rows_isa.
void accumulate_weighted_rows_isa(const char* isa, const float* p, int count, const float* v, long v_stride, int n,
                                  float* out);

/// Keys per tile of a tile-transposed key cache: key j of a head lives in tile j / kKeyTile,
/// whose kKeyTile keys are stored dimension-major ([head_dim][kKeyTile]: key j's element d at
/// tile_start + d * kKeyTile + j % kKeyTile), so that a vector load holds one dimension of
/// consecutive keys and a score product walks a tile's memory in order.
constexpr int kKeyTile = 64;
/// Attention's scores against such a cache: out[r][j - out_shift] = sum over d < hd of
/// q[r][d] * K[j][d] for each query row r < rows and key j in [k0, min(k1, limit[r])) (limit
/// null: k1). kt is the head's first tile. Vectorised over keys: each score is one chain of
/// multiply-adds over d in increasing order from 0 (fused on AVX-512 / AVX2, a rounded multiply
/// and add on the portable path), so it has the same bits whatever rows, range or tile it is
/// computed with: one key alone (k0 = j, k1 = j + 1) scores exactly as within a range (batch
/// invariance). Whole tiles are read: kt must hold every tile [k0, k1) touches.
struct KeyScoreArgs {
  const float* const* q = nullptr;  // rows query pointers, hd floats each
  float* const* out = nullptr;      // rows score rows
  const int* limit = nullptr;       // rows exclusive key limits, or null
  int rows = 0;
  const float* kt = nullptr;
  int hd = 0;
  int k0 = 0, k1 = 0;
  long out_shift = 0;
};
void key_scores(const KeyScoreArgs& a);
/// The same with an explicit instruction set (tests); throws like matmul_rows_isa.
void key_scores_isa(const char* isa, const KeyScoreArgs& a);

/// Attention's softmax, in place: for each row r < rows, s[r * stride + j] for j < n becomes
/// softmax over j of scale * s (the row's max subtracted before exponentiating; stride 0 =
/// n). exp is vectorised (cpu_softmax_isa.h: a few ulp from expf), the row sum is taken in a
/// fixed order for a given n, and each row's result depends on that row only (batch
/// invariance). n = 0 leaves the row empty; a NaN in a row makes the whole row NaN.
void softmax_rows(float* s, int rows, int n, long stride, float scale);
/// The MLP's gate: g[i] = silu(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i] for i < n, with the
/// same vectorised exp; each element depends on its own inputs only.
void silu_mul(float* g, const float* u, size_t n);
/// The same with an explicit instruction set (tests); throw like matmul_rows_isa.
void softmax_rows_isa(const char* isa, float* s, int rows, int n, long stride, float scale);
void silu_mul_isa(const char* isa, float* g, const float* u, size_t n);

/// Name of the instruction set matmul_rows uses in this process: "avx512", "avx2" or
/// "generic". The environment variable SPW_CPU_ISA (avx512|avx2|generic) lowers the choice
/// (tests use it to cover every path; a value the CPU cannot run is ignored).
const char* matmul_isa();

/// Whether this build and CPU can run `isa` ("avx512", "avx2", "generic").
bool matmul_isa_supported(const char* isa);

/// The same product with an explicit instruction set (tests); throws spw::Error naming `isa`
/// if it is unknown or this CPU or build cannot run it.
void matmul_rows_isa(const char* isa, const MatmulArgs& a, int row_begin, int row_end);

namespace detail {
/// Per-thread scratch of a product over encoded weights: `panel` holds kMaxPanelRows rows of
/// cols fp32 values; row_bytes is the encoded size of one weight row.
constexpr int kMaxPanelRows = 4;
struct Panel {
  float* panel = nullptr;
  size_t row_bytes = 0;
};
// Per-ISA entry points (cpu_matmul_<isa>.cpp), present when compiled.
void matmul_rows_avx512(const MatmulArgs& a, int row_begin, int row_end, const Panel& p);
void matmul_rows_avx2(const MatmulArgs& a, int row_begin, int row_end, const Panel& p);
void accumulate_weighted_rows_avx512(const float* p, int count, const float* v, long v_stride, int n, float* out);
void accumulate_weighted_rows_avx2(const float* p, int count, const float* v, long v_stride, int n, float* out);
void softmax_rows_avx512(float* s, int rows, int n, long stride, float scale);
void softmax_rows_avx2(float* s, int rows, int n, long stride, float scale);
void silu_mul_avx512(float* g, const float* u, size_t n);
void silu_mul_avx2(float* g, const float* u, size_t n);
void key_scores_avx512(const KeyScoreArgs& a);
void key_scores_avx2(const KeyScoreArgs& a);
}  // namespace detail

}  // namespace spw::rt

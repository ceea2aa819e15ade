// Argument checks of the small ops (run before every launch), and the CPU-only build's
// stand-ins for the launchers.
#include <algorithm>

#include "kernels/common/error.h"
#include "kernels/common/vec.h"
#include "kernels/small_ops/small_ops.h"

namespace spw::small_ops {
namespace {
void check_dtype(const char* where, DType d) {
  SPW_CHECK_ARG(d == DType::f16 || d == DType::bf16, where, "dtype", dtype_name(d), "must be fp16 or bf16");
}
void check_ptr(const char* where, const char* name, const void* p, bool required = true) {
  if (!p) {
    SPW_CHECK_ARG(!required, where, name, "null", "must be a device pointer");
    return;
  }
  SPW_CHECK_ARG(is_aligned(p, 16), where, name, fmt::ptr(p), "must be 16-byte aligned");
}
}  // namespace

void check(const RmsNormArgs& a) {
  const char* w = "small_ops::rmsnorm";
  check_dtype(w, a.dtype);
  SPW_CHECK_ARG(a.rows >= 0, w, "rows", a.rows, "must be >= 0");
  SPW_CHECK_ARG(a.hidden > 0 && a.hidden % 8 == 0, w, "hidden", a.hidden, "must be a positive multiple of 8");
  SPW_CHECK_ARG(a.eps > 0.f, w, "eps", a.eps, "must be > 0");
  check_ptr(w, "x", a.x);
  check_ptr(w, "weight", a.weight);
  check_ptr(w, "out", a.out);
  check_ptr(w, "residual", a.residual, false);
}

void check(const RopeArgs& a) {
  const char* w = "small_ops::rope";
  check_dtype(w, a.dtype);
  SPW_CHECK_ARG(a.tokens >= 0, w, "tokens", a.tokens, "must be >= 0");
  SPW_CHECK_ARG(a.q_heads > 0, w, "q_heads", a.q_heads, "must be > 0");
  SPW_CHECK_ARG(a.kv_heads >= 0, w, "kv_heads", a.kv_heads, "must be >= 0");
  SPW_CHECK_ARG(a.rope.head_dim > 0 && a.rope.head_dim % 2 == 0 && a.rope.head_dim <= 512, w,
                "rope.head_dim", a.rope.head_dim, "must be even and in 2..512");
  SPW_CHECK_ARG(a.rope.theta > 0.f, w, "rope.theta", a.rope.theta, "must be > 0");
  SPW_CHECK_ARG(a.q_row_stride == 0 || a.q_row_stride >= static_cast<long long>(a.q_heads) * a.rope.head_dim,
                w, "q_row_stride", a.q_row_stride, "must be 0 (packed) or >= q_heads * head_dim");
  SPW_CHECK_ARG(a.k_row_stride == 0 || a.k_row_stride >= static_cast<long long>(a.kv_heads) * a.rope.head_dim,
                w, "k_row_stride", a.k_row_stride, "must be 0 (packed) or >= kv_heads * head_dim");
  SPW_CHECK_ARG(a.q != nullptr, w, "q", "null", "must be a device pointer");
  SPW_CHECK_ARG(a.kv_heads == 0 || a.k != nullptr, w, "k", "null", "must be a device pointer when kv_heads > 0");
  SPW_CHECK_ARG(a.positions != nullptr, w, "positions", "null", "must be a device pointer");
}

void check(const SiluMulArgs& a) {
  const char* w = "small_ops::silu_mul";
  check_dtype(w, a.dtype);
  SPW_CHECK_ARG(a.rows >= 0, w, "rows", a.rows, "must be >= 0");
  SPW_CHECK_ARG(a.inter > 0 && a.inter % 8 == 0, w, "inter", a.inter, "must be a positive multiple of 8");
  check_ptr(w, "gate_up", a.gate_up);
  check_ptr(w, "out", a.out);
}

void check(const EmbeddingArgs& a) {
  const char* w = "small_ops::embedding";
  check_dtype(w, a.dtype);
  SPW_CHECK_ARG(a.tokens >= 0, w, "tokens", a.tokens, "must be >= 0");
  SPW_CHECK_ARG(a.vocab > 0, w, "vocab", a.vocab, "must be > 0");
  SPW_CHECK_ARG(a.hidden > 0 && a.hidden % 8 == 0, w, "hidden", a.hidden, "must be a positive multiple of 8");
  SPW_CHECK_ARG(a.ids != nullptr, w, "ids", "null", "must be a device pointer");
  check_ptr(w, "table", a.table);
  check_ptr(w, "out", a.out);
}

void check_argmax(const float* logits, int rows, int vocab, const int32_t* out) {
  const char* w = "small_ops::argmax";
  SPW_CHECK_ARG(rows >= 0, w, "rows", rows, "must be >= 0");
  SPW_CHECK_ARG(vocab > 0, w, "vocab", vocab, "must be > 0");
  SPW_CHECK_ARG(logits != nullptr, w, "logits", "null", "must be a device pointer");
  SPW_CHECK_ARG(out != nullptr, w, "out", "null", "must be a device pointer");
}

void check_topk(const float* logits, int rows, int vocab, int k, const TopToken* out) {
  const char* w = "small_ops::topk";
  SPW_CHECK_ARG(rows >= 0, w, "rows", rows, "must be >= 0");
  SPW_CHECK_ARG(vocab > 0, w, "vocab", vocab, "must be > 0");
  SPW_CHECK_ARG(k >= 1 && k <= std::min(vocab, kMaxTopK), w, "k", k,
                fmt::format("must be in [1, min(vocab, {})] (vocab = {})", kMaxTopK, vocab));
  SPW_CHECK_ARG(logits != nullptr, w, "logits", "null", "must be a device pointer");
  SPW_CHECK_ARG(out != nullptr, w, "out", "null", "must be a device pointer");
}

#if !SPW_HAVE_CUDA
[[noreturn]] static void no_cuda(const char* what) {
  fail("small_ops::{}: Spillway was built without CUDA; GPU kernels are not available", what);
}
void rmsnorm(const RmsNormArgs& a, Stream) { check(a); no_cuda("rmsnorm"); }
void rope(const RopeArgs& a, Stream) { check(a); no_cuda("rope"); }
void silu_mul(const SiluMulArgs& a, Stream) { check(a); no_cuda("silu_mul"); }
void embedding(const EmbeddingArgs& a, Stream) { check(a); no_cuda("embedding"); }
void argmax(const float* l, int r, int v, int32_t* o, Stream) { check_argmax(l, r, v, o); no_cuda("argmax"); }
void topk(const float* l, int r, int v, int k, TopToken* o, Stream) { check_topk(l, r, v, k, o); no_cuda("topk"); }
#endif

}  // namespace spw::small_ops

// Small ops of the CUDA backend: RMSNorm (optionally fused with the residual add), RoPE on
// Q and K in place, SiLU-gated multiply (SwiGLU activation), embedding gather, row argmax and
// row top-k.
// Each is memory-bound and one launch; the math shared with the CPU backend lives in
// kernels/common (rope.h) and the CPU references in reference.cpp.
//
// All functions check their arguments (message names the argument and value), allocate
// nothing and do not synchronise, so they can be captured in a CUDA graph.
#pragma once

#include <cstdint>

#include "kernels/common/dtype.h"
#include "kernels/common/platform.h"
#include "kernels/common/rope.h"
#include "kernels/common/top_tokens.h"

namespace spw::small_ops {

/// out[r] = x[r] / rms(x[r]) * weight, rms over `hidden`, fp32 math. If `residual` is not
/// null, x[r] + residual[r] is normalised instead and the sum is written back to `residual`
/// (the running hidden state of a transformer block).
struct RmsNormArgs {
  DType dtype = DType::f16;  // of x, residual, weight and out
  int rows = 0, hidden = 0;
  const void* x = nullptr;
  void* residual = nullptr;  // optional, in/out
  const void* weight = nullptr;
  void* out = nullptr;
  float eps = 1e-5f;
};
void rmsnorm(const RmsNormArgs& args, Stream stream);

/// Rotates q [tokens, q_heads, head_dim] and k [tokens, kv_heads, head_dim] in place; token t
/// uses positions[t] (device int32). Row strides are in elements (0 = packed).
struct RopeArgs {
  DType dtype = DType::f16;
  int tokens = 0, q_heads = 0, kv_heads = 0;
  void* q = nullptr;
  void* k = nullptr;
  long long q_row_stride = 0, k_row_stride = 0;
  const int32_t* positions = nullptr;
  RopeParams rope;
};
void rope(const RopeArgs& args, Stream stream);

/// out[r, j] = silu(gate_up[r, j]) * gate_up[r, inter + j] for j < inter (gate first, up second).
struct SiluMulArgs {
  DType dtype = DType::f16;
  int rows = 0, inter = 0;
  const void* gate_up = nullptr;
  void* out = nullptr;
};
void silu_mul(const SiluMulArgs& args, Stream stream);

/// out[t, :] = table[ids[t], :] for t < tokens; ids are checked on the device: an id outside
/// [0, vocab) writes zeros and sets *error_flag (device int, optional) to 1.
struct EmbeddingArgs {
  DType dtype = DType::f16;
  int tokens = 0, vocab = 0, hidden = 0;
  const int32_t* ids = nullptr;
  const void* table = nullptr;
  void* out = nullptr;
  int* error_flag = nullptr;
};
void embedding(const EmbeddingArgs& args, Stream stream);

/// out[r] = index of the largest of logits[r, 0..vocab) (fp32); ties go to the lowest index,
/// like the CPU backend's greedy choice, so both backends pick the same token.
void argmax(const float* logits, int rows, int vocab, int32_t* out, Stream stream);

/// out[r * k + i], i < k: the k (1 <= k <= min(vocab, kMaxTopK)) most likely tokens of
/// logits[r, 0..vocab) (fp32) with their softmax probabilities, by spw::top_tokens' rule
/// (kernels/common/top_tokens.h): the same tokens in the same order, probabilities to fp32
/// rounding. One block per row; deterministic.
void topk(const float* logits, int rows, int vocab, int k, TopToken* out, Stream stream);

// ---- validation (host; also used by the CPU-only build and the tests) ----
void check(const RmsNormArgs& a);
void check(const RopeArgs& a);
void check(const SiluMulArgs& a);
void check(const EmbeddingArgs& a);
void check_argmax(const float* logits, int rows, int vocab, const int32_t* out);
void check_topk(const float* logits, int rows, int vocab, int k, const TopToken* out);

}  // namespace spw::small_ops

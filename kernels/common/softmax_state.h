// Online softmax and log-sum-exp merging: the numerics every attention kernel and its CPU
// reference share (Flash-Decoding partial states, tree-attention prefix/tree merge).
//
// Scores are kept in the log2 domain: a caller multiplies q.k by scale * log2(e) once, so
// the GPU uses exp2 (one MUFU instruction) instead of exp. Public LSE values (kernel outputs,
// merge_states inputs) are natural-log: lse = ln(sum_j exp(scale * q.k_j)). An empty row has
// lse = -inf and output 0.
#pragma once

#include <cmath>

#include "kernels/common/platform.h"

namespace spw {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

SPW_HD SPW_FORCEINLINE float fast_exp2(float x) {
#if defined(__CUDA_ARCH__)
  return exp2f(x);
#else
  return std::exp2(x);
#endif
}
SPW_HD SPW_FORCEINLINE float fast_log2(float x) {
#if defined(__CUDA_ARCH__)
  return log2f(x);
#else
  return std::log2(x);
#endif
}
SPW_HD SPW_FORCEINLINE float neg_inf() { return -INFINITY; }

/// Optional logits soft-cap (Gemma-2 style): cap * tanh(s / cap); cap <= 0 disables it.
SPW_HD SPW_FORCEINLINE float soft_cap(float s, float cap) {
  return cap > 0.f ? cap * tanhf(s / cap) : s;
}

/// Running softmax statistics of one query row (log2 domain).
struct SoftmaxState {
  float m = -INFINITY;  // max of the log2-scaled scores seen so far
  float d = 0.f;        // sum of exp2(s - m) over the scores seen so far

  /// Folds in a block whose max is block_m and whose sum of exp2(s - block_m) is block_d.
  /// Returns the factor to rescale the accumulated output (sum of p_j * v_j) by.
  SPW_HD SPW_FORCEINLINE float absorb(float block_m, float block_d) {
    float m_new = fmaxf(m, block_m);
    if (m_new == -INFINITY) return 1.f;  // nothing seen on either side
    float a = fast_exp2(m - m_new), b = fast_exp2(block_m - m_new);
    d = d * a + block_d * b;
    m = m_new;
    return a;
  }

  /// Adds one score s (log2 domain). Writes the rescale for the accumulated output to
  /// *rescale and the weight of s (exp2(s - m_new)) to *p.
  SPW_HD SPW_FORCEINLINE void push(float s, float* rescale, float* p) {
    float m_new = fmaxf(m, s);
    if (m_new == -INFINITY) { *rescale = 1.f; *p = 0.f; return; }
    *rescale = fast_exp2(m - m_new);
    *p = fast_exp2(s - m_new);
    d = d * *rescale + *p;
    m = m_new;
  }

  /// Merges another row state; returns {scale for this output, scale for other output}
  /// (unnormalised outputs: o = o_this * first + o_other * second).
  SPW_HD SPW_FORCEINLINE void merge(const SoftmaxState& other, float* scale_self, float* scale_other) {
    float m_new = fmaxf(m, other.m);
    if (m_new == -INFINITY) { *scale_self = 1.f; *scale_other = 0.f; return; }
    *scale_self = fast_exp2(m - m_new);
    *scale_other = fast_exp2(other.m - m_new);
    d = d * *scale_self + other.d * *scale_other;
    m = m_new;
  }

  /// 1/d, the factor that normalises the accumulated output (0 for an empty row).
  SPW_HD SPW_FORCEINLINE float inv_sum() const { return d > 0.f ? 1.f / d : 0.f; }

  /// Natural-log LSE of the row: (m + log2 d) * ln 2; -inf for an empty row.
  SPW_HD SPW_FORCEINLINE float lse() const {
    return d > 0.f ? (m + fast_log2(d)) * kLn2 : -INFINITY;
  }
};

/// Weights for merging normalised partial outputs by their natural-log LSEs:
/// o = w[0] * o_0 + w[1] * o_1 + ..., lse = ln(sum exp(lse_i)). Works for any count n;
/// all-empty inputs give weights 0 and lse = -inf. `weights` has room for n floats.
SPW_HD inline float lse_merge_weights(const float* lses, int n, float* weights) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = fmaxf(m, lses[i]);
  if (m == -INFINITY) {
    for (int i = 0; i < n; ++i) weights[i] = 0.f;
    return -INFINITY;
  }
  float sum = 0.f;
  for (int i = 0; i < n; ++i) {
    weights[i] = fast_exp2((lses[i] - m) * kLog2e);
    sum += weights[i];
  }
  float inv = 1.f / sum;
  for (int i = 0; i < n; ++i) weights[i] *= inv;
  return m + fast_log2(sum) * kLn2;
}

}  // namespace spw

// The k most likely tokens of one row of logits, with their softmax probabilities: the rule
// that every producer of a top-k follows (Model::forward_topk's host default, the CUDA
// backend's small_ops::topk kernel, whose test compares against this function).
//
// Order: the larger logit first; equal logits, the lower token first; NaN after every number.
// When x[0] is NaN, token 0 comes first: greedy decoding's rule (rt::greedy_token: a NaN wins
// only at index 0), so out[0] is always the greedy token and a top-k pass can verify greedily.
// prob = exp(x - m) / sum_j exp(x_j - m), m the largest non-NaN logit (fp32 exp_nonpositive
// terms, float sums of 256, a double sum of those: relative error ~3e-7; a 49k-token row in
// ~0.1 ms on a 2-core Xeon when built with -fno-trapping-math); a NaN logit carries no probability
// (prob 0, nothing added to the sum), and a row without a finite maximum gives prob 0.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "kernels/common/host_math.h"
#include "kernels/common/platform.h"

namespace spw {

/// Largest k that forward_topk / small_ops::topk serve.
inline constexpr int kMaxTopK = 8;

struct TopToken {
  int32_t token = 0;
  float prob = 0.f;
};

/// `a` (value, index) ranks before `b`: the order above without the x[0]-is-NaN special case.
/// Host and device (small_ops::topk and argmax order by it too); x != x is the NaN test.
SPW_HD inline bool ranks_before(float a, int32_t ia, float b, int32_t ib) {
  const bool a_nan = a != a, b_nan = b != b;
  if (a_nan != b_nan) return b_nan;
  if (a_nan) return ia < ib;
  return a > b || (a == b && ia < ib);
}

/// Writes the k (1 <= k <= min(vocab, kMaxTopK)) most likely tokens of x[0..vocab) to out.
/// One pass keeping a sorted list of k (O(vocab) compares for the usual row), then one for
/// the softmax denominator.
inline void top_tokens(const float* x, int vocab, int k, TopToken* out) {
  float val[kMaxTopK] = {};
  int32_t idx[kMaxTopK] = {};
  int n = 0;
  auto offer = [&](int32_t j) {
    const float v = x[j];
    if (n == k && !ranks_before(v, j, val[k - 1], idx[k - 1])) return;
    int p = n < k ? n++ : k - 1;
    while (p > 0 && ranks_before(v, j, val[p - 1], idx[p - 1])) {
      val[p] = val[p - 1];
      idx[p] = idx[p - 1];
      --p;
    }
    val[p] = v;
    idx[p] = j;
  };
  // Blocks of 16 whose maximum (NaN skipped) is not above the list's last, a number, cannot
  // enter it (an equal value has a higher index): skipped after one vectorised max.
  constexpr int kBlock = 16;
  int32_t j = 0;
  for (; j + kBlock <= vocab; j += kBlock) {
    if (n == k && !std::isnan(val[k - 1]) && lane_max(std::span<const float>(x + j, kBlock), -INFINITY) <= val[k - 1])
      continue;
    for (int32_t i = j; i < j + kBlock; ++i) offer(i);
  }
  for (; j < vocab; ++j) offer(j);
  if (std::isnan(x[0]) && idx[0] != 0) {  // greedy's rule: token 0 first, the rest shift down
    int p = 0;
    while (p < k - 1 && idx[p] != 0) ++p;  // token 0 is in the list (p < k - 1) or drops out
    for (; p > 0; --p) val[p] = val[p - 1], idx[p] = idx[p - 1];
    val[0] = x[0];
    idx[0] = 0;
  }
  const float m = std::isnan(val[0]) && n > 1 ? val[1] : val[0];
  // Blocks of 256 summed in 16 float lanes (16 terms each), the blocks' sums in double.
  constexpr int kLanes = 16, kSumBlock = 256;
  double sum = 0;
  j = 0;
  for (; j + kSumBlock <= vocab; j += kSumBlock) {
    float lane[kLanes] = {};
    for (int i = 0; i < kSumBlock; i += kLanes)
      for (int l = 0; l < kLanes; ++l) lane[l] += exp_nonpositive(x[j + i + l] - m);
    float block = 0;
    for (float s : lane) block += s;
    sum += block;
  }
  for (; j < vocab; ++j) sum += exp_nonpositive(x[j] - m);
  const bool finite = std::isfinite(m) && sum > 0;
  for (int i = 0; i < k; ++i)
    out[i] = {idx[i], finite ? static_cast<float>(exp_nonpositive(val[i] - m) / sum) : 0.f};
}

}  // namespace spw

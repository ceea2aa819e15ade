// Host math over vocabulary rows, written so that the compiler vectorises it.
//
// exp_nonpositive: exp(x) for x <= 0 with no libm call and no branch, so loops over it
// vectorise: the softmax of a whole vocabulary row (decode/sampling.cpp) runs ~4x
// faster than std::exp in double (softmax of a 49k-token row: 0.09 ms instead of ~0.35 ms).
//
// Cephes' expf (kernels/common/expf_cephes.h: range reduction to |r| <= ln2 / 2, a
// polynomial for e^r), with 2^n built in the exponent bits. Relative error < 2.5e-7 over [-87.3, 0] (HostExp in
// tests/decode/test_decode_sampling.cpp).
// Inputs below about -87.7 (e^x < 2^-126.5), -inf and NaN give 0; positive inputs give 1.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>

#include "kernels/common/expf_cephes.h"

namespace spw {

inline float exp_nonpositive(float x) {
  // Clamped with two selects (NaN -> -100 -> 0); the rest is arithmetic: a branch would stop
  // loops over it from vectorising (GCC if-converts the selects only with -fno-trapping-math:
  // decode/CMakeLists.txt).
  x = x > -100.f ? x : -100.f;
  x = x < 0.f ? x : 0.f;
  // n = round(x log2 e): x log2 e <= 0, and truncation toward zero of (it - 0.5) rounds it.
  namespace c = expf_cephes;
  const int n = static_cast<int>(x * c::kLog2e - 0.5f);
  const float nf = static_cast<float>(n);
  float r = x - nf * c::kLn2Hi;
  r = r + nf * c::kLn2Lo;
  float y = c::kPoly[0];
  y = y * r + c::kPoly[1];
  y = y * r + c::kPoly[2];
  y = y * r + c::kPoly[3];
  y = y * r + c::kPoly[4];
  y = y * r + c::kPoly[5];
  y = y * (r * r) + r + 1.f;
  // 2^n in the exponent bits while n >= -126; below that the result is 0 (mask of all ones
  // from the sign of n + 126, cleared bits otherwise).
  const uint32_t below = static_cast<uint32_t>((n + 126) >> 31);
  const float two_n = std::bit_cast<float>(static_cast<uint32_t>(std::max(n, -126) + 127) << 23);
  return std::bit_cast<float>(std::bit_cast<uint32_t>(y * two_n) & ~below);
}

/// max(init, x[0], x[1], ...) over 8 independent lanes (vectorises without -ffast-math). A NaN
/// in x is skipped (std::max(m, NaN) = m); the maximum of greedy_token and of a softmax row.
inline float lane_max(std::span<const float> x, float init) {
  constexpr size_t kLanes = 8;
  float m[kLanes];
  std::fill_n(m, kLanes, init);
  size_t i = 0;
  for (; i + kLanes <= x.size(); i += kLanes)
    for (size_t j = 0; j < kLanes; ++j) m[j] = std::max(m[j], x[i + j]);
  for (; i < x.size(); ++i) m[0] = std::max(m[0], x[i]);
  return *std::max_element(m, m + kLanes);
}

}  // namespace spw

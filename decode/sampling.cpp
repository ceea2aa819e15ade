// Sampling helpers (see sampling.h). Loops over a vocabulary row are written to vectorise
// (8 independent lanes, exp without libm: kernels/common/host_math.h). Sums are float lanes over
// blocks of 64 values added in double, so they depend little on the order of float rounding.
#include "decode/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/common/error.h"
#include "kernels/common/host_math.h"
#include "runtime/model.h"

namespace spw::decode {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int32_t argmax(std::span<const float> logits) {
  SPW_CHECK(!logits.empty(), "argmax: empty logits");
  return rt::greedy_token(logits);
}

namespace {
constexpr size_t kLanes = 8;  // independent accumulators: lets the compiler vectorise the loops

// Largest value (NaN ignored; -inf for an all-NaN or all -inf row).
float row_max(std::span<const float> x) { return lane_max(x, -INFINITY); }

// Sum of f(x[i]) over the span, in double: float partial sums over kLanes lanes within blocks
// of 64 values (<= 8 terms per lane), added to a double per block. Vectorises; deterministic.
template <typename F>
double lane_sum(std::span<const float> x, F f) {
  double total = 0;
  size_t i = 0;
  for (; i + 64 <= x.size(); i += 64) {
    float acc[kLanes] = {};
    for (size_t k = 0; k < 64; k += kLanes)
      for (size_t j = 0; j < kLanes; ++j) acc[j] += f(x[i + k + j]);
    total += std::accumulate(acc, acc + kLanes, 0.0);
  }
  for (; i < x.size(); ++i) total += f(x[i]);
  return total;
}

// out[i] = exp((x[i] - shift) * scale) for shift = the row's max, scale > 0; returns their sum.
double exp_shifted(std::span<const float> x, float shift, float scale, float* out) {
  const float* in = x.data();
  for (size_t i = 0; i < x.size(); ++i) out[i] = exp_nonpositive((in[i] - shift) * scale);
  return lane_sum(std::span<const float>(out, x.size()), [](float v) { return v; });
}

// Sum of the entries >= t (t > 0).
double mass_at_least(std::span<const float> p, float t) {
  return lane_sum(p, [t](float v) { return v >= t ? v : 0.f; });
}

// probs = exp((logits - max) * scale), normalised (probs has logits' size); a row with no
// finite maximum (every logit -inf or NaN) or whose weights all underflow becomes the one-hot
// argmax.
void normalised_exp(std::span<const float> logits, float scale, std::span<float> probs) {
  const float m = row_max(logits);
  const double sum = std::isfinite(m) ? exp_shifted(logits, m, scale, probs.data()) : 0.0;
  if (!(sum > 0)) {
    std::fill(probs.begin(), probs.end(), 0.f);
    probs[argmax(logits)] = 1.f;
    return;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (auto& p : probs) p *= inv;
}
}  // namespace

double positive_sum(std::span<const float> weights) {
  return lane_sum(weights, [](float v) { return v > 0.f ? v : 0.f; });  // NaN > 0 is false
}

void softmax(std::span<const float> logits, std::vector<float>& probs) {
  probs.resize(logits.size());
  softmax(logits, std::span<float>(probs));
}

void softmax(std::span<const float> logits, std::span<float> probs) {
  SPW_CHECK(!logits.empty(), "softmax: empty logits");
  SPW_CHECK(probs.size() == logits.size(), "softmax: {} outputs for {} logits", probs.size(), logits.size());
  normalised_exp(logits, 1.f, probs);
}

void sampling_probs(std::span<const float> logits, const SamplingParams& params,
                    std::vector<float>& probs) {
  SPW_CHECK(!logits.empty(), "sampling_probs: empty logits");
  SPW_CHECK_ARG(params.top_p > 0.f && params.top_p <= 1.f, "sampling", "top_p", params.top_p,
                "must be in (0, 1]");
  const size_t n = logits.size();
  if (params.greedy()) {
    probs.assign(n, 0.f);
    probs[argmax(logits)] = 1.f;
    return;
  }
  probs.resize(n);
  normalised_exp(logits, static_cast<float>(1.0 / params.temperature), probs);
  if (params.top_p >= 1.f) return;
  // The nucleus lies inside S = {p >= t} as soon as mass(S) >= top_p (every token outside S
  // is less likely than every token in S), so only S is sorted: a few hundred tokens instead
  // of the whole vocabulary. Ties keep index order, exactly as a full stable sort would.
  const std::span<const float> probs_view(probs);
  float t = row_max(probs_view);
  while (mass_at_least(probs, t) < params.top_p && t > 0.f) t = t > 1e-30f ? t / 16 : 0.f;
  thread_local std::vector<int32_t> order;  // scratch reused across calls: no allocation per row
  thread_local std::vector<float> kept;
  order.clear();
  if (order.capacity() < n) order.reserve(n), kept.reserve(n);  // once per thread and vocabulary
  for (size_t b = 0; b < n; b += 64) {  // blocks whose largest value is below t hold none of S
    const size_t e = std::min(n, b + 64);
    if (row_max(probs_view.subspan(b, e - b)) < t) continue;
    for (size_t i = b; i < e; ++i)
      if (probs[i] >= t) order.push_back(static_cast<int32_t>(i));
  }
  // most likely first, ties in index order: a stable sort's order, without its buffer
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); });
  double cum = 0;
  size_t keep = 0;
  while (keep < order.size() && cum < params.top_p) cum += probs[order[keep++]];
  kept.resize(keep);
  for (size_t i = 0; i < keep; ++i) kept[i] = static_cast<float>(probs[order[i]] / cum);
  std::fill(probs.begin(), probs.end(), 0.f);
  for (size_t i = 0; i < keep; ++i) probs[order[i]] = kept[i];
}

int32_t sample(std::span<const float> weights, Rng& rng) {
  const double total = positive_sum(weights);
  if (!(total > 0)) return argmax(weights);
  const double u = rng.uniform() * total;
  // Skip whole blocks by their (vectorised) sums, then walk the block holding u.
  constexpr size_t kBlock = 256;
  const size_t n = weights.size();
  double cum = 0;
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    const double b = positive_sum(weights.subspan(i, kBlock));
    if (cum + b > u) break;
    cum += b;
  }
  for (; i < n; ++i) {
    if (!(weights[i] > 0.f)) continue;
    cum += weights[i];
    if (u < cum) return static_cast<int32_t>(i);
  }
  // u fell past the last cumulative sum by rounding: the last token of positive weight.
  for (size_t j = n; j-- > 0;)
    if (weights[j] > 0.f) return static_cast<int32_t>(j);
  return argmax(weights);  // unreachable: total > 0
}

}  // namespace spw::decode

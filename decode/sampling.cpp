// Sampling helpers (see sampling.h). Sums are in double so that sampling does not depend on
// the summation order of float rounding more than necessary.
#include "decode/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/common/error.h"
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

void softmax(std::span<const float> logits, std::vector<float>& probs) {
  probs.resize(logits.size());
  const float m = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    probs[i] = std::exp(logits[i] - m);
    sum += probs[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (auto& p : probs) p *= inv;
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
  const float m = *std::max_element(logits.begin(), logits.end());
  const double inv_t = 1.0 / params.temperature;
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    probs[i] = static_cast<float>(std::exp((logits[i] - m) * inv_t));
    sum += probs[i];
  }
  for (auto& p : probs) p = static_cast<float>(p / sum);
  if (params.top_p >= 1.f) return;
  // The nucleus lies inside S = {p >= t} as soon as mass(S) >= top_p (every token outside S
  // is less likely than every token in S), so only S is sorted: a few hundred tokens instead
  // of the whole vocabulary. Ties keep index order, exactly as a full stable sort would.
  float t = *std::max_element(probs.begin(), probs.end());
  std::vector<int32_t> order;
  while (true) {
    order.clear();
    double mass = 0;
    for (size_t i = 0; i < n; ++i)
      if (probs[i] >= t) {
        order.push_back(static_cast<int32_t>(i));
        mass += probs[i];
      }
    if (mass >= params.top_p || t <= 0.f) break;
    t = t > 1e-30f ? t / 16 : 0.f;
  }
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return probs[a] > probs[b]; });
  double cum = 0;
  size_t keep = 0;
  while (keep < order.size() && cum < params.top_p) cum += probs[order[keep++]];
  std::vector<float> kept(keep);
  for (size_t i = 0; i < keep; ++i) kept[i] = static_cast<float>(probs[order[i]] / cum);
  std::fill(probs.begin(), probs.end(), 0.f);
  for (size_t i = 0; i < keep; ++i) probs[order[i]] = kept[i];
}

int32_t sample(std::span<const float> weights, Rng& rng) {
  double total = 0;
  for (float w : weights) total += std::max(0.f, w);
  if (!(total > 0)) return argmax(weights);
  const double u = rng.uniform() * total;
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0.f) continue;
    cum += weights[i];
    last = static_cast<int32_t>(i);
    if (u < cum) return last;
  }
  return last;
}

}  // namespace spw::decode

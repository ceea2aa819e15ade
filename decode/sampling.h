// Sampling from logits: temperature + top-p, a small seeded RNG with the same stream on every
// platform (xoshiro256** seeded by splitmix64), argmax with a fixed tie rule (lowest index).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace spw::decode {

struct SamplingParams {
  float temperature = 0.f;  // 0 = greedy (argmax)
  float top_p = 1.f;        // nucleus: keep the smallest most-likely set with mass >= top_p
  uint64_t seed = 0;
  // TEST HOOK ONLY: resample rejected tokens from p instead of the residual max(0, p - q).
  // This breaks exactness on purpose; the stochastic test asserts that chi-square catches it.
  bool test_broken_residual = false;

  bool greedy() const { return temperature <= 0.f; }
};

class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  double uniform();  // [0, 1), 53 bits
 private:
  uint64_t s_[4];
};

/// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);  // rt::greedy_token (one tie/NaN rule everywhere)
/// The distribution sampled from: softmax(logits / temperature) restricted to the top-p
/// nucleus and renormalised. temperature <= 0 gives the one-hot argmax distribution, and so
/// does a row without a finite maximum (every logit -inf or NaN). Vectorised (exp in float,
/// kernels/common/host_math.h; sums in double): ~0.09 ms for a 49k-token row (one EPYC core).
void sampling_probs(std::span<const float> logits, const SamplingParams& params,
                    std::vector<float>& probs);
/// Plain softmax (temperature 1, no truncation); same rules as sampling_probs.
void softmax(std::span<const float> logits, std::vector<float>& probs);
/// The same into `probs`, which must have logits' size (a row of a caller's buffer).
void softmax(std::span<const float> logits, std::span<float> probs);
/// Draws an index from a (not necessarily normalised, non-negative) weight vector.
/// All-zero weights: returns the argmax (never happens for a proper distribution).
/// Only an index of positive weight is returned.
int32_t sample(std::span<const float> weights, Rng& rng);
/// Sum of the positive entries (NaN counts as 0), in double.
double positive_sum(std::span<const float> weights);

}  // namespace spw::decode

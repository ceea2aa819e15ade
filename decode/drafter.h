// Drafter: anything that proposes draft tokens for a sequence (Max-Gram, a small model,
// a cascade of drafters).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace spw::decode {

/// A draft of k tokens, with the drafter's probability of each where it has one.
struct Draft {
  std::vector<int32_t> tokens;
  // Empty, or one row per token: the drafter's full distribution q(. | context, draft[:i])
  // over the vocabulary (needed for exact stochastic verification). Greedy drafters that have
  // no distribution leave it empty and are treated as proposing with probability 1.
  std::vector<std::vector<float>> probs;
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  /// Short name used in metrics and config strings, e.g. "maxgram".
  virtual std::string name() const = 0;
  /// Proposes up to k tokens continuing `context` (prompt + generated so far).
  virtual Draft propose(std::span<const int32_t> context, int k) = 0;
};

}  // namespace spw::decode

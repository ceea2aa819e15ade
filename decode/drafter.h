// Drafter: anything that proposes draft tokens for a sequence (Max-Gram, a bigram table, a
// small model, a cascade of drafters). One Drafter instance serves ONE sequence (it may keep
// an incremental index or a KV cache of that sequence); a batch uses one instance per sequence,
// made by a DrafterFactory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/common/top_tokens.h"

namespace spw::decode {

class NextTokens;

/// A draft of k tokens, with the drafter's probability of each where it has one.
struct Draft {
  std::vector<int32_t> tokens;
  // Empty, or one row per token: the drafter's full distribution q(. | context, draft[:i])
  // over the vocabulary (needed for exact stochastic verification). Greedy drafters that have
  // no distribution leave it empty and are treated as proposing with probability 1 (one-hot q).
  std::vector<std::vector<float>> probs;
  // Empty, or one name per token: which drafter proposed it ("maxgram", "bigram", "self:8",
  // ...). Used for acceptance-per-drafter metrics.
  std::vector<std::string> sources;
  // Empty, or one per token: the drafter's own estimate of the token's probability given the
  // text and the draft before it (a bigram table's probability), < 0 where it has none. Used to
  // rank token-tree nodes (DraftLength::cost); verification never reads it.
  std::vector<float> scores;
  /// Appends a token with its source and score, keeping `scores` aligned with `tokens`.
  void push(int32_t token, std::string source, float score = -1.f) {
    if (score >= 0.f || !scores.empty()) scores.resize(tokens.size(), -1.f), scores.push_back(score);
    tokens.push_back(token);
    sources.push_back(std::move(source));
  }
};

/// Neural forward passes a drafter ran, and the standardized cost of one (for SWI).
struct DraftCost {
  std::string name;
  int64_t forwards = 0;
  double cost_per_forward = 0;  // e.g. parameter count; statistical drafters cost 0
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  /// Short name used in metrics and config strings, e.g. "maxgram".
  virtual std::string name() const = 0;
  /// Proposes up to k tokens continuing `context` (prompt + generated so far).
  virtual Draft propose(std::span<const int32_t> context, int k) = 0;
  /// Proposes up to `width` alternative drafts (each up to k tokens) for token-tree
  /// verification. Default: the one chain from propose().
  virtual std::vector<Draft> propose_tree(std::span<const int32_t> context, int k, int width) {
    (void)width;
    return {propose(context, k)};
  }
  /// Forgets the sequence (a new prompt follows).
  virtual void reset() {}
  /// Appends this drafter's neural forward counts (and those of its children).
  virtual void collect_costs(std::vector<DraftCost>& out) const { (void)out; }
  /// How many of the target's most likely next tokens (<= kMaxTopK) this drafter wants to see
  /// for the rows the target computed; 0 (default): none. The decoder then ranks every row
  /// (Model::forward_topk) and calls observe_target() after each pass and after the prefill.
  virtual int wants_target_topk() const { return 0; }
  /// The target's top tokens (most likely first, with probabilities) after `token` in one row
  /// it computed: the prompt's rows, and each pass's rows (the accepted path's last, so that
  /// an observation made in the text that was kept wins over one made in a rejected branch).
  virtual void observe_target(int32_t token, std::span<const TopToken> next) {
    (void)token;
    (void)next;
  }
  /// The next-token table this drafter reads (a bigram table, recycled or not), or nullptr
  /// (default). With DraftLength::cost and GenerateParams::grow_tree the decoder grows token
  /// trees from it (CostAwareTree::grow).
  virtual const NextTokens* next_tokens() const { return nullptr; }
};

/// Makes one fresh Drafter per sequence. An empty factory means plain autoregressive decoding.
using DrafterFactory = std::function<std::unique_ptr<Drafter>()>;

}  // namespace spw::decode

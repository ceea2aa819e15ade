// ModelDrafter: a neural drafter over the Model interface: a smaller model sharing the
// target's vocabulary, or the target's first L layers (self-speculative: just another Model
// instance loaded with max_layers). It keeps its own sequence in that model and reuses the
// cached prefix between calls (rolling back to the longest common prefix of the new context),
// so a k-token proposal costs 1 + (k - 1) small forwards after the first call.
//
// Greedy (temperature 0): proposes argmax tokens, no probabilities. Sampling: draws from
// sampling_probs(logits) and records that distribution as q for exact verification.
#pragma once

#include <memory>

#include "decode/drafter.h"
#include "decode/sampling.h"

namespace spw::rt {
class Model;
}

namespace spw::decode {

class ModelDrafter final : public Drafter {
 public:
  /// Throws when the model's vocabulary size differs from target_vocab.
  ModelDrafter(std::shared_ptr<rt::Model> model, int target_vocab, std::string name,
               SamplingParams sampling = {}, double cost_per_forward = 0);
  ~ModelDrafter() override;

  std::string name() const override { return name_; }
  void propose_into(std::span<const int32_t> context, int k, Draft& out) override;
  /// The chain plus up to width - 1 one-token alternatives (next most likely first tokens).
  void propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) override;
  /// Room for the tokens it feeds its model (its cache's copy of them): `max_tokens`.
  void reserve(size_t max_tokens) override;
  void reset() override;
  void collect_costs(std::vector<DraftCost>& out) const override;

  /// One forward over context + draft: softmax rows (temperature 1) [draft.size() + 1][vocab],
  /// row after row, row i = this model's distribution after context + draft[:i]; valid until
  /// the next call. Empty when it does not fit.
  std::span<const float> score(std::span<const int32_t> context, std::span<const int32_t> draft);
  int64_t forwards() const { return forwards_; }
  int vocab_size() const { return vocab_; }

 private:
  // Feeds context[lcp:] + extra; returns the logits rows of the last `rows` fed tokens in
  // *out (the model's forward_view: valid until its next one), or (greedy != nullptr) only
  // their greedy tokens.
  bool feed(std::span<const int32_t> context, std::span<const int32_t> extra, size_t rows,
            std::span<const float>* out, std::vector<int32_t>* greedy);

  std::shared_ptr<rt::Model> model_;
  std::string name_;
  SamplingParams sampling_;
  double cost_;
  Rng rng_;
  int vocab_;
  int seq_ = -1;
  std::vector<int32_t> cached_;
  int64_t forwards_ = 0;
  // scratch kept between calls: the tokens fed, a distribution, greedy tokens, the tree's first
  // tokens, score()'s rows
  std::vector<int32_t> fed_, top_, order_;
  std::vector<float> q_, score_rows_;
};

}  // namespace spw::decode

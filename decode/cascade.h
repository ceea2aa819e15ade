// Cascade: CS Drafting's composition of drafters, itself a Drafter.
//
// Vertical cascade (reviewer R = a ModelDrafter, lower drafter L, lenience l >= 1, round
// length m): propose(context, k) repeats until k tokens are drafted:
//   1. L proposes up to m tokens after context + drafted;
//   2. R scores them in ONE forward (its distribution p_R at every position);
//   3. R accepts L's token x at position i when x == argmax p_R(i), or, when l > 1, when
//      p_R(i)(x) > q_L(x) / l, where q_L(x) is L's probability of x (1 for deterministic
//      drafters such as Max-Gram) — the rule of the reference csd.py / model.py `review`;
//      the first token failing both ends the round;
//   4. the accepted tokens and then R's own argmax at the first rejected position (or after
//      the last token) are appended to the draft.
// Lenience applies only between drafters: the target always verifies exactly (the cascade's
// draft carries no probabilities, i.e. one-hot q, which keeps stochastic decoding exact).
//
// Horizontal cascade: a list of (drafter, positions); drafter i proposes the next positions_i
// tokens after context + what the previous ones drafted (larger drafters first: early
// positions are accepted most often). When any part has probabilities, parts without them get
// one-hot rows so the target can still use q.
#pragma once

#include <memory>
#include <vector>

#include "decode/drafter.h"
#include "decode/model_drafter.h"

namespace spw::decode {

class Cascade final : public Drafter {
 public:
  struct Part {
    std::unique_ptr<Drafter> drafter;
    int positions = 1;
  };
  static std::unique_ptr<Cascade> vertical(std::unique_ptr<ModelDrafter> reviewer,
                                           std::unique_ptr<Drafter> lower, double lenience = 1.0,
                                           int round_tokens = 4, std::string name = "");
  static std::unique_ptr<Cascade> horizontal(std::vector<Part> parts, std::string name = "");

  std::string name() const override { return name_; }
  void propose_into(std::span<const int32_t> context, int k, Draft& out) override;
  /// Passed on to every drafter of the cascade.
  void reserve(size_t max_tokens) override;
  void reset() override;
  void collect_costs(std::vector<DraftCost>& out) const override;
  /// The most any part wants; observations go to every part (a reviewer model ignores them).
  int wants_target_topk() const override;
  void observe_target(int32_t token, std::span<const TopToken> next) override;

  /// Vertical: tokens the lower drafter proposed / the reviewer accepted (lenience test).
  int64_t lower_proposed() const { return lower_proposed_; }
  int64_t lower_accepted() const { return lower_accepted_; }

 private:
  Cascade() = default;
  void propose_vertical(int k, Draft& out);
  void propose_horizontal(int k, Draft& out);

  bool vertical_ = false;
  std::string name_;
  std::unique_ptr<ModelDrafter> reviewer_;
  std::unique_ptr<Drafter> lower_;
  double lenience_ = 1.0;
  int round_ = 4;
  std::vector<Part> parts_;
  // the drafters' names, asked once (a draft names a token's drafter; name() returns a copy)
  std::string reviewer_name_, lower_name_;
  std::vector<std::string> part_names_;
  int64_t lower_proposed_ = 0, lower_accepted_ = 0;
  // propose_into's scratch, kept between calls: the context grown by the draft, a part's draft
  std::vector<int32_t> ctx_;
  Draft part_;
  std::vector<char> has_row_;
  std::vector<float> rows_;  // horizontal: the parts' probability rows
};

/// The lenient acceptance rule of step 3 above (exposed for tests).
bool lenient_accept(std::span<const float> reviewer_probs, int32_t token, double draft_prob,
                    double lenience);

}  // namespace spw::decode

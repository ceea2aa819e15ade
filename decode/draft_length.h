// Cost-aware draft length (DraftLength::cost): each step, the chain length that maximises the
// expected tokens a target pass emits per unit of the pass's cost, from the target's cost curve
// t(n) (a pass of n tokens per sequence) and this sequence's recent acceptance per position.
//
//   E(L) = 1 + sum_{j=1..L} prod_{i=1..j} c_i        (tokens emitted by a pass with L drafts)
//   L*   = argmax_{1 <= L <= k} E(L) / t(1 + L)
//
// c_i is the acceptance of draft position i given that positions 1..i-1 were accepted, counted
// with exponential forgetting (the last ~10 tries weigh most) over a Beta(1, 1) prior (0.5 for
// a position never tried), separately after a step whose whole draft was accepted and after
// one that was not (Max-Gram's matches come in streaks: inside one, long drafts pay). On a flat cost curve (a GPU
// pass of a small model costs the same for 1 or 8 tokens) L* is the longest draft that the
// acceptance still pays for; on a steep one (a CPU) it stays short. At least one token is
// drafted, so the acceptance keeps being measured. The length depends only on earlier steps,
// so verification stays exact. In a batch each sequence chooses as if its tokens alone set the
// pass's cost (t is per sequence; batch-aware costs are not modelled).
#pragma once

#include <span>
#include <vector>

namespace spw::decode {

/// t(n) for n = 1..size() of `costs` (any positive unit), linear beyond the last two points
/// (constant after a single point). Throws spw::Error naming a bad value.
class PassCostCurve {
 public:
  PassCostCurve() = default;
  explicit PassCostCurve(std::vector<double> costs);
  /// Cost of a pass of n >= 1 tokens.
  double at(int n) const;

 private:
  std::vector<double> t_;
};

class CostAwareLength {
 public:
  explicit CostAwareLength(const PassCostCurve* curve) : curve_(curve) {}
  /// Draft length for the next step, in [min(1, k_max), k_max].
  int choose(int k_max) const;
  /// After a step that proposed `proposed` tokens, of which the first `accepted` were accepted.
  void observe(int proposed, int accepted);
  /// Current estimate of c_i (position i = 1, 2, ...) in the current state (after a step whose
  /// draft was wholly accepted, or not).
  double acceptance(int position) const;

 private:
  // c_i in the current state from c_{i-1} = prev (0.5 before position 1).
  double shrunk(int i, double prev) const;
  static constexpr double kForget = 0.9;
  const PassCostCurve* curve_;
  // Decayed counts per position (index i - 1), kept apart after a step whose whole draft was
  // accepted (hot = 1) and after any other (hot = 0): acceptance comes in streaks.
  std::vector<double> tried_[2], accepted_[2];
  int hot_ = 0;
};

}  // namespace spw::decode

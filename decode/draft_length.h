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
//
// Token trees (CostAwareTree): the drafter's whole tree (width w, depth k) is pruned each step to
// the nodes that pay. P(v), the chance that node v is accepted, is the product along its path of
// conditional acceptances c(source, class, depth) = P(v accepted | its parent accepted), where
// source is the drafter that proposed v and class is the bucket of the drafter's own score for
// v (Draft::scores: a bigram table's probability p, bucket floor(-log2 p)) or, for a token it did
// not score, v's rank among its siblings (0 = the first draft's token). c is counted like the
// chains' c_i (forgetting, streak state, a depth shrunk towards the one above it); the prior at
// depth 0 is 0.75 * 2^-bucket (the bucket's middle) or 0.5 / (1 + rank). Nodes are ranked by P
// (a child never above its parent, so every prefix of the ranking is a tree) and the prefix of
// n >= 1 nodes that maximises (1 + sum of its P) / t(1 + n) is verified. With w = 1 this is the
// chains' rule applied after drafting. A node is only counted once verified, so the prior also
// decides what gets explored: replays (decode/README.md) chose these priors over tighter ones.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "decode/bigram.h"
#include "decode/token_tree.h"

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
  /// (Its counts have room for kMaxDraftTokens positions: observing never allocates.)
  explicit CostAwareLength(const PassCostCurve* curve);
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

/// One sequence's tree pruning (the rule at the top of this file). Its const methods share
/// working memory kept in the object: one thread at a time.
class CostAwareTree {
 public:
  explicit CostAwareTree(const PassCostCurve* curve) : curve_(curve) {}
  /// The nodes of `tree` to verify this step: ascending indices, closed under parents; at least
  /// one node when the tree has any (acceptance keeps being measured).
  std::vector<int32_t> choose(const TokenTree& tree) const;
  /// The same into `out`. Like observe() and grow(), it works in scratch kept by this object,
  /// so that after reserve() a decoder's step allocates nothing here.
  void choose(const TokenTree& tree, std::vector<int32_t>& out) const;
  /// Sizes that scratch for trees of up to `nodes` nodes (a drafter's, before pruning) and
  /// `depth` levels, grown to at most `grown` nodes from rows of up to 64 candidates, with up to
  /// 4 drafters' names on their nodes (more, or larger trees, grow it when first seen).
  void reserve(int nodes, int grown, int depth);
  /// After verifying `tree` (the pruned one): `accepted_path` holds its accepted nodes, root's
  /// child first (verify_*: VerifyResult::path). Every child of the root or of an accepted node
  /// was tried; each counts as accepted or not.
  void observe(const TokenTree& tree, std::span<const int32_t> accepted_path);
  /// Current estimate of c(source, rank, depth) for an unscored node in the current streak state.
  double acceptance(const std::string& source, int rank, int depth) const;
  /// The same for a node its drafter scored `score` (in [0, 1]).
  double scored_acceptance(const std::string& source, float score, int depth) const;
  /// Each node's estimated P(accepted) (the product of c along its path).
  std::vector<double> node_probabilities(const TokenTree& tree) const;
  /// `base` (a drafter's tree, any size) grown best-first (see the top of this file) to at
  /// most `max_nodes` nodes of depth < max_depth: the most likely of base's nodes and of the
  /// candidates `table` lists after `last` (the pending token: the root's children) and after
  /// each node taken. Returns base's nodes taken, in base's order, then the added ones in the
  /// order taken (parents before children). Ties go to base's nodes, then to the earlier
  /// candidate, so the result depends only on its inputs and the counts.
  TokenTree grow(const TokenTree& base, int32_t last, const NextTokens& table, int max_nodes, int max_depth) const;
  /// The same into `out` (cleared first; must not be `base`).
  void grow(const TokenTree& base, int32_t last, const NextTokens& table, int max_nodes, int max_depth,
            TokenTree& out) const;

 private:
  static constexpr double kForget = 0.9;
  static constexpr int kRanks = 16;         // ranks >= 15 share the last counters
  static constexpr int kScoreBuckets = 16;  // score in [2^-(b+1), 2^-b): bucket b (the last: below)
  static constexpr int kClasses = kRanks + kScoreBuckets;
  // A node's class: its sibling rank, or, when its drafter scored it, its score's bucket.
  static int node_class(int rank, float score);
  static double class_prior(int cls);
  double estimate(const std::string& source, int cls, int depth) const;
  // Decayed tries / acceptances per [class][depth], per streak state, for one source.
  struct Counts {
    std::vector<double> tried[2][kClasses], accepted[2][kClasses];
  };
  // c(class, d) of the source whose counts these are (null: none yet) at d = depth; with
  // `column`, every d = 0..depth is written there too (one pass: each depth shrinks to the one above).
  double estimate(const Counts* counts, int cls, int depth, double* column = nullptr) const;
  // c(class, d) of one source for d < depths, each class's depths estimated once, in one pass,
  // on first use (node_probabilities and grow read many nodes of few classes).
  class Columns {
   public:
    // `c` holds the estimates ([class][depth]; -1: not estimated yet): caller-owned scratch
    Columns(const CostAwareTree& tree, const std::string& source, int depths, std::vector<double>& c);
    double at(int cls, int depth);

   private:
    const CostAwareTree* tree_;
    const Counts* counts_;  // null: no counts for the source yet
    int depths_;
    std::vector<double>* c_;
  };
  // Each node's class (its sibling rank or score bucket), into scratch_.cls; drafter name ("" where missing).
  void classify(const TokenTree& tree) const;
  static const std::string& source_of(const TokenTree& tree, int v);
  // node_probabilities into scratch_.p (valid until the next call)
  const std::vector<double>& probabilities(const TokenTree& tree) const;
  // grow()'s work lists (see there)
  struct Run {
    double c;
    int pos, end;  // its untaken candidates in `cands`
  };
  struct Row {
    int parent, depth;  // ref of the node it hangs below; the candidates' depth
    double p_parent;
    int run_begin, run_end;  // its runs in `runs`
  };
  struct Item {
    double p;
    int64_t order;  // push order (base nodes: 0): ties go to base nodes, then to the earlier push
    int node;       // base node, or -1: the head of run `run` of row `row`
    int row, run;
    bool operator<(const Item& o) const {  // (a max-heap: the largest on top)
      if (p != o.p) return p < o.p;
      if (order != o.order) return order > o.order;
      return node > o.node;
    }
  };
  struct Added {
    int parent;  // ref
    BigramTable::Entry entry;
    int depth;
  };
  // Working memory of choose / observe / grow, kept between calls (capacity only: no state).
  struct Scratch {
    std::vector<int32_t> cls, seen, kid_start, kids, fill, keep, index_of;
    std::vector<double> p;
    std::deque<std::vector<double>> columns;  // one per source of a tree (a deque: stable)
    std::vector<std::pair<const std::string*, Columns>> sources;
    std::vector<double> table_columns;
    std::vector<char> flags;
    std::vector<BigramTable::Entry> cands;
    std::vector<Run> runs;
    std::vector<Row> rows;
    std::vector<Item> heap;
    std::vector<Added> added;
  };
  const PassCostCurve* curve_;
  std::map<std::string, Counts> counts_;
  int hot_ = 0;
  mutable Scratch scratch_;
};

}  // namespace spw::decode

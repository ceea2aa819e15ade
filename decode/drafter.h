// Drafter: anything that proposes draft tokens for a sequence (Max-Gram, a bigram table, a
// small model, a cascade of drafters). One Drafter instance serves ONE sequence (it may keep
// an incremental index or a KV cache of that sequence); a batch uses one instance per sequence,
// made by a DrafterFactory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/common/top_tokens.h"

namespace spw::decode {

class NextTokens;

/// Longest draft the decoder asks for (a chain's length, a tree's depth).
inline constexpr int kMaxDraftTokens = 64;
/// Most branches of a token tree (GenerateParams::tree_width).
inline constexpr int kMaxTreeWidth = 16;

/// The drafter name of each token of a draft or tree, as a list of strings that keeps its
/// strings' buffers: clear() and shrinking keep the entries past size(), and a later push or
/// resize assigns into them, so a list refilled every step allocates nothing once warm, also for
/// names too long for the string's inline buffer (a `model:PATH` drafter's).
class SourceNames {
 public:
  using value_type = std::string;
  using const_iterator = const std::string*;
  using iterator = const_iterator;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::string& operator[](size_t i) const { return names_[i]; }
  const_iterator begin() const { return names_.data(); }
  const_iterator end() const { return names_.data() + size_; }
  void clear() { size_ = 0; }
  void reserve(size_t n) {
    if (names_.size() < n) names_.resize(n);
  }
  void push_back(std::string_view name) {
    if (size_ == names_.size()) names_.emplace_back();
    names_[size_++].assign(name);
  }
  /// n entries: existing ones kept, new ones set to `name`.
  void resize(size_t n, std::string_view name = {}) {
    if (names_.size() < n) names_.resize(n);
    for (size_t i = size_; i < n; ++i) names_[i].assign(name);
    size_ = n;
  }
  /// n entries, every one `name`.
  void assign(size_t n, std::string_view name) {
    size_ = 0;
    resize(n, name);
  }
  friend bool operator==(const SourceNames& a, const SourceNames& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator==(const SourceNames& a, const std::vector<std::string>& b) {
    return a.size_ == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }

 private:
  std::vector<std::string> names_;  // the first size_ are the list; the rest keep their buffers
  size_t size_ = 0;
};

/// A draft of k tokens, with the drafter's probability of each where it has one.
struct Draft {
  std::vector<int32_t> tokens;
  // Empty, or one row per token, row after row: the drafter's full distribution
  // q(. | context, draft[:i]) over the vocabulary ([tokens.size()][vocab], needed for exact
  // stochastic verification). Greedy drafters that have no distribution leave it empty and are
  // treated as proposing with probability 1 (one-hot q).
  std::vector<float> probs;
  // Empty, or one name per token: which drafter proposed it ("maxgram", "bigram", "self:8",
  // ...). Used for acceptance-per-drafter metrics.
  SourceNames sources;
  // Empty, or one per token: the drafter's own estimate of the token's probability given the
  // text and the draft before it (a bigram table's probability), < 0 where it has none. Used to
  // rank token-tree nodes (DraftLength::cost); verification never reads it.
  std::vector<float> scores;
  /// Appends a token with its source and score, keeping `scores` aligned with `tokens`.
  void push(int32_t token, std::string_view source, float score = -1.f) {
    if (score >= 0.f || !scores.empty()) scores.resize(tokens.size(), -1.f), scores.push_back(score);
    tokens.push_back(token);
    sources.push_back(source);
  }
  /// Empties the draft and keeps its vectors' capacity (and its names' buffers), so that a
  /// drafter refilling the caller's draft every step allocates nothing once the draft has been
  /// as long before.
  void clear() {
    tokens.clear();
    probs.clear();
    sources.clear();
    scores.clear();
  }
  /// Room for `n` tokens (and their sources and scores; probability rows grow on first use).
  void reserve(size_t n) {
    tokens.reserve(n);
    sources.reserve(n);
    scores.reserve(n);
  }
  /// Entries of one probability row (the vocabulary's size), 0 without rows.
  size_t prob_width() const { return tokens.empty() ? 0 : probs.size() / tokens.size(); }
  /// Token i's probability row (needs probs).
  std::span<const float> prob_row(size_t i) const {
    const size_t w = prob_width();
    return {probs.data() + i * w, w};
  }
  /// Keeps the first n tokens (and their sources, scores and probability rows).
  void truncate(size_t n) {
    if (n >= tokens.size()) return;
    if (!probs.empty()) probs.resize(n * prob_width());
    tokens.resize(n);
    if (sources.size() > n) sources.resize(n);
    if (scores.size() > n) scores.resize(n);
  }
};

/// The drafts of one token-tree proposal, in a pool the caller keeps between steps: the first
/// size() drafts are the current proposal's; those past it keep their capacity for the next.
class DraftSet {
 public:
  /// Forgets the proposal (the drafts stay allocated).
  void clear() { size_ = 0; }
  /// Appends an empty draft (a pooled one, cleared) and returns it; references to earlier
  /// drafts may be invalidated.
  Draft& add() {
    if (size_ == pool_.size()) pool_.emplace_back();
    Draft& d = pool_[size_++];
    d.clear();
    return d;
  }
  /// Pools at least `drafts` drafts, each with room for `tokens` tokens (the proposal stays).
  void reserve(size_t drafts, size_t tokens) {
    if (pool_.size() < drafts) pool_.resize(drafts);
    for (auto& d : pool_) d.reserve(tokens);
  }
  /// Drops the last draft (back to the pool).
  void pop_back() { --size_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Draft& operator[](size_t i) { return pool_[i]; }
  const Draft& operator[](size_t i) const { return pool_[i]; }
  Draft& back() { return pool_[size_ - 1]; }
  std::span<Draft> drafts() { return {pool_.data(), size_}; }
  std::span<const Draft> drafts() const { return {pool_.data(), size_}; }
  Draft* begin() { return pool_.data(); }
  Draft* end() { return pool_.data() + size_; }
  const Draft* begin() const { return pool_.data(); }
  const Draft* end() const { return pool_.data() + size_; }

 private:
  std::vector<Draft> pool_;
  size_t size_ = 0;
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
  /// Proposes up to k tokens continuing `context` (prompt + generated so far) into `out`,
  /// which it clears first. The decoder passes the same draft every step, so a drafter that
  /// only appends to it allocates nothing once warm (the statistical drafters do not).
  virtual void propose_into(std::span<const int32_t> context, int k, Draft& out) = 0;
  /// Proposes up to `width` alternative drafts (each up to k tokens) for token-tree
  /// verification into `out`, which it clears first. Default: the one chain of propose_into().
  virtual void propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) {
    (void)width;
    out.clear();
    propose_into(context, k, out.add());
  }
  /// propose_into() into a new draft (tests, one-off calls).
  Draft propose(std::span<const int32_t> context, int k) {
    Draft d;
    propose_into(context, k, d);
    return d;
  }
  /// propose_tree_into() into new drafts (tests, one-off calls).
  std::vector<Draft> propose_tree(std::span<const int32_t> context, int k, int width) {
    DraftSet set;
    propose_tree_into(context, k, width, set);
    return {set.begin(), set.end()};
  }
  /// Sizes this drafter's per-sequence state for contexts of up to `max_tokens` tokens (its
  /// draft's included), so that it does not grow during decoding (the decoder calls it once
  /// per sequence, with what its prompt and max_new_tokens can reach). Default: nothing.
  virtual void reserve(size_t max_tokens) { (void)max_tokens; }
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

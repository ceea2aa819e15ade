// Max-Gram drafter: proposes the continuation of the longest suffix of the current text
// (prompt + generated) that occurred earlier in it; the most recent occurrence wins.
//
// Index: for every n in [min_n, max_n] a hash map from the hash of an n-gram to the END
// position of its most recent occurrence, plus a per-position link to the previous
// occurrence of the same n-gram (so several distinct continuations can be listed for a
// token tree). Appending a token costs O(max_n) hash updates; the context may also shrink
// (a cascade proposes from context + a discarded draft): entries are removed in reverse
// order, O(max_n) per dropped token. Hash hits are confirmed by comparing the tokens.
//
// Fill rule: a match proposes the known tokens that followed it (at most k). If that gives
// fewer than k tokens (or there is no match), the rest comes from the bigram chain when a
// BigramTable is attached (exactly k tokens then, or fewer with a bigram_min_p confidence
// cut); without a table a match is extended
// periodically (the copy continues into its own proposed tokens: repetition loops).
// `recycle` (spec `maxgram+recycle`): the table is read through the target's own recent
// predictions (NextTokens in bigram.h, Token Recycling), refreshed after every pass.
#pragma once

#include <memory>
#include <optional>

#include "decode/bigram.h"
#include "decode/drafter.h"

namespace spw::decode {

/// Max-Gram's index of one n: a hash map from an n-gram's hash to a position, by open
/// addressing (linear probing, deletion by backward shift): no allocation per entry, and none
/// at all below the capacity given to reserve() (it doubles at half load).
class NgramTable {
 public:
  /// The value stored under `key`, or nullptr.
  int32_t* find(uint64_t key);
  /// Stores `value` (>= 0) under `key`; returns the value it replaces, -1 when there was none.
  int32_t exchange(uint64_t key, int32_t value);
  /// Removes `key` (which must be present).
  void erase(uint64_t key);
  /// Room for `entries` entries without growing.
  void reserve(size_t entries);
  void clear();
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    int32_t value;  // -1: empty
  };
  size_t home(uint64_t key) const { return static_cast<size_t>(key) & (slots_.size() - 1); }
  void rehash(size_t slots);
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

struct MaxGramOptions {
  int min_n = 1;  // shortest suffix that counts as a match
  int max_n = 6;  // longest suffix looked up
  float bigram_min_p = 0.f;  // bigram fill's confidence cut (bigram_fill's min_p)
};

class MaxGramDrafter final : public Drafter {
 public:
  explicit MaxGramDrafter(MaxGramOptions options = {},
                          std::shared_ptr<const BigramTable> bigram = nullptr, bool recycle = false);
  std::string name() const override {
    return !next_ ? "maxgram" : next_->recycling() ? "maxgram+recycle" : "maxgram+bigram";
  }
  void propose_into(std::span<const int32_t> context, int k, Draft& out) override;
  /// Up to `width` distinct drafts continuing earlier occurrences of the suffix (longest match
  /// first, most recent first): first those with distinct first tokens (the tree branches at
  /// the root), then, while there is room, ones that share a first token but continue
  /// differently (branches further down); with a bigram table, the table's other likely next
  /// tokens (two-token drafts) fill the remaining branches at the root.
  void propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) override;
  /// Room for `max_tokens` indexed tokens: the index allocates nothing below it.
  void reserve(size_t max_tokens) override;
  void reset() override;
  int wants_target_topk() const override { return next_ && next_->recycling() ? kRecycleTopK : 0; }
  void observe_target(int32_t token, std::span<const TopToken> next) override {
    if (next_) next_->observe(token, next);
  }
  const NextTokens* next_tokens() const override { return next_ ? &*next_ : nullptr; }

  /// Brings the index in line with `context` (exposed for tests). Returns the match: the end
  /// position of the most recent earlier occurrence of the longest matching suffix, and its
  /// length n; {-1, 0} when none.
  std::pair<int, int> longest_match(std::span<const int32_t> context);
  size_t indexed_tokens() const { return tokens_.size(); }

 private:
  void sync(std::span<const int32_t> context);
  void push(int32_t token);
  void pop();
  uint64_t suffix_hash(size_t end, int n) const;  // hash of tokens_[end-n+1 .. end]
  bool same(size_t end_a, size_t end_b, int n) const;
  void fill(int end, int k, Draft& d, std::span<const int32_t> context);

  MaxGramOptions opt_;
  std::optional<NextTokens> next_;  // the bigram fill's table, when there is one
  std::vector<int32_t> tokens_;  // indexed text
  // Per n (index n - min_n): hash -> most recent end position whose n-gram is INDEXED.
  // An n-gram ending at position j is indexed once position j + 1 exists (it has a
  // continuation), so a lookup never finds the query suffix itself.
  std::vector<NgramTable> last_;
  std::vector<std::vector<int32_t>> prev_;  // per n: end position -> previous end, -1
  size_t indexed_ends_ = 0;                 // ends [0, indexed_ends_) are in the maps
  // propose_tree_into's scratch, kept between calls
  std::vector<int32_t> ends_, firsts_;
  std::vector<char> used_;
};

}  // namespace spw::decode

// BigramTable: the statistical bottom of a CS-Drafting cascade. For each vocabulary token,
// its top_k most likely next tokens with probabilities (top_k = 1: the paper's greedy bigram).
// Built from token sequences (pair counts with add-alpha smoothing) or from a model (each
// vocabulary token as a one-token context, batched forwards over the whole vocabulary).
// Stored in a small binary file with a versioned header, the vocabulary size, a hash of the
// tokenizer's token strings and a checksum of the payload, all checked at load.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "decode/drafter.h"

namespace spw::rt {
class Model;
}

namespace spw::decode {

/// Hash of a tokenizer: FNV-1a 64 over (length, bytes) of every token string in id order.
uint64_t tokenizer_hash(const std::vector<std::string>& token_strings);

class BigramTable {
 public:
  struct Entry {
    int32_t token = 0;
    float prob = 0.f;
  };
  BigramTable() = default;
  BigramTable(int vocab_size, int top_k, uint64_t tokenizer_hash);

  int vocab_size() const { return vocab_size_; }
  int top_k() const { return top_k_; }
  uint64_t tokenizer_hash() const { return tokenizer_hash_; }
  /// Candidates after `prev`, most likely first (top_k entries).
  std::span<const Entry> next(int32_t prev) const;
  std::span<Entry> next_mutable(int32_t prev);
  /// Most likely token after `prev` (tokens outside the vocabulary map to token 0's row).
  int32_t most_likely(int32_t prev) const { return next(prev)[0].token; }

  /// Pair counts over sequences; smoothing: add-alpha, p(b|a) = (c(a,b) + alpha) /
  /// (c(a) + alpha * V). Rows of tokens never seen as `a` use the unigram counts instead:
  /// p(b) = (c(b) + alpha) / (N + alpha * V). Ties go to the lower token id.
  static BigramTable from_sequences(const std::vector<std::vector<int32_t>>& sequences,
                                    int vocab_size, int top_k, uint64_t tokenizer_hash,
                                    double alpha = 0.01);

  /// done, total, eta_seconds.
  using Progress = std::function<void(int64_t, int64_t, double)>;
  /// The model's own next-token distribution after [bos, v] (or [v] when bos < 0) for every
  /// vocabulary token v, `batch` sequences per forward call.
  static BigramTable from_model(rt::Model& model, int32_t bos, int top_k, uint64_t tokenizer_hash,
                                int batch = 256, const Progress& progress = {});

  void save(const std::string& path) const;
  /// Throws spw::Error naming what is wrong: missing file, not a bigram file, version,
  /// truncated, corrupted (checksum), vocabulary size or tokenizer hash mismatch
  /// (expected_vocab < 0 / expected_hash == 0: not checked).
  static BigramTable load(const std::string& path, int expected_vocab = -1,
                          uint64_t expected_hash = 0);

 private:
  int vocab_size_ = 0;
  int top_k_ = 0;
  uint64_t tokenizer_hash_ = 0;
  std::vector<Entry> entries_;  // [vocab][top_k]
};

/// Top tokens of the target a recycling drafter asks for per verified row (Drafter::
/// wants_target_topk): replayed on the e2e prompts (SmolLM2-135M, Max-Gram trees of 16
/// branches), 8 gave 2.38 tokens per pass, 1 gave 2.27, the static table 2.23.
inline constexpr int kRecycleTopK = 8;

/// Tokens of a token tree's alternative root branch (the candidate, then its fill). The static
/// table: 2 (replayed, a third token added nothing). Recycled rows are the target's own recent
/// predictions, so they carry further: on the e2e prompts (CPU, maxgram+recycle trees of 16
/// branches, k 12, at most 64 nodes) 2.78 tokens per pass with 2, 2.87 with 3, 2.87 with 4
/// (more nodes), 2.84 with 6, 2.66 with 12 (the node limit then cuts later branches).
inline int alternative_length(bool recycling) { return recycling ? 3 : 2; }

/// A bigram table as one sequence's drafter reads it. Plain: the table. Recycling (Token
/// Recycling, Luo et al. 2024, "Turning Trash into Treasure"): the row of a token after which
/// the target has been observed predicting (observe(): its top-k in a verified row, with their
/// probabilities) is that prediction, followed by the table's other candidates; the latest
/// observation of a token wins. The observed rows live in a pool owned here (one per sequence:
/// the shared table is never written).
class NextTokens {
 public:
  explicit NextTokens(std::shared_ptr<const BigramTable> table, bool recycle = false);
  /// Candidates after `prev`, most likely first (never empty).
  std::span<const BigramTable::Entry> next(int32_t prev) const;
  bool recycling() const { return recycle_; }
  /// Source name of the tokens it proposes, for acceptance-per-drafter metrics.
  const char* source() const { return recycle_ ? "recycle" : "bigram"; }
  /// The target's top tokens after `prev` (most likely first); ignored unless recycling, for
  /// tokens outside the vocabulary, and for tokens in `next` outside it.
  void observe(int32_t prev, std::span<const TopToken> next);
  /// Forgets every observation.
  void clear();
  /// Recycling: room for the rows of min(vocab, `tokens`) distinct observed tokens, so that
  /// observing allocates nothing below that (past it, the rows grow by doubling). Each pass
  /// observes its pending token and its draft's, so a text of n tokens usually touches fewer
  /// than n distinct ones.
  void reserve(size_t tokens);
  size_t observed_rows() const { return rows_.size() / static_cast<size_t>(width_); }

 private:
  std::shared_ptr<const BigramTable> table_;
  bool recycle_;
  int width_;                                    // entries of an observed row: the table's top_k
  std::vector<int32_t> row_of_;                  // [vocab] token -> its row in rows_, -1: none
                                                 // (allocated at the first observation)
  std::vector<BigramTable::Entry> rows_;         // [observed rows][width_]
};

/// Standalone bigram drafter: the greedy bigram chain from the last context token; with
/// min_p > 0 the chain stops where the product of its table probabilities falls below min_p.
/// `recycle`: the table refreshed by the target's predictions (NextTokens; name "recycle").
class BigramDrafter final : public Drafter {
 public:
  explicit BigramDrafter(std::shared_ptr<const BigramTable> table, float min_p = 0.f, bool recycle = false);
  std::string name() const override { return next_.source(); }
  void propose_into(std::span<const int32_t> context, int k, Draft& out) override;
  /// Branches on the table's top_k candidates at the first position: the first continued to k
  /// tokens, the others to alternative_length().
  void propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) override;
  void reset() override { next_.clear(); }
  void reserve(size_t max_tokens) override { next_.reserve(max_tokens); }
  int wants_target_topk() const override { return next_.recycling() ? kRecycleTopK : 0; }
  void observe_target(int32_t token, std::span<const TopToken> next) override { next_.observe(token, next); }
  const NextTokens* next_tokens() const override { return &next_; }

 private:
  NextTokens next_;
  float min_p_;
};

/// Appends the greedy bigram chain after `last` to `out` until it has k tokens, or (min_p > 0)
/// until the next token would bring the product of the chain's table probabilities below
/// min_p: a confidence cut, since a long low-probability tail costs verification work and is
/// rarely accepted.
void bigram_fill(const NextTokens& table, int32_t last, int k, Draft& out, float min_p = 0.f);

}  // namespace spw::decode

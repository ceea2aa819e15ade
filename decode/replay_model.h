// ReplayModel: a stand-in target for GREEDY speculative decoding that answers from recorded
// greedy outputs instead of running a network, so that drafters and tree shapes can be
// compared in seconds.
//
// Why it is exact: greedy speculative decoding emits exactly the target's greedy continuation
// (decode/README.md, "Exactness"), so the only target outputs verification ever reads are the
// greedy tokens after prefixes of that continuation. Given the continuation (a "reference":
// prompt + greedy output, recorded once by a real run), every such row is known: a row whose
// text (cached tokens + the row's ancestors + itself) is a prefix of the reference answers the
// next reference token. Any other row sits below a draft token the target would reject, and
// verification never looks at it: it answers kOffReference. The decoder therefore takes the
// same steps, accepts the same tokens and counts the same passes as with the real target
// (tested against the CPU backend), while the forward pass costs nothing; only the drafters
// run for real. Tokens per target pass and acceptance are exact; tokens/s is not a target's.
//
// Limits (each an error naming the sequence, not a silent wrong answer): greedy only (forward()
// with logits rows throws); a row on the reference at its last token has no recorded answer
// (the reference was generated with fewer tokens than asked for now) unless that token is an
// end-of-generation token (the decoder stops there and drops the answer); a sequence whose
// prompt matches no reference.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/model.h"

namespace spw::decode {

class ReplayModel final : public rt::Model {
 public:
  /// What a row off the reference answers (verification never reads it).
  static constexpr int32_t kOffReference = 0;

  /// `config` supplies vocab_size (and what callers print); `references` are full token
  /// sequences (prompt + the target's greedy output); `max_tokens` is the context limit the
  /// decoder sees (use the real model's, so that context-limit behaviour replays too);
  /// `eos_tokens` are the decoder's end-of-generation tokens (a reference may end with one).
  ReplayModel(rt::ModelConfig config, std::vector<std::vector<int32_t>> references, int max_tokens,
              std::vector<int32_t> eos_tokens = {});

  const rt::ModelConfig& config() const override { return config_; }
  std::string backend_name() const override { return "replay"; }

  int create_sequence() override;
  void free_sequence(int seq_id) override;
  int cached_tokens(int seq_id) const override;
  int max_tokens() const override { return max_tokens_; }

  /// Appends the tokens; only calls that want no rows (prompt prefill) are supported.
  void forward(std::span<const rt::SeqInput> batch, std::vector<float>& logits) override;
  /// Appends the tokens and answers each wanted row from the reference (see above).
  void forward_argmax(std::span<const rt::SeqInput> batch, std::vector<int32_t>& tokens) override;
  /// Throws: a reference records greedy tokens, not the target's top k (what 'recycle' reads).
  void forward_topk(std::span<const rt::SeqInput> batch, int k, std::vector<rt::TopToken>& top) override;

  void rollback(int seq_id, int new_len) override;
  void keep_tokens(int seq_id, int base, std::span<const int32_t> offsets) override;

  /// Forward calls served and rows answered so far (tests, logs).
  int64_t forwards() const { return forwards_; }
  int64_t rows() const { return rows_; }

 private:
  struct Seq {
    bool live = false;
    std::vector<int32_t> tokens;  // the "cache": token ids in cache order
    int ref = -1;                 // reference whose prefix the cached text is; -1 = not yet chosen
  };
  Seq& seq(int seq_id, const char* where);
  const Seq& seq(int seq_id, const char* where) const;
  // The backends' argument checks of forward() (runtime/forward_passes.h).
  void check(std::span<const rt::SeqInput> batch) const;
  // Appends one checked input's tokens; fills on_ref[i] (row i's text is a prefix of the reference).
  void append(const rt::SeqInput& in, std::vector<char>& on_ref, std::vector<int>& positions);

  rt::ModelConfig config_;
  std::vector<std::vector<int32_t>> refs_;
  int max_tokens_;
  std::vector<int32_t> eos_;
  std::vector<Seq> seqs_;
  int64_t forwards_ = 0, rows_ = 0;
};

}  // namespace spw::decode

#include "decode/replay_model.h"

#include <algorithm>

#include "kernels/common/error.h"
#include "runtime/forward_passes.h"

namespace spw::decode {

ReplayModel::ReplayModel(rt::ModelConfig config, std::vector<std::vector<int32_t>> references, int max_tokens,
                         std::vector<int32_t> eos_tokens)
    : config_(std::move(config)), refs_(std::move(references)), max_tokens_(max_tokens), eos_(std::move(eos_tokens)) {
  SPW_CHECK_ARG(config_.vocab_size > 0, "ReplayModel", "config.vocab_size", config_.vocab_size, "must be > 0");
  SPW_CHECK_ARG(max_tokens_ > 0, "ReplayModel", "max_tokens", max_tokens_, "must be > 0");
  for (size_t r = 0; r < refs_.size(); ++r)
    for (int32_t t : refs_[r])
      SPW_CHECK(t >= 0 && t < config_.vocab_size, "ReplayModel: reference {} has token {} outside the vocabulary ({})",
                r, t, config_.vocab_size);
}

int ReplayModel::create_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Seq{true, {}, -1};
      return static_cast<int>(i);
    }
  seqs_.push_back(Seq{true, {}, -1});
  return static_cast<int>(seqs_.size()) - 1;
}

ReplayModel::Seq& ReplayModel::seq(int seq_id, const char* where) {
  SPW_CHECK_ARG(seq_id >= 0 && seq_id < static_cast<int>(seqs_.size()) && seqs_[seq_id].live, where, "seq_id", seq_id,
                "is not a live sequence");
  return seqs_[seq_id];
}
const ReplayModel::Seq& ReplayModel::seq(int seq_id, const char* where) const {
  return const_cast<ReplayModel*>(this)->seq(seq_id, where);
}

void ReplayModel::free_sequence(int seq_id) { seq(seq_id, "ReplayModel::free_sequence").live = false; }

int ReplayModel::cached_tokens(int seq_id) const {
  return static_cast<int>(seq(seq_id, "ReplayModel::cached_tokens").tokens.size());
}

// `in` has passed check_forward_batch (runtime/forward_passes.h), the backends' checks.
void ReplayModel::append(const rt::SeqInput& in, std::vector<char>& on_ref, std::vector<int>& positions) {
  const char* where = "ReplayModel::forward";
  Seq& s = seqs_[in.seq_id];
  const int n = static_cast<int>(in.tokens.size());
  const int cached = static_cast<int>(s.tokens.size());
  std::vector<int> depth(n);
  for (int i = 0; i < n; ++i) {
    const int p = in.parents.empty() ? i - 1 : in.parents[i];
    depth[i] = p < 0 ? 0 : depth[p] + 1;
  }

  // The reference: chosen at the first call that reaches past the prompt's prefill, as the
  // first one that begins with the cached text and the first new token.
  auto prefix_of = [&](const std::vector<int32_t>& r) {
    return r.size() > static_cast<size_t>(cached) && std::equal(s.tokens.begin(), s.tokens.end(), r.begin()) &&
           r[cached] == in.tokens[0];
  };
  const bool wants_rows = rt::wanted_rows(in) > 0;
  if (s.ref < 0 && wants_rows) {
    for (size_t r = 0; r < refs_.size() && s.ref < 0; ++r)
      if (prefix_of(refs_[r])) s.ref = static_cast<int>(r);
    SPW_CHECK(s.ref >= 0, "{}: sequence {}: no reference begins with its {} tokens (a prompt that was not recorded)",
              where, in.seq_id, cached + 1);
  }
  const std::vector<int32_t>* ref = s.ref >= 0 ? &refs_[s.ref] : nullptr;
  const bool cache_on_ref = ref && ref->size() > static_cast<size_t>(cached) &&
                            std::equal(s.tokens.begin(), s.tokens.end(), ref->begin());
  on_ref.assign(n, 0);
  positions.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    const int p = in.parents.empty() ? i - 1 : in.parents[i];
    const int pos = cached + depth[i];
    const bool above = p < 0 ? cache_on_ref : on_ref[p] != 0;
    on_ref[i] = above && static_cast<size_t>(pos) < ref->size() && (*ref)[pos] == in.tokens[i];
    positions[i] = pos;
  }
  s.tokens.insert(s.tokens.end(), in.tokens.begin(), in.tokens.end());
}

void ReplayModel::check(std::span<const rt::SeqInput> batch) const {
  rt::check_forward_batch(batch, [&](int id) { return cached_tokens(id); }, config_.vocab_size, max_tokens_);
}

void ReplayModel::forward(std::span<const rt::SeqInput> batch, std::vector<float>& logits) {
  check(batch);
  for (const auto& in : batch)
    SPW_CHECK(rt::wanted_rows(in) == 0,
              "ReplayModel::forward: sequence {} asks for {} rows of logits: a replayed target answers greedy "
              "tokens only (forward_argmax); sampled decoding needs a real model",
              in.seq_id, rt::wanted_rows(in));
  std::vector<char> on_ref;
  std::vector<int> positions;
  for (const auto& in : batch) append(in, on_ref, positions);
  logits.clear();
  ++forwards_;
}

void ReplayModel::forward_topk(std::span<const rt::SeqInput>, int, std::vector<rt::TopToken>&) {
  fail("ReplayModel::forward_topk: a replayed target knows only its recorded greedy tokens, not its top k: "
       "drafters that learn from the target's predictions (recycle, maxgram+recycle) need a real model");
}

void ReplayModel::forward_argmax(std::span<const rt::SeqInput> batch, std::vector<int32_t>& tokens) {
  check(batch);
  tokens.clear();
  std::vector<char> on_ref;
  std::vector<int> positions;
  for (const auto& in : batch) {
    append(in, on_ref, positions);
    const int n = static_cast<int>(in.tokens.size());
    const Seq& s = seqs_[in.seq_id];
    for (int i = n - rt::wanted_rows(in); i < n; ++i) {
      int32_t answer = kOffReference;
      if (on_ref[i]) {
        const auto& ref = refs_[s.ref];
        const size_t next = static_cast<size_t>(positions[i]) + 1;
        if (next < ref.size()) {
          answer = ref[next];
        } else {
          SPW_CHECK(std::find(eos_.begin(), eos_.end(), ref.back()) != eos_.end(),
                    "ReplayModel::forward_argmax: sequence {} reached the end of its reference ({} tokens) "
                    "without an end-of-generation token: record the reference with at least as many new tokens",
                    in.seq_id, ref.size());
        }
      }
      tokens.push_back(answer);
      ++rows_;
    }
  }
  ++forwards_;
}

void ReplayModel::rollback(int seq_id, int new_len) {
  Seq& s = seq(seq_id, "ReplayModel::rollback");
  rt::check_rollback(static_cast<int>(s.tokens.size()), new_len);
  s.tokens.resize(new_len);
}

void ReplayModel::keep_tokens(int seq_id, int base, std::span<const int32_t> offsets) {
  Seq& s = seq(seq_id, "ReplayModel::keep_tokens");
  rt::check_keep_tokens(static_cast<int>(s.tokens.size()), base, offsets);
  for (size_t i = 0; i < offsets.size(); ++i) s.tokens[base + i] = s.tokens[base + offsets[i]];
  s.tokens.resize(base + offsets.size());
}

}  // namespace spw::decode

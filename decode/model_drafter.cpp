// ModelDrafter (see model_drafter.h).
#include "decode/model_drafter.h"

#include <algorithm>

#include "kernels/common/error.h"
#include "kernels/common/top_tokens.h"
#include "runtime/model.h"

namespace spw::decode {

ModelDrafter::ModelDrafter(std::shared_ptr<rt::Model> model, int target_vocab, std::string name,
                           SamplingParams sampling, double cost)
    : model_(std::move(model)), name_(std::move(name)), sampling_(sampling), cost_(cost),
      rng_(sampling.seed ^ 0xD1B54A32D192ED03ull) {
  SPW_CHECK(model_ != nullptr, "model drafter '{}': no model", name_);
  vocab_ = model_->config().vocab_size;
  SPW_CHECK(vocab_ == target_vocab,
            "model drafter '{}': vocab_size = {}: must equal the target's vocab_size {} (drafters "
            "must share the target's tokenizer)", name_, vocab_, target_vocab);
}

ModelDrafter::~ModelDrafter() { reset(); }

void ModelDrafter::reserve(size_t max_tokens) {
  const size_t n = std::min(max_tokens, static_cast<size_t>(model_->max_tokens()));
  cached_.reserve(n);
  fed_.reserve(n);
}

void ModelDrafter::reset() {
  if (seq_ >= 0) model_->free_sequence(seq_);
  seq_ = -1;
  cached_.clear();
}

void ModelDrafter::collect_costs(std::vector<DraftCost>& out) const {
  out.push_back({name_, forwards_, cost_});
}

bool ModelDrafter::feed(std::span<const int32_t> context, std::span<const int32_t> extra,
                        size_t rows, std::span<const float>* out, std::vector<int32_t>* greedy) {
  const size_t total = context.size() + extra.size();
  if (context.empty() || total > static_cast<size_t>(model_->max_tokens())) return false;
  if (seq_ < 0) seq_ = model_->create_sequence();
  size_t lcp = 0;
  const size_t lim = std::min(cached_.size(), context.size() - 1);
  while (lcp < lim && cached_[lcp] == context[lcp]) ++lcp;
  if (lcp < cached_.size()) {
    model_->rollback(seq_, static_cast<int>(lcp));
    cached_.resize(lcp);
  }
  auto& fed = fed_;
  fed.assign(context.begin() + lcp, context.end());
  fed.insert(fed.end(), extra.begin(), extra.end());
  rt::SeqInput in{seq_, fed, {}, static_cast<int>(std::min(rows, fed.size()))};
  if (greedy) model_->forward_argmax(std::span<const rt::SeqInput>(&in, 1), *greedy);
  else *out = model_->forward_view(std::span<const rt::SeqInput>(&in, 1));
  ++forwards_;
  cached_.insert(cached_.end(), fed.begin(), fed.end());
  return true;
}

void ModelDrafter::propose_into(std::span<const int32_t> context, int k, Draft& d) {
  d.clear();
  if (context.empty() || k <= 0) return;
  // The last proposed token is never fed: context + k - 1 tokens must fit.
  k = std::min<int64_t>(k, static_cast<int64_t>(model_->max_tokens()) - context.size() + 1);
  if (k <= 0) return;
  // Greedy drafting reads only the model's greedy token (forward_argmax), sampling its logits.
  const bool greedy = sampling_.greedy();
  std::span<const float> logits;  // the model's view (forward_view): valid until its next one
  auto& q = q_;
  auto& top = top_;
  int32_t step = -1;  // the token fed next
  for (int i = 0; i < k; ++i) {
    if (i == 0) {
      if (!feed(context, {}, 1, greedy ? nullptr : &logits, greedy ? &top : nullptr)) break;
    } else {
      rt::SeqInput in{seq_, std::span<const int32_t>(&step, 1), {}};
      if (greedy) model_->forward_argmax(std::span<const rt::SeqInput>(&in, 1), top);
      else logits = model_->forward_view(std::span<const rt::SeqInput>(&in, 1));
      ++forwards_;
      cached_.push_back(step);
    }
    int32_t tok;
    if (greedy) {
      tok = top[0];
    } else {
      sampling_probs(logits, sampling_, q);
      tok = sample(q, rng_);
      d.probs.insert(d.probs.end(), q.begin(), q.end());
    }
    d.tokens.push_back(tok);
    d.sources.push_back(name_);
    step = tok;
  }
}

void ModelDrafter::propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) {
  out.clear();
  if (context.empty() || k <= 0) return;
  std::span<const float> first;  // valid until the next forward_view (propose_into() below)
  if (!feed(context, {}, 1, &first, nullptr)) return;
  // the `alts` most likely first tokens, best first, in top_tokens' order (ranks_before: ties to
  // the lower token, NaN last): one scan (top_tokens itself serves at most kMaxTopK)
  const size_t alts = static_cast<size_t>(std::min(width, vocab_));
  auto& order = order_;
  order.clear();
  auto before = [&](int32_t a, int32_t b) { return ranks_before(first[a], a, first[b], b); };
  for (int32_t t = 0; t < vocab_; ++t) {
    if (order.size() == alts && !before(t, order.back())) continue;
    const size_t at = static_cast<size_t>(
        std::find_if(order.begin(), order.end(), [&](int32_t b) { return before(t, b); }) - order.begin());
    if (order.size() == alts) order.pop_back();
    order.insert(order.begin() + static_cast<std::ptrdiff_t>(at), t);
  }
  Draft& main = out.add();
  propose_into(context, k, main);  // reuses the cache: the first forward is one token
  main.probs.clear();              // trees are verified with one-hot q
  const int32_t head = main.tokens.empty() ? -1 : main.tokens[0];
  for (size_t j = 0; j < order.size() && static_cast<int>(out.size()) < width; ++j)
    if (order[j] != head) out.add().push(order[j], name_);
}

std::span<const float> ModelDrafter::score(std::span<const int32_t> context, std::span<const int32_t> draft) {
  std::span<const float> logits;
  if (!feed(context, draft, draft.size() + 1, &logits, nullptr)) return {};
  const size_t n = logits.size() / vocab_, v = static_cast<size_t>(vocab_);
  score_rows_.resize(n * v);
  for (size_t i = 0; i < n; ++i) softmax(logits.subspan(i * v, v), std::span<float>(score_rows_).subspan(i * v, v));
  return score_rows_;
}

}  // namespace spw::decode

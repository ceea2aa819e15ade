// Vertical and horizontal cascades (see cascade.h for the exact rules).
#include "decode/cascade.h"

#include <algorithm>

#include "decode/sampling.h"
#include "kernels/common/error.h"

namespace spw::decode {

bool lenient_accept(std::span<const float> p, int32_t x, double qx, double lenience) {
  if (x == argmax(p)) return true;
  return lenience > 1.0 && p[x] > qx / lenience;
}

std::unique_ptr<Cascade> Cascade::vertical(std::unique_ptr<ModelDrafter> reviewer,
                                           std::unique_ptr<Drafter> lower, double lenience,
                                           int round_tokens, std::string name) {
  SPW_CHECK(reviewer && lower, "vcascade: needs a reviewer model drafter and a lower drafter");
  SPW_CHECK_ARG(lenience >= 1.0, "vcascade", "lenience", lenience, "must be >= 1");
  SPW_CHECK_ARG(round_tokens >= 1 && round_tokens <= 64, "vcascade", "k", round_tokens,
                "must be in [1, 64]");
  std::unique_ptr<Cascade> c(new Cascade);
  c->vertical_ = true;
  c->name_ = name.empty() ? "vcascade(" + reviewer->name() + "," + lower->name() + ")" : name;
  c->reviewer_name_ = reviewer->name();
  c->lower_name_ = lower->name();
  c->reviewer_ = std::move(reviewer);
  c->lower_ = std::move(lower);
  c->lenience_ = lenience;
  c->round_ = round_tokens;
  return c;
}

std::unique_ptr<Cascade> Cascade::horizontal(std::vector<Part> parts, std::string name) {
  SPW_CHECK(!parts.empty(), "hcascade: needs at least one drafter");
  std::string n = "hcascade(";
  for (size_t i = 0; i < parts.size(); ++i) {
    SPW_CHECK(parts[i].drafter, "hcascade: part {} has no drafter", i);
    SPW_CHECK_ARG(parts[i].positions >= 1 && parts[i].positions <= 64, "hcascade", "positions",
                  parts[i].positions, "must be in [1, 64]");
    if (i) n += ',';  // (one append per piece: GCC 12's -Wrestrict misfires on const char* + string)
    n += parts[i].drafter->name();
    n += '*';
    n += std::to_string(parts[i].positions);
  }
  std::unique_ptr<Cascade> c(new Cascade);
  c->name_ = name.empty() ? n + ")" : name;
  for (const Part& p : parts) c->part_names_.push_back(p.drafter->name());
  c->parts_ = std::move(parts);
  return c;
}

void Cascade::reset() {
  if (reviewer_) reviewer_->reset();
  if (lower_) lower_->reset();
  for (auto& p : parts_) p.drafter->reset();
}

void Cascade::reserve(size_t max_tokens) {
  ctx_.reserve(max_tokens);
  part_.reserve(kMaxDraftTokens);
  has_row_.reserve(kMaxDraftTokens);
  if (reviewer_) reviewer_->reserve(max_tokens);
  if (lower_) lower_->reserve(max_tokens);
  for (auto& p : parts_) p.drafter->reserve(max_tokens);
}

void Cascade::collect_costs(std::vector<DraftCost>& out) const {
  if (reviewer_) reviewer_->collect_costs(out);
  if (lower_) lower_->collect_costs(out);
  for (const auto& p : parts_) p.drafter->collect_costs(out);
}

int Cascade::wants_target_topk() const {
  int k = lower_ ? lower_->wants_target_topk() : 0;
  for (const auto& p : parts_) k = std::max(k, p.drafter->wants_target_topk());
  return k;
}

void Cascade::observe_target(int32_t token, std::span<const TopToken> next) {
  if (lower_) lower_->observe_target(token, next);
  for (auto& p : parts_) p.drafter->observe_target(token, next);
}

void Cascade::propose_into(std::span<const int32_t> context, int k, Draft& out) {
  out.clear();
  if (context.empty() || k <= 0) return;
  ctx_.assign(context.begin(), context.end());  // grows by the draft
  if (vertical_) propose_vertical(k, out);
  else propose_horizontal(k, out);
}

void Cascade::propose_vertical(int k, Draft& out) {
  auto& ctx = ctx_;
  Draft& low = part_;
  while (static_cast<int>(out.tokens.size()) < k) {
    const int m = std::min(round_, k - static_cast<int>(out.tokens.size()));
    lower_->propose_into(ctx, m, low);
    low.truncate(static_cast<size_t>(m));
    const auto rows = reviewer_->score(ctx, low.tokens);  // [tokens + 1][vocab]
    const size_t v = static_cast<size_t>(reviewer_->vocab_size());
    if (rows.size() != (low.tokens.size() + 1) * v) break;  // reviewer out of context
    size_t i = 0;
    for (; i < low.tokens.size(); ++i) {
      const double qx = !low.probs.empty() ? low.prob_row(i)[low.tokens[i]] : 1.0;
      if (!lenient_accept(rows.subspan(i * v, v), low.tokens[i], qx, lenience_)) break;
    }
    lower_proposed_ += static_cast<int64_t>(low.tokens.size());
    lower_accepted_ += static_cast<int64_t>(i);
    for (size_t j = 0; j < i; ++j) {
      out.tokens.push_back(low.tokens[j]);
      out.sources.push_back(j < low.sources.size() ? low.sources[j] : lower_name_);
      ctx.push_back(low.tokens[j]);
    }
    if (static_cast<int>(out.tokens.size()) < k) {
      const int32_t c = argmax(rows.subspan(i * v, v));
      out.tokens.push_back(c);
      out.sources.push_back(reviewer_name_);
      ctx.push_back(c);
    }
  }
}

void Cascade::propose_horizontal(int k, Draft& out) {
  auto& ctx = ctx_;
  auto& has_row = has_row_;
  auto& rows = rows_;  // the rows of the tokens that have one, in order
  has_row.clear();
  rows.clear();
  Draft& d = part_;
  size_t vocab = 0;
  for (size_t pi = 0; pi < parts_.size(); ++pi) {
    Part& part = parts_[pi];
    const int n = std::min(part.positions, k - static_cast<int>(out.tokens.size()));
    if (n <= 0) break;
    part.drafter->propose_into(ctx, n, d);
    const size_t take = std::min<size_t>(d.tokens.size(), n);
    const size_t width = d.prob_width();
    SPW_CHECK(width == 0 || vocab == 0 || width == vocab, "hcascade: drafter '{}' gave rows of {} probabilities, another of {}",
              part_names_[pi], width, vocab);
    if (width) vocab = width;
    for (size_t j = 0; j < take; ++j) {
      out.tokens.push_back(d.tokens[j]);
      out.sources.push_back(j < d.sources.size() ? d.sources[j] : part_names_[pi]);
      has_row.push_back(width > 0);
      if (width) rows.insert(rows.end(), d.probs.begin() + j * width, d.probs.begin() + (j + 1) * width);
      ctx.push_back(d.tokens[j]);
    }
  }
  if (vocab == 0) return;  // no part has probabilities: the draft has none (one-hot q)
  // every token a row: its part's, or one-hot where its part proposes deterministically
  out.probs.assign(out.tokens.size() * vocab, 0.f);
  const float* next = rows.data();
  for (size_t j = 0; j < out.tokens.size(); ++j) {
    float* row = out.probs.data() + j * vocab;
    if (has_row[j]) {
      std::copy_n(next, vocab, row);
      next += vocab;
    } else {
      row[out.tokens[j]] = 1.f;
    }
  }
}

}  // namespace spw::decode

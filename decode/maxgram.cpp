// Max-Gram drafter (see maxgram.h for the index and the fill rule).
#include "decode/maxgram.h"

#include <algorithm>
#include <cstring>

#include "kernels/common/error.h"

namespace spw::decode {

namespace {
uint64_t mix(uint64_t h, int32_t t) {
  h ^= static_cast<uint32_t>(t) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}
}  // namespace

MaxGramDrafter::MaxGramDrafter(MaxGramOptions options, std::shared_ptr<const BigramTable> bigram, bool recycle)
    : opt_(options) {
  SPW_CHECK(bigram || !recycle, "MaxGramDrafter: recycle needs a bigram table");
  if (bigram) next_.emplace(std::move(bigram), recycle);
  SPW_CHECK_ARG(opt_.min_n >= 1, "MaxGramDrafter", "min_n", opt_.min_n, "must be >= 1");
  SPW_CHECK_ARG(opt_.max_n >= opt_.min_n && opt_.max_n <= 64, "MaxGramDrafter", "max_n",
                opt_.max_n, "must be in [min_n, 64]");
  reset();
}

void MaxGramDrafter::reset() {
  tokens_.clear();
  indexed_ends_ = 0;
  const int levels = opt_.max_n - opt_.min_n + 1;
  last_.assign(levels, {});
  prev_.assign(levels, {});
  if (next_) next_->clear();
}

uint64_t MaxGramDrafter::suffix_hash(size_t end, int n) const {
  uint64_t h = 0x1234567ull + static_cast<uint64_t>(n);
  for (int i = 0; i < n; ++i) h = mix(h, tokens_[end - i]);
  return h;
}

bool MaxGramDrafter::same(size_t a, size_t b, int n) const {
  for (int i = 0; i < n; ++i)
    if (tokens_[a - i] != tokens_[b - i]) return false;
  return true;
}

// Indexes the n-grams ending at position indexed_ends_ (needs a following token).
void MaxGramDrafter::push(int32_t token) {
  tokens_.push_back(token);
  while (indexed_ends_ + 1 < tokens_.size()) {
    const size_t end = indexed_ends_++;
    for (int n = opt_.min_n; n <= opt_.max_n; ++n) {
      auto& prev = prev_[n - opt_.min_n];
      prev.push_back(-1);
      if (end + 1 < static_cast<size_t>(n)) continue;
      auto [it, fresh] = last_[n - opt_.min_n].try_emplace(suffix_hash(end, n), static_cast<int32_t>(end));
      if (!fresh) {
        prev[end] = it->second;
        it->second = static_cast<int32_t>(end);
      }
    }
  }
}

void MaxGramDrafter::pop() {
  tokens_.pop_back();
  while (indexed_ends_ > 0 && indexed_ends_ + 1 > tokens_.size()) {
    const size_t end = --indexed_ends_;
    for (int n = opt_.min_n; n <= opt_.max_n; ++n) {
      auto& prev = prev_[n - opt_.min_n];
      if (end + 1 >= static_cast<size_t>(n)) {
        auto& map = last_[n - opt_.min_n];
        auto it = map.find(suffix_hash(end, n));
        if (it != map.end() && it->second == static_cast<int32_t>(end)) {
          if (prev[end] >= 0) it->second = prev[end];
          else map.erase(it);
        }
      }
      prev.pop_back();
    }
  }
}

void MaxGramDrafter::sync(std::span<const int32_t> context) {
  size_t lcp = std::min(tokens_.size(), context.size());
  if (lcp > 0 && std::memcmp(tokens_.data(), context.data(), lcp * sizeof(int32_t)) != 0) {
    size_t i = 0;
    while (i < lcp && tokens_[i] == context[i]) ++i;
    lcp = i;
  }
  while (tokens_.size() > lcp) pop();
  for (size_t i = lcp; i < context.size(); ++i) push(context[i]);
}

std::pair<int, int> MaxGramDrafter::longest_match(std::span<const int32_t> context) {
  sync(context);
  const size_t len = tokens_.size();
  if (len < 2) return {-1, 0};
  const size_t q = len - 1;  // the query suffix ends here (not indexed itself)
  for (int n = std::min<int>(opt_.max_n, static_cast<int>(len) - 1); n >= opt_.min_n; --n) {
    const auto& map = last_[n - opt_.min_n];
    auto it = map.find(suffix_hash(q, n));
    int32_t end = it == map.end() ? -1 : it->second;
    const auto& prev = prev_[n - opt_.min_n];
    for (int hops = 0; end >= 0 && hops < 16; ++hops, end = prev[end])
      if (same(end, q, n)) return {end, n};
  }
  return {-1, 0};
}

void MaxGramDrafter::fill(int end, int k, Draft& d, std::span<const int32_t> context) {
  const int len = static_cast<int>(tokens_.size());
  for (int p = end + 1; end >= 0 && p < len && static_cast<int>(d.tokens.size()) < k; ++p) {
    d.tokens.push_back(tokens_[p]);
    d.sources.push_back("maxgram");
  }
  if (static_cast<int>(d.tokens.size()) >= k) return;
  if (next_) {
    bigram_fill(*next_, d.tokens.empty() ? context.back() : d.tokens.back(), k, d, opt_.bigram_min_p);
    return;
  }
  if (end < 0) return;
  // Periodic extension: position len + i copies position end + 1 + i of text + draft.
  while (static_cast<int>(d.tokens.size()) < k) {
    const int src = end + 1 + static_cast<int>(d.tokens.size());
    d.tokens.push_back(src < len ? tokens_[src] : d.tokens[src - len]);
    d.sources.push_back("maxgram");
  }
}

Draft MaxGramDrafter::propose(std::span<const int32_t> context, int k) {
  Draft d;
  if (context.empty() || k <= 0) {
    sync(context);
    return d;
  }
  const auto [end, n] = longest_match(context);
  (void)n;
  fill(end, k, d, context);
  return d;
}

std::vector<Draft> MaxGramDrafter::propose_tree(std::span<const int32_t> context, int k, int width) {
  std::vector<Draft> out;
  if (context.empty() || k <= 0) return out;
  sync(context);
  // Every confirmed earlier occurrence of a suffix, longest n first, most recent first.
  std::vector<int32_t> ends;
  const size_t len = tokens_.size();
  if (len >= 2) {
    const size_t q = len - 1;
    for (int n = std::min<int>(opt_.max_n, static_cast<int>(len) - 1); n >= opt_.min_n; --n) {
      auto it = last_[n - opt_.min_n].find(suffix_hash(q, n));
      int32_t end = it == last_[n - opt_.min_n].end() ? -1 : it->second;
      for (int hops = 0; end >= 0 && hops < 64; ++hops, end = prev_[n - opt_.min_n][end])
        if (same(end, q, n) && std::find(ends.begin(), ends.end(), end) == ends.end()) ends.push_back(end);
    }
  }
  // First the occurrences with distinct next tokens (branches at the root), then, while there is
  // room, ones that share the first token but continue differently (branches further down).
  std::vector<int32_t> firsts;
  std::vector<char> used(ends.size(), 0);
  for (size_t i = 0; i < ends.size() && static_cast<int>(out.size()) < width; ++i) {
    const int32_t first = tokens_[ends[i] + 1];
    if (std::find(firsts.begin(), firsts.end(), first) != firsts.end()) continue;
    firsts.push_back(first);
    used[i] = 1;
    Draft d;
    fill(ends[i], k, d, context);
    out.push_back(std::move(d));
  }
  for (size_t i = 0; i < ends.size() && static_cast<int>(out.size()) < width; ++i) {
    if (used[i]) continue;
    Draft d;
    fill(ends[i], k, d, context);
    const bool fresh = std::none_of(out.begin(), out.end(), [&](const Draft& o) { return o.tokens == d.tokens; });
    if (fresh) out.push_back(std::move(d));
  }
  if (out.empty()) {
    Draft d;
    fill(-1, k, d, context);
    if (!d.tokens.empty()) {
      firsts.push_back(d.tokens[0]);
      out.push_back(std::move(d));
    }
  }
  // Room left and a bigram table: its other likely next tokens as further root branches, each
  // continued by the table to alternative_length() tokens (replayed on the e2e prompts,
  // SmolLM2, 8 branches, k 12: 2.29 -> 2.50 tokens per pass; with the static table a second
  // token adds 0.02, longer ones nothing; recycled rows carry further, see bigram.h).
  if (next_) {
    const int alt_length = alternative_length(next_->recycling());
    for (const auto& e : next_->next(context.back())) {
      if (static_cast<int>(out.size()) >= width) break;
      if (e.prob <= 0.f || std::find(firsts.begin(), firsts.end(), e.token) != firsts.end()) continue;
      firsts.push_back(e.token);
      Draft d;
      d.push(e.token, next_->source(), e.prob);
      bigram_fill(*next_, e.token, std::min(k, alt_length), d, opt_.bigram_min_p);
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace spw::decode

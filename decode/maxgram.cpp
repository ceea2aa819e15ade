// Max-Gram drafter (see maxgram.h for the index and the fill rule).
#include "decode/maxgram.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "kernels/common/error.h"

namespace spw::decode {

namespace {
uint64_t mix(uint64_t h, int32_t t) {
  h ^= static_cast<uint32_t>(t) + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}
}  // namespace

int32_t* NgramTable::find(uint64_t key) {
  if (size_ == 0) return nullptr;
  for (size_t i = home(key);; i = (i + 1) & (slots_.size() - 1)) {
    Slot& s = slots_[i];
    if (s.value < 0) return nullptr;
    if (s.key == key) return &s.value;
  }
}

int32_t NgramTable::exchange(uint64_t key, int32_t value) {
  if (int32_t* v = find(key)) return std::exchange(*v, value);
  if ((size_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
  size_t i = home(key);
  while (slots_[i].value >= 0) i = (i + 1) & (slots_.size() - 1);
  slots_[i] = {key, value};
  ++size_;
  return -1;
}

void NgramTable::erase(uint64_t key) {
  const size_t mask = slots_.size() - 1;
  size_t hole = home(key);
  while (slots_[hole].key != key || slots_[hole].value < 0) hole = (hole + 1) & mask;
  // Backward shift: an entry after the hole moves into it unless its home lies cyclically in
  // (hole, j], where a lookup reaches it without passing the hole.
  for (size_t j = (hole + 1) & mask; slots_[j].value >= 0; j = (j + 1) & mask) {
    const size_t h = home(slots_[j].key);
    const bool stays = hole < j ? (h > hole && h <= j) : (h > hole || h <= j);
    if (!stays) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole].value = -1;
  --size_;
}

void NgramTable::reserve(size_t entries) {
  size_t slots = 16;
  while (slots < entries * 2) slots *= 2;
  if (slots > slots_.size()) rehash(slots);
}

void NgramTable::clear() {
  for (auto& s : slots_) s.value = -1;
  size_ = 0;
}

void NgramTable::rehash(size_t slots) {
  std::vector<Slot> old(slots, Slot{0, -1});
  old.swap(slots_);
  for (const Slot& s : old) {
    if (s.value < 0) continue;
    size_t i = home(s.key);
    while (slots_[i].value >= 0) i = (i + 1) & (slots - 1);
    slots_[i] = s;
  }
}

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
  const size_t levels = static_cast<size_t>(opt_.max_n - opt_.min_n + 1);
  last_.resize(levels);  // cleared, not freed: a reset keeps what reserve() sized
  prev_.resize(levels);
  for (auto& t : last_) t.clear();
  for (auto& p : prev_) p.clear();
  if (next_) next_->clear();
}

void MaxGramDrafter::reserve(size_t max_tokens) {
  // propose_tree_into's scratch: up to 64 occurrences per n, then the table's candidates
  const size_t occurrences = last_.size() * 64;
  ends_.reserve(occurrences);
  used_.reserve(occurrences);
  firsts_.reserve(occurrences + 64);
  tokens_.reserve(max_tokens);
  for (auto& t : last_) t.reserve(max_tokens);
  for (auto& p : prev_) p.reserve(max_tokens);
  if (next_) next_->reserve(max_tokens);
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
      prev[end] = last_[n - opt_.min_n].exchange(suffix_hash(end, n), static_cast<int32_t>(end));
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
        const uint64_t h = suffix_hash(end, n);
        int32_t* v = map.find(h);
        if (v && *v == static_cast<int32_t>(end)) {
          if (prev[end] >= 0) *v = prev[end];
          else map.erase(h);
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
    const int32_t* found = last_[n - opt_.min_n].find(suffix_hash(q, n));
    int32_t end = found ? *found : -1;
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

void MaxGramDrafter::propose_into(std::span<const int32_t> context, int k, Draft& out) {
  out.clear();
  if (context.empty() || k <= 0) {
    sync(context);
    return;
  }
  const auto [end, n] = longest_match(context);
  (void)n;
  fill(end, k, out, context);
}

void MaxGramDrafter::propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) {
  out.clear();
  if (context.empty() || k <= 0) return;
  sync(context);
  // Every confirmed earlier occurrence of a suffix, longest n first, most recent first.
  auto& ends = ends_;
  ends.clear();
  const size_t len = tokens_.size();
  if (len >= 2) {
    const size_t q = len - 1;
    for (int n = std::min<int>(opt_.max_n, static_cast<int>(len) - 1); n >= opt_.min_n; --n) {
      const int32_t* found = last_[n - opt_.min_n].find(suffix_hash(q, n));
      int32_t end = found ? *found : -1;
      for (int hops = 0; end >= 0 && hops < 64; ++hops, end = prev_[n - opt_.min_n][end])
        if (same(end, q, n) && std::find(ends.begin(), ends.end(), end) == ends.end()) ends.push_back(end);
    }
  }
  // First the occurrences with distinct next tokens (branches at the root), then, while there is
  // room, ones that share the first token but continue differently (branches further down).
  auto& firsts = firsts_;
  firsts.clear();
  used_.assign(ends.size(), 0);
  for (size_t i = 0; i < ends.size() && static_cast<int>(out.size()) < width; ++i) {
    const int32_t first = tokens_[ends[i] + 1];
    if (std::find(firsts.begin(), firsts.end(), first) != firsts.end()) continue;
    firsts.push_back(first);
    used_[i] = 1;
    fill(ends[i], k, out.add(), context);
  }
  for (size_t i = 0; i < ends.size() && static_cast<int>(out.size()) < width; ++i) {
    if (used_[i]) continue;
    fill(ends[i], k, out.add(), context);  // kept only when no earlier draft has its tokens
    const auto& d = out.back().tokens;
    if (std::any_of(out.begin(), out.end() - 1, [&](const Draft& o) { return o.tokens == d; })) out.pop_back();
  }
  if (out.empty()) {
    fill(-1, k, out.add(), context);
    if (out.back().tokens.empty()) out.pop_back();
    else firsts.push_back(out.back().tokens[0]);
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
      Draft& d = out.add();
      d.push(e.token, next_->source(), e.prob);
      bigram_fill(*next_, e.token, std::min(k, alt_length), d, opt_.bigram_min_p);
    }
  }
}

}  // namespace spw::decode

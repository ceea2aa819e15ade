// A deterministic toy spw::rt::Model for decode tests: logits are a hashed function of the
// last two VISIBLE tokens (cache + tree ancestors) and, optionally, the position. It keeps a
// real per-sequence cache of (token, position) entries and honours chains, trees (parents),
// rollback and keep_tokens; it checks that cached positions stay consecutive and throws on
// any misuse (overflow, bad offsets), so a bookkeeping bug in the decoder shows up.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace spw::test {

class FakeModel : public rt::Model {
 public:
  FakeModel(int vocab, int max_tokens, uint64_t salt = 1, float scale = 4.f, float pos_weight = 0.f)
      : salt_(salt), scale_(scale), pos_weight_(pos_weight), max_tokens_(max_tokens) {
    cfg_.vocab_size = vocab;
    cfg_.hidden = 64;
    cfg_.intermediate = 128;
    cfg_.num_layers = 4;
    cfg_.num_heads = 4;
    cfg_.num_kv_heads = 4;
    cfg_.head_dim = 16;
    cfg_.max_context = max_tokens;
  }
  const rt::ModelConfig& config() const override { return cfg_; }
  std::string backend_name() const override { return "fake"; }
  int create_sequence() override {
    caches_[next_id_] = {};
    return next_id_++;
  }
  void free_sequence(int id) override { caches_.erase(id); }
  int cached_tokens(int id) const override { return static_cast<int>(at(id).size()); }
  int max_tokens() const override { return max_tokens_; }

  // Logits for a token following `visible` (whose last element is at position pos - 1).
  void logits_after(std::span<const int32_t> visible, int pos, float* out) const {
    const int64_t a = visible.empty() ? -1 : visible.back();
    const int64_t b = visible.size() < 2 ? -1 : visible[visible.size() - 2];
    for (int v = 0; v < cfg_.vocab_size; ++v) {
      float x = scale_ * unit(hash(a, b, v));
      if (pos_weight_ != 0.f) x += pos_weight_ * unit(hash(pos, -7, v));
      out[v] = x;
    }
  }

  void forward(std::span<const rt::SeqInput> batch, std::vector<float>& logits) override {
    ++forward_calls;
    size_t total = 0;
    for (const auto& s : batch) {
      if (s.logits_rows < -1 || s.logits_rows > static_cast<int>(s.tokens.size()))
        throw std::runtime_error("forward: bad logits_rows");
      total += rt::wanted_rows(s);
    }
    logits.assign(total * cfg_.vocab_size, 0.f);
    std::vector<float> one(cfg_.vocab_size);
    size_t row = 0;
    for (const auto& s : batch) {
      auto& cache = at(s.seq_id);
      const int n = static_cast<int>(s.tokens.size());
      if (n < 1) throw std::runtime_error("forward: no tokens");
      if (!s.parents.empty() && static_cast<int>(s.parents.size()) != n)
        throw std::runtime_error("forward: parents size");
      if (static_cast<int>(cache.size()) + n > max_tokens_) throw std::runtime_error("forward: cache overflow");
      for (size_t i = 0; i < cache.size(); ++i)
        if (cache[i].pos != static_cast<int>(i)) throw std::runtime_error("forward: cache positions not consecutive");
      const int base = static_cast<int>(cache.size());
      std::vector<int32_t> ctx;
      for (const auto& e : cache) ctx.push_back(e.token);
      for (int i = 0; i < n; ++i) {
        const int p = s.parents.empty() ? i - 1 : s.parents[i];
        if (p >= i || p < -1) throw std::runtime_error("forward: bad parent");
        std::vector<int32_t> chain;
        for (int j = i; j >= 0; j = s.parents.empty() ? j - 1 : s.parents[j]) chain.push_back(s.tokens[j]);
        std::vector<int32_t> visible = ctx;
        visible.insert(visible.end(), chain.rbegin(), chain.rend());
        const int pos = base + static_cast<int>(chain.size()) - 1;
        const int first_wanted = n - rt::wanted_rows(s);  // the last wanted_rows tokens have rows
        logits_after(visible, pos + 1, i >= first_wanted ? &logits[(row + i - first_wanted) * cfg_.vocab_size] : one.data());
        cache.push_back({s.tokens[i], pos});
      }
      row += rt::wanted_rows(s);
    }
  }
  void rollback(int id, int new_len) override {
    auto& c = at(id);
    if (new_len < 0 || new_len > static_cast<int>(c.size())) throw std::runtime_error("rollback: bad length");
    c.resize(new_len);
  }
  void keep_tokens(int id, int base, std::span<const int32_t> offsets) override {
    auto& c = at(id);
    std::vector<Entry> kept;
    for (size_t i = 0; i < offsets.size(); ++i) {
      if (i > 0 && offsets[i] <= offsets[i - 1]) throw std::runtime_error("keep_tokens: offsets not increasing");
      if (base + offsets[i] >= static_cast<int>(c.size())) throw std::runtime_error("keep_tokens: offset out of range");
      kept.push_back(c[base + offsets[i]]);
    }
    c.resize(base);
    c.insert(c.end(), kept.begin(), kept.end());
  }

  // Plain greedy reference computed directly (no cache): what the decoder must reproduce.
  std::vector<int32_t> greedy_reference(std::vector<int32_t> text, int max_new) const {
    std::vector<int32_t> out;
    std::vector<float> lg(cfg_.vocab_size);
    while (static_cast<int>(out.size()) < max_new && static_cast<int>(text.size()) < max_tokens_) {
      logits_after(text, static_cast<int>(text.size()), lg.data());
      int best = 0;
      for (int v = 1; v < cfg_.vocab_size; ++v)
        if (lg[v] > lg[best]) best = v;
      text.push_back(best);
      out.push_back(best);
    }
    return out;
  }

  int64_t forward_calls = 0;

 private:
  struct Entry {
    int32_t token;
    int pos;
  };
  std::vector<Entry>& at(int id) {
    auto it = caches_.find(id);
    if (it == caches_.end()) throw std::runtime_error("unknown sequence");
    return it->second;
  }
  const std::vector<Entry>& at(int id) const {
    auto it = caches_.find(id);
    if (it == caches_.end()) throw std::runtime_error("unknown sequence");
    return it->second;
  }
  uint64_t hash(int64_t a, int64_t b, int64_t v) const {
    uint64_t h = salt_ * 0x9E3779B97F4A7C15ull;
    for (int64_t x : {a, b, v}) {
      h ^= static_cast<uint64_t>(x) + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
      h *= 0xff51afd7ed558ccdull;
      h ^= h >> 33;
    }
    return h;
  }
  static float unit(uint64_t h) { return static_cast<float>((h >> 40) * 0x1.0p-24); }

  rt::ModelConfig cfg_;
  uint64_t salt_;
  float scale_, pos_weight_;
  int max_tokens_;
  int next_id_ = 0;
  std::map<int, std::vector<Entry>> caches_;
};

}  // namespace spw::test

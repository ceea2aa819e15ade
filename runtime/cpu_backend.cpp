#include "runtime/cpu_backend.h"

#include <algorithm>
#include <cmath>

#include "kernels/common/error.h"
#include "kernels/common/rope.h"
#include "runtime/cpu_matmul.h"
#include "runtime/forward_passes.h"
#include "runtime/thread_pool.h"

namespace spw::rt {
namespace {

void rmsnorm(const float* x, const float* w, float* out, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i) out[i] = x[i] * inv * w[i];
}

// A sequence's KV cache, head-major, so that one KV head's keys (and values) are one contiguous
// stream: per layer, values [kv_heads][capacity][head_dim] and keys
// [kv_heads][key_capacity / kKeyTile][head_dim][kKeyTile], tiles of 64 keys stored
// dimension-major (key_scores vectorises the score product over keys: no horizontal sums;
// key_capacity is capacity rounded up to whole tiles). Attention reads a head's keys and values
// in key order; token-major rows ([capacity][kv_heads * head_dim]: a head's 256-byte rows 768
// bytes apart for SmolLM2) made those reads latency-bound: scores and value sums over 30 layers
// x 3 heads x 2048 keys, one thread, 2-core EPYC, best of 5: 18.8 -> 8.4 ms (one query head per
// pass), 17.2 -> 6.2 ms (the group's 3 heads per pass).
struct Sequence {
  bool live = false;
  int len = 0;
  int capacity = 0;                      // tokens each layer's cache holds
  std::vector<std::vector<float>> k, v;  // per layer, see above
};

// Tokens a head's key tiles hold for a cache of `capacity` tokens.
size_t key_capacity(int capacity) { return (static_cast<size_t>(capacity) + kKeyTile - 1) / kKeyTile * kKeyTile; }

// Per forward: where each new token goes and what it may attend to: the cached prefix, then
// n_visible new tokens of its sequence (itself last): a chain's tokens 0 .. index, or a tree
// node's ancestors in index order, listed at Scratch::ancestors[ancestors ..].
struct TokenPlan {
  int seq = 0;         // index into seqs_
  int base = 0;        // cached tokens before this forward
  int index = 0;       // position among the sequence's new tokens
  int pos = 0;         // RoPE position: base + depth
  int n_visible = 0;   // new tokens it attends to, itself included
  int ancestors = -1;  // tree: offset of their indices in Scratch::ancestors; chain: -1
  int n_run = 0;       // its keys [0, n_run) are cache rows [0, n_run): the prefix, a chain's
                       // tokens, a tree node's ancestors while they are tokens 0, 1, 2, ...
};

// One attention work item of a layer: KV head kvh, query heads h0 .. h0 + g - 1 of its group,
// for the forward's tokens [t0, t1) (a tile of one batch entry's tokens: same sequence, same
// cached prefix). Its keys and values are read once for the whole tile.
struct AttnItem {
  int kvh, h0, g, t0, t1;
};

// Tokens per tile at most: a thread's scores hold kMaxTile x group rows of keys.
constexpr int kMaxTile = 8;

// The items of every layer of a forward, KV-head-major (a thread's consecutive items reuse
// the head's rows from L2). Tiles are as long as possible (up to kMaxTile tokens: the prefix
// is read once for more tokens), then shorter, then the group split into parts of gs heads
// (halving), while there are fewer than kItemsPerThread items per thread: the items then
// share out evenly. entries: each batch entry's token range [first, second).
constexpr int kItemsPerThread = 2;
void attention_items(const std::vector<std::pair<int, int>>& entries, int kv_heads, int group, int threads,
                     std::vector<AttnItem>& items) {
  auto tiles = [&](int tile) {
    int n = 0;
    for (const auto& [t0, t1] : entries) n += (t1 - t0 + tile - 1) / tile;
    return n;
  };
  const int want = kItemsPerThread * threads;
  int tile = kMaxTile, gs = group;
  while (tile > 1 && tiles(tile) * kv_heads < want) tile = (tile + 1) / 2;
  while (gs > 1 && tiles(tile) * kv_heads * ((group + gs - 1) / gs) < want) gs = (gs + 1) / 2;
  items.clear();
  for (int kvh = 0; kvh < kv_heads; ++kvh)
    for (const auto& [e0, e1] : entries)
      for (int t0 = e0; t0 < e1; t0 += tile)
        for (int h0 = kvh * group; h0 < (kvh + 1) * group; h0 += gs)
          items.push_back({kvh, h0, std::min(gs, (kvh + 1) * group - h0), t0, std::min(t0 + tile, e1)});
}

class CpuModel final : public Model {
 public:
  CpuModel(LlamaWeights w, const CpuBackendOptions& o)
      : w_(std::move(w)), pool_(o.threads), max_tokens_(o.max_tokens > 0 ? o.max_tokens : w_.config.max_context) {
    const ModelConfig& c = w_.config;
    rope_ = rope_params(c, w_.neox_rope);
    for (int i = 0; i < c.head_dim / 2; ++i) inv_freq_.push_back(rope_inv_freq(i, rope_));
  }

  const ModelConfig& config() const override { return w_.config; }
  std::string backend_name() const override { return "cpu"; }
  size_t weight_bytes() const override {
    auto m = [](const Matrix& x) { return x.data.size() + x.bias.size() * sizeof(float); };
    size_t b = m(w_.token_embd) + m(w_.output) + w_.output_norm.size() * sizeof(float);
    for (const LlamaLayer& l : w_.layers)
      b += m(l.wq) + m(l.wk) + m(l.wv) + m(l.wo) + m(l.w_gate) + m(l.w_up) + m(l.w_down) +
           (l.attn_norm.size() + l.ffn_norm.size()) * sizeof(float);
    return b;
  }
  int max_tokens() const override { return max_tokens_; }

  int create_sequence() override {
    for (size_t i = 0; i < seqs_.size(); ++i)
      if (!seqs_[i].live) { reset(i); return static_cast<int>(i); }
    seqs_.emplace_back();
    reset(seqs_.size() - 1);
    return static_cast<int>(seqs_.size() - 1);
  }
  void free_sequence(int id) override {
    Sequence& s = seq(id, "free_sequence");
    s = Sequence{};
  }
  int cached_tokens(int id) const override { return const_cast<CpuModel*>(this)->seq(id, "cached_tokens").len; }

  void rollback(int id, int new_len) override {
    Sequence& s = seq(id, "rollback");
    check_rollback(s.len, new_len);
    s.len = new_len;
  }

  void keep_tokens(int id, int base, std::span<const int32_t> offsets) override {
    Sequence& s = seq(id, "keep_tokens");
    check_keep_tokens(s.len, base, offsets);
    const size_t hd = w_.config.head_dim;
    for (size_t l = 0; l < s.k.size(); ++l)
      for (int h = 0; h < w_.config.num_kv_heads; ++h)
        for (size_t i = 0; i < offsets.size(); ++i) {
          if (offsets[i] == static_cast<int>(i)) continue;
          const int from = base + offsets[i], to = base + static_cast<int>(i);
          std::copy_n(s.v[l].begin() + cache_row(s, h, from), hd, s.v[l].begin() + cache_row(s, h, to));
          float* kf = s.k[l].data() + key_at(s, h, from);
          float* kt = s.k[l].data() + key_at(s, h, to);
          for (size_t d = 0; d < hd; ++d) kt[d * kKeyTile] = kf[d * kKeyTile];
        }
    s.len = base + static_cast<int>(offsets.size());
  }

  void forward(std::span<const SeqInput> batch, std::vector<float>& logits) override;

 private:
  void attention(int layer, const float* q, float* att);
  size_t kv_dim() const { return static_cast<size_t>(w_.config.num_kv_heads) * w_.config.head_dim; }
  // Offset of KV head h's value row for token pos in a layer's cache of s.
  size_t cache_row(const Sequence& s, int h, int pos) const {
    return (static_cast<size_t>(h) * s.capacity + pos) * w_.config.head_dim;
  }
  // Offset of KV head h's first key tile, and of the key of token pos (element d kKeyTile apart).
  size_t key_tiles(const Sequence& s, int h) const {
    return static_cast<size_t>(h) * key_capacity(s.capacity) * w_.config.head_dim;
  }
  size_t key_at(const Sequence& s, int h, int pos) const {
    return key_tiles(s, h) + static_cast<size_t>(pos / kKeyTile) * kKeyTile * w_.config.head_dim + pos % kKeyTile;
  }
  // Makes every layer's cache of s hold `tokens` tokens (doubling, at most max_tokens_), each
  // head's first s.len rows moved to their new offsets.
  void reserve(Sequence& s, int tokens) {
    if (tokens <= s.capacity) return;
    const int cap = std::min(max_tokens_, std::max(tokens, 2 * s.capacity));
    const size_t hd = w_.config.head_dim, nkv = w_.config.num_kv_heads;
    for (std::vector<float>& layer : s.v) {
      std::vector<float> grown(nkv * cap * hd);
      for (size_t h = 0; h < nkv; ++h)
        std::copy_n(layer.begin() + h * s.capacity * hd, s.len * hd, grown.begin() + h * cap * hd);
      layer = std::move(grown);
    }
    // keys: whole tiles (the last one partly filled)
    const size_t old_keys = key_capacity(s.capacity) * hd, new_keys = key_capacity(cap) * hd;
    const size_t used = key_capacity(s.len) * hd;
    for (std::vector<float>& layer : s.k) {
      std::vector<float> grown(nkv * new_keys);
      for (size_t h = 0; h < nkv; ++h) std::copy_n(layer.begin() + h * old_keys, used, grown.begin() + h * new_keys);
      layer = std::move(grown);
    }
    s.capacity = cap;
  }
  Sequence& seq(int id, const char* where) {
    SPW_CHECK(id >= 0 && id < static_cast<int>(seqs_.size()) && seqs_[id].live, "Model::{}: seq_id = {}: no such sequence",
              where, id);
    return seqs_[id];
  }
  void reset(size_t i) {
    seqs_[i] = Sequence{};
    seqs_[i].live = true;
    seqs_[i].k.resize(w_.config.num_layers);
    seqs_[i].v.resize(w_.config.num_layers);
  }
  // Y[t, :] (+)= X[t, :] . W^T (+ bias) for t < T; output rows split over the threads. The
  // weights stay in their GGUF encoding (dequantised block by block inside matmul_rows).
  void matmul(const float* x, int T, const Matrix& m, float* y, bool accumulate = false) {
    MatmulArgs a{x, T, nullptr, m.rows, m.cols, m.bias.empty() ? nullptr : m.bias.data(), y, accumulate};
    if (m.type == static_cast<uint32_t>(TensorType::F32)) {
      a.w = reinterpret_cast<const float*>(m.data.data());
    } else {
      a.wq = m.data.data();
      a.wq_type = m.type;
    }
    pool_.parallel_for(m.rows, [&](int r0, int r1) { matmul_rows(a, r0, r1); });
  }
  void apply_rope(float* row, int heads, int pos) const {
    for (int h = 0; h < heads; ++h) {
      float* x = row + static_cast<size_t>(h) * rope_.head_dim;
      for (int i = 0; i < rope_.head_dim / 2; ++i) {
        int a, b;
        rope_pair(i, rope_, &a, &b);
        rope_rotate(&x[a], &x[b], static_cast<float>(pos) * inv_freq_[i]);
      }
    }
  }

  // A forward's token plan and activations, kept between forwards (resized, never shrunk: they
  // hold the most tokens a forward carried so far), so that decode steps do not allocate them
  // again; a tree's ancestor lists are one array (a chain needs none: before, every token
  // listed its visible tokens, O(T^2) entries for a T-token prompt).
  struct Scratch {
    std::vector<TokenPlan> plan;
    std::vector<int32_t> ids, depth, ancestors;
    std::vector<std::pair<int, int>> entries;  // each batch entry's tokens [first, second)
    std::vector<AttnItem> items;
    std::vector<float> x, h, q, k, v, att, g, u;
  };

  LlamaWeights w_;
  ThreadPool pool_;
  Scratch sc_;
  int max_tokens_;
  RopeParams rope_;
  std::vector<float> inv_freq_;
  std::vector<Sequence> seqs_;
};

void CpuModel::forward(std::span<const SeqInput> batch, std::vector<float>& logits) {
  const ModelConfig& c = w_.config;
  check_forward_batch(batch, [&](int id) { return seq(id, "forward").len; }, c.vocab_size, max_tokens_);
  std::vector<TokenPlan>& plan = sc_.plan;
  std::vector<int32_t>& ids = sc_.ids;
  plan.clear();
  ids.clear();
  sc_.ancestors.clear();
  sc_.entries.clear();
  for (const SeqInput& in : batch) {
    const Sequence& s = seqs_[in.seq_id];
    const int n = static_cast<int>(in.tokens.size());
    const int t0 = static_cast<int>(plan.size());
    sc_.entries.emplace_back(t0, t0 + n);
    sc_.depth.resize(n);
    for (int i = 0; i < n; ++i) {
      TokenPlan t;
      t.seq = in.seq_id;
      t.base = s.len;
      t.index = i;
      if (in.parents.empty()) {
        sc_.depth[i] = i;
        t.n_visible = i + 1;
        t.n_run = s.len + t.n_visible;
      } else {
        const int p = in.parents[i];
        sc_.depth[i] = p < 0 ? 0 : sc_.depth[p] + 1;
        t.n_visible = sc_.depth[i] + 1;
        t.ancestors = static_cast<int>(sc_.ancestors.size());
        sc_.ancestors.resize(sc_.ancestors.size() + t.n_visible);
        int at = static_cast<int>(sc_.ancestors.size());
        for (int a = i; a >= 0; a = in.parents[a]) sc_.ancestors[--at] = a;
        int run = 0;
        while (run < t.n_visible && sc_.ancestors[t.ancestors + run] == run) ++run;
        t.n_run = s.len + run;
      }
      t.pos = s.len + sc_.depth[i];
      plan.push_back(t);
      ids.push_back(in.tokens[i]);
    }
  }
  const int T = static_cast<int>(plan.size());
  const int H = c.hidden, hd = c.head_dim, nq = c.num_heads, nkv = c.num_kv_heads, group = nq / nkv;
  const size_t kvd = kv_dim();
  // Grow the caches first so that nothing below can fail half-way through.
  for (const auto& in : batch) {
    Sequence& s = seqs_[in.seq_id];
    reserve(s, s.len + static_cast<int>(in.tokens.size()));
  }

  std::vector<float> &x = sc_.x, &h = sc_.h, &q = sc_.q, &k = sc_.k, &v = sc_.v, &att = sc_.att, &g = sc_.g,
                     &u = sc_.u;
  x.resize(static_cast<size_t>(T) * H);
  h.resize(x.size());
  q.resize(static_cast<size_t>(T) * nq * hd);
  att.resize(q.size());
  k.resize(static_cast<size_t>(T) * kvd);
  v.resize(k.size());
  g.resize(static_cast<size_t>(T) * c.intermediate);
  u.resize(g.size());
  for (int t = 0; t < T; ++t) w_.token_embd.dequantize_rows(ids[t], 1, &x[static_cast<size_t>(t) * H]);

  attention_items(sc_.entries, nkv, group, pool_.size(), sc_.items);
  for (int l = 0; l < c.num_layers; ++l) {
    const LlamaLayer& L = w_.layers[l];
    for (int t = 0; t < T; ++t) rmsnorm(&x[size_t(t) * H], L.attn_norm.data(), &h[size_t(t) * H], H, c.rms_eps);
    matmul(h.data(), T, L.wq, q.data());
    matmul(h.data(), T, L.wk, k.data());
    matmul(h.data(), T, L.wv, v.data());
    for (int t = 0; t < T; ++t) {
      apply_rope(&q[size_t(t) * nq * hd], nq, plan[t].pos);
      apply_rope(&k[size_t(t) * kvd], nkv, plan[t].pos);
      Sequence& s = seqs_[plan[t].seq];
      for (int kvh = 0; kvh < nkv; ++kvh) {
        const int pos = plan[t].base + plan[t].index;
        std::copy_n(&v[size_t(t) * kvd + size_t(kvh) * hd], hd, s.v[l].begin() + cache_row(s, kvh, pos));
        const float* kr = &k[size_t(t) * kvd + size_t(kvh) * hd];
        float* kt = s.k[l].data() + key_at(s, kvh, pos);
        for (int d = 0; d < hd; ++d) kt[size_t(d) * kKeyTile] = kr[d];
      }
    }
    attention(l, q.data(), att.data());
    matmul(att.data(), T, L.wo, x.data(), /*accumulate=*/true);
    for (int t = 0; t < T; ++t) rmsnorm(&x[size_t(t) * H], L.ffn_norm.data(), &h[size_t(t) * H], H, c.rms_eps);
    matmul(h.data(), T, L.w_gate, g.data());
    matmul(h.data(), T, L.w_up, u.data());
    silu_mul(g.data(), u.data(), g.size());
    matmul(g.data(), T, L.w_down, x.data(), /*accumulate=*/true);
  }
  // lm_head over the wanted rows only (each entry's last logits_rows tokens), packed in order;
  // the matmul is batch-invariant, so a row's logits do not depend on which others are wanted.
  int R = 0, t0 = 0;
  for (const SeqInput& in : batch) {
    const int n = static_cast<int>(in.tokens.size());
    for (int t = t0 + n - wanted_rows(in); t < t0 + n; ++t, ++R)
      rmsnorm(&x[size_t(t) * H], w_.output_norm.data(), &h[size_t(R) * H], H, c.rms_eps);
    t0 += n;
  }
  logits.resize(static_cast<size_t>(R) * c.vocab_size);
  if (R > 0) matmul(h.data(), R, c.tied_embeddings ? w_.token_embd : w_.output, logits.data());
  for (const auto& in : batch) seqs_[in.seq_id].len += static_cast<int>(in.tokens.size());
}

// Attention of one layer: each (token, query head) sees its sequence's cached prefix and its
// visible new tokens (key order: the prefix, then those in index order). An item (one KV head,
// gs of its query heads, a tile of one entry's tokens) first scores all its query rows (the g
// rows of each token, token after token) against the head's key tiles in one key_scores call,
// which reads each tile of 64 keys from memory once for all of them (then from L1); then, after
// each row's softmax, walks the head's value rows in chunks of about 16 KB (L1), each chunk
// weighted into every row's output. So a tile's tokens read the prefix's K and V from memory
// once, not once per token. A token's keys [0, n_run) are cache positions [0, n_run) (the
// prefix plus a chain's new tokens); a tree token's other ancestors are scattered positions, a
// one-key key_scores call and one weighted row each, after the run. A score takes the same
// operations whichever call computes it (key_scores' promise) and every output element sums its
// terms in key order (accumulate_weighted_rows composes over consecutive ranges), so a token's
// bits do not depend on the tile, the chunking, gs or the threads (batch invariance).
// SmolLM2 `spillway step`, 2-core EPYC, 3 alternating runs, before (one token an item, the
// token-major cache) -> after: context 2048, k = 1 15.8-20.1 -> 9.8-12.7 ms, k = 4 26.1-32.7 ->
// 18.6-21.4, k = 8 41.7-51.0 -> 32.8-37.8; context 128 unchanged within noise. Then scores by
// key_scores over transposed key tiles instead of one matmul_rows product per token over
// row-major keys (CPU-only builds alternating, 3 rounds, best: bench/results/cpu-amd-epyc/
// runtime_step_key_tiles_ab): context 2048, k = 1 10.1 -> 10.3 ms (memory-bound, noise), k = 4
// 18.6 -> 16.5, k = 8 32.6 -> 28.3, k = 64 208 -> 172; context 512, k = 8 21.1 -> 19.8.
void CpuModel::attention(int l, const float* q, float* att) {
  const std::vector<TokenPlan>& plan = sc_.plan;
  const std::vector<AttnItem>& items = sc_.items;
  const int* ancestors = sc_.ancestors.data();
  const ModelConfig& c = w_.config;
  const int hd = c.head_dim, nq = c.num_heads;
  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
  const int chunk = std::max(16, 16384 / (hd * static_cast<int>(sizeof(float))));  // value rows per chunk (16 KB)
  pool_.parallel_for(static_cast<int>(items.size()), [&](int w0, int w1) {
    thread_local std::vector<float> scores;  // [tile][g][n_max]; grows to the longest context once per thread
    thread_local std::vector<const float*> qs;
    thread_local std::vector<float*> outs;
    thread_local std::vector<int> limits;
    for (int w = w0; w < w1; ++w) {
      const AttnItem& it = items[w];
      const int n = it.t1 - it.t0, g = it.g;
      const TokenPlan& p0 = plan[it.t0];  // the tile's tokens share the sequence and its prefix
      const Sequence& s = seqs_[p0.seq];
      const float* kc = s.k[l].data() + key_tiles(s, it.kvh);  // the head's key tiles
      const float* vc = s.v[l].data() + cache_row(s, it.kvh, 0);
      auto key_row = [&](const TokenPlan& p, int j) {
        return j < p.base || p.ancestors < 0 ? j : p.base + ancestors[p.ancestors + j - p.base];
      };
      int n_keys[kMaxTile], n_run[kMaxTile], n_max = 0, run_max = 0;
      for (int i = 0; i < n; ++i) {
        const TokenPlan& p = plan[it.t0 + i];
        n_keys[i] = p.base + p.n_visible;
        n_run[i] = p.n_run;
        n_max = std::max(n_max, n_keys[i]);
        run_max = std::max(run_max, n_run[i]);
      }
      scores.resize(size_t(n) * g * n_max);
      auto rows_of = [&](int i) { return &scores[size_t(i) * g * n_max]; };  // token i's g score rows
      auto query = [&](int i) { return &q[(size_t(it.t0 + i) * nq + it.h0) * hd]; };
      auto out = [&](int i, int gi) { return &att[(size_t(it.t0 + i) * nq + it.h0 + gi) * hd]; };
      // the tile's query rows, token after token (g each), with their score rows and run ends
      const int rows = n * g;
      qs.resize(size_t(rows));
      outs.resize(size_t(rows));
      limits.resize(size_t(rows));
      for (int i = 0; i < n; ++i)
        for (int gi = 0; gi < g; ++gi) {
          qs[size_t(i) * g + gi] = query(i) + size_t(gi) * hd;
          outs[size_t(i) * g + gi] = rows_of(i) + size_t(gi) * n_max;
          limits[size_t(i) * g + gi] = n_run[i];
        }
      key_scores({qs.data(), outs.data(), limits.data(), rows, kc, hd, 0, run_max, 0});  // (groups keys for L1)
      for (int i = 0; i < n; ++i) {
        const TokenPlan& p = plan[it.t0 + i];
        for (int j = n_run[i]; j < n_keys[i]; ++j) {  // a scattered key: its tile, one lane stored
          const int r = key_row(p, j);
          key_scores({qs.data() + size_t(i) * g, outs.data() + size_t(i) * g, nullptr, g, kc, hd, r, r + 1, r - j});
        }
        softmax_rows(rows_of(i), g, n_keys[i], n_max, scale);
        for (int gi = 0; gi < g; ++gi) std::fill_n(out(i, gi), hd, 0.f);
      }
      for (int c0 = 0; c0 < run_max; c0 += chunk)
        for (int i = 0; i < n; ++i)
          if (n_run[i] > c0) {
            const int count = std::min(c0 + chunk, n_run[i]) - c0;
            for (int gi = 0; gi < g; ++gi)
              accumulate_weighted_rows(rows_of(i) + size_t(gi) * n_max + c0, count, vc + size_t(c0) * hd, hd, hd,
                                       out(i, gi));
          }
      for (int i = 0; i < n; ++i) {
        const TokenPlan& p = plan[it.t0 + i];
        for (int j = n_run[i]; j < n_keys[i]; ++j)
          for (int gi = 0; gi < g; ++gi)
            accumulate_weighted_rows(rows_of(i) + size_t(gi) * n_max + j, 1, vc + size_t(key_row(p, j)) * hd, 0, hd,
                                     out(i, gi));
      }
    }
  });
}

}  // namespace

std::unique_ptr<Model> make_cpu_model(LlamaWeights weights, const CpuBackendOptions& options) {
  SPW_CHECK_ARG(options.max_tokens >= 0, "make_cpu_model", "max_tokens", options.max_tokens, "must be >= 0");
  SPW_CHECK_ARG(options.threads >= 0, "make_cpu_model", "threads", options.threads, "must be >= 0 (0: all hardware threads)");
  return std::make_unique<CpuModel>(std::move(weights), options);
}

}  // namespace spw::rt

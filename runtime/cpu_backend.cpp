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

struct Sequence {
  bool live = false;
  int len = 0;
  std::vector<std::vector<float>> k, v;  // per layer: [capacity, kv_heads * head_dim]
};

// Query heads per attention work item: the whole group that shares a KV head (its K and V rows
// are then read once for all of them), halved while the forward's items (tokens x KV heads x
// parts of a group) are fewer than 4 per thread, down to one head.
int heads_per_item(int tokens_x_kv_heads, int group, int threads) {
  int gs = group;
  while (gs > 1 && tokens_x_kv_heads * ((group + gs - 1) / gs) < 4 * threads) gs = (gs + 1) / 2;
  return gs;
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
    const size_t row = kv_dim();
    for (size_t l = 0; l < s.k.size(); ++l)
      for (size_t i = 0; i < offsets.size(); ++i) {
        if (offsets[i] == static_cast<int>(i)) continue;
        const size_t from = (base + offsets[i]) * row, to = (base + i) * row;
        std::copy_n(s.k[l].begin() + from, row, s.k[l].begin() + to);
        std::copy_n(s.v[l].begin() + from, row, s.v[l].begin() + to);
      }
    s.len = base + static_cast<int>(offsets.size());
  }

  void forward(std::span<const SeqInput> batch, std::vector<float>& logits) override;

 private:
  size_t kv_dim() const { return static_cast<size_t>(w_.config.num_kv_heads) * w_.config.head_dim; }
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

  LlamaWeights w_;
  ThreadPool pool_;
  int max_tokens_;
  RopeParams rope_;
  std::vector<float> inv_freq_;
  std::vector<Sequence> seqs_;
};

// Per forward: where each new token goes and what it may attend to.
struct TokenPlan {
  int seq = 0;       // index into seqs_
  int base = 0;      // cached tokens before this forward
  int index = 0;     // position among the sequence's new tokens
  int pos = 0;       // RoPE position: base + depth
  std::vector<int> visible;  // new-token indices (of the same sequence) it attends to, incl. itself
};

void CpuModel::forward(std::span<const SeqInput> batch, std::vector<float>& logits) {
  const ModelConfig& c = w_.config;
  check_forward_batch(batch, [&](int id) { return seq(id, "forward").len; }, c.vocab_size, max_tokens_);
  std::vector<TokenPlan> plan;
  std::vector<int32_t> ids;
  for (const SeqInput& in : batch) {
    const Sequence& s = seqs_[in.seq_id];
    const int n = static_cast<int>(in.tokens.size());
    std::vector<int> depth(n);
    for (int i = 0; i < n; ++i) {
      TokenPlan t;
      t.seq = in.seq_id;
      t.base = s.len;
      t.index = i;
      if (in.parents.empty()) {
        depth[i] = i;
        for (int j = 0; j <= i; ++j) t.visible.push_back(j);
      } else {
        const int p = in.parents[i];
        depth[i] = p < 0 ? 0 : depth[p] + 1;
        for (int a = i; a >= 0; a = in.parents[a]) t.visible.push_back(a);
        std::reverse(t.visible.begin(), t.visible.end());
      }
      t.pos = s.len + depth[i];
      plan.push_back(std::move(t));
      ids.push_back(in.tokens[i]);
    }
  }
  const int T = static_cast<int>(plan.size());
  const int H = c.hidden, hd = c.head_dim, nq = c.num_heads, nkv = c.num_kv_heads, group = nq / nkv;
  const size_t kvd = kv_dim();
  // Grow the caches first so that nothing below can fail half-way through.
  for (const auto& in : batch) {
    Sequence& s = seqs_[in.seq_id];
    const size_t need = (s.len + in.tokens.size()) * kvd;
    for (int l = 0; l < c.num_layers; ++l)
      if (s.k[l].size() < need) {
        const size_t cap = std::min<size_t>(static_cast<size_t>(max_tokens_) * kvd, std::max(need, s.k[l].size() * 2));
        s.k[l].resize(cap);
        s.v[l].resize(cap);
      }
  }

  std::vector<float> x(static_cast<size_t>(T) * H), h(x.size()), q(static_cast<size_t>(T) * nq * hd),
      k(static_cast<size_t>(T) * kvd), v(k.size()), att(q.size()), g(static_cast<size_t>(T) * c.intermediate),
      u(g.size());
  for (int t = 0; t < T; ++t) w_.token_embd.dequantize_rows(ids[t], 1, &x[static_cast<size_t>(t) * H]);

  const float scale = 1.f / std::sqrt(static_cast<float>(hd));
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
      std::copy_n(&k[size_t(t) * kvd], kvd, s.k[l].begin() + (plan[t].base + plan[t].index) * kvd);
      std::copy_n(&v[size_t(t) * kvd], kvd, s.v[l].begin() + (plan[t].base + plan[t].index) * kvd);
    }
    // Attention: each (token, head) sees the cached prefix and its visible new tokens. A work
    // item is one token, one KV head and up to gs of its group's query heads, whose scores are
    // one matmul_rows product of their queries with the head's slice of the cached K rows
    // (consecutive keys in one call, a tree token's scattered ancestors one row each): the K
    // rows are read once for the gs heads and the product's register blocks are fuller (SmolLM2
    // at context 2000, 3 heads a group: k = 2..4 steps 10-20 % faster than one head an item).
    // gs is the whole group unless that leaves too few items to share among the threads (one
    // token: 3 KV heads for 2 threads); items are KV-head-major, so a thread's consecutive
    // items reuse the head's rows from L2. Products are batch-invariant, so a token's scores do
    // not depend on what else is in the forward or on gs. The value sums go head by head
    // (several heads per pass over the V rows measured no faster).
    const int gs = heads_per_item(T * nkv, group, pool_.size()), parts = (group + gs - 1) / gs;
    pool_.parallel_for(T * nkv * parts, [&](int w0, int w1) {
      thread_local std::vector<float> scores;  // [gs][n_keys]; grows to the longest context once per thread
      for (int w = w0; w < w1; ++w) {
        const int kvh = w / (T * parts), t = w / parts % T, h0 = kvh * group + w % parts * gs;
        const int g = std::min(gs, (kvh + 1) * group - h0);  // query heads h0 .. h0 + g - 1
        const TokenPlan& p = plan[t];
        const Sequence& s = seqs_[p.seq];
        const float* qv = &q[(size_t(t) * nq + h0) * hd];  // the item's query rows
        const float* kc = s.k[l].data() + size_t(kvh) * hd;
        const float* vc = s.v[l].data() + size_t(kvh) * hd;
        const int n_vis = static_cast<int>(p.visible.size());
        const int n_keys = p.base + n_vis;
        auto key_row = [&](int j) { return j < p.base ? j : p.base + p.visible[j - p.base]; };
        scores.resize(size_t(g) * n_keys);
        // Keys [0, n_run) are cache rows [0, n_run): the prefix plus a chain's new tokens.
        int n_run = p.base;
        while (n_run < n_keys && key_row(n_run) == n_run) ++n_run;
        MatmulArgs sa{qv, g, kc, n_run, hd, nullptr, scores.data(), false};
        sa.w_stride = static_cast<long>(kvd);
        sa.y_stride = n_keys;
        if (n_run > 0) matmul_rows(sa, 0, n_run);
        for (int j = n_run; j < n_keys; ++j) {
          MatmulArgs one{qv, g, kc + size_t(key_row(j)) * kvd, 1, hd, nullptr, &scores[j], false};
          one.y_stride = n_keys;
          matmul_rows(one, 0, 1);
        }
        softmax_rows(scores.data(), g, n_keys, n_keys, scale);
        for (int gi = 0; gi < g; ++gi) {
          const float* pr = &scores[size_t(gi) * n_keys];
          float* o = &att[(size_t(t) * nq + h0 + gi) * hd];
          std::fill_n(o, hd, 0.f);
          // Value rows weighted in key order: the contiguous run in one call, then the others.
          if (n_run > 0) accumulate_weighted_rows(pr, n_run, vc, static_cast<long>(kvd), hd, o);
          for (int j = n_run; j < n_keys; ++j)
            accumulate_weighted_rows(&pr[j], 1, vc + size_t(key_row(j)) * kvd, 0, hd, o);
        }
      }
    });
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

}  // namespace

std::unique_ptr<Model> make_cpu_model(LlamaWeights weights, const CpuBackendOptions& options) {
  SPW_CHECK_ARG(options.max_tokens >= 0, "make_cpu_model", "max_tokens", options.max_tokens, "must be >= 0");
  SPW_CHECK_ARG(options.threads >= 0, "make_cpu_model", "threads", options.threads, "must be >= 0 (0: all hardware threads)");
  return std::make_unique<CpuModel>(std::move(weights), options);
}

}  // namespace spw::rt

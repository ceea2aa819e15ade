// CUDA backend against the CPU backend on tiny random models, fp16 and bf16 (skipped without a
// usable GPU): greedy decoding for 64 steps, chain and tree forwards, rollback and keep_tokens,
// batches of sequences of different lengths (decode_attention and tree_attention paths),
// prefill over several passes, bad input rejected as the CPU backend rejects it, CUDA graphs
// against plain launches, and (on spw-sim) no allocation in warm passes.
#include <cmath>
#include <cstring>

#include "tests/runtime/cuda_vs_cpu.h"

using namespace spw;
using namespace spw::rt;

namespace {

class CudaVsCpu : public ::testing::TestWithParam<DType> {
 protected:
  static void SetUpTestSuite() { models_ = new test::TinyModels(); }
  static void TearDownTestSuite() {
    delete models_;
    models_ = nullptr;
  }
  // page_size 4 by default so that every test crosses pages.
  test::Both both(const std::string& path, CudaBackendOptions o = {.page_size = 4}) {
    o.dtype = GetParam();
    return {load_model(path), test::cuda_model(path, o)};
  }
  test::Tolerance tol() const { return test::model_tolerance(GetParam()); }
  // The untied model alone, passes of at most 8 tokens (the wanted-row tests' setting).
  std::unique_ptr<Model> untied_8() {
    CudaBackendOptions o{.page_size = 4, .max_forward_tokens = 8};
    o.dtype = GetParam();
    return test::cuda_model(models_->untied, o);
  }
  static inline test::TinyModels* models_ = nullptr;
};

// Prompts of three lengths, one crossing a pass of 8 tokens.
const std::vector<int32_t> kTwelve{256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, kThree{256, 40, 41},
    kFive{256, 50, 51, 52, 53};

const std::vector<int32_t> kPrompt = {256, 72, 101, 108, 108, 111, 44, 32, 119};

// Tied lm_head: each backend decodes greedily on its own logits; the tokens must be equal and
// every step's logits close.
TEST_P(CudaVsCpu, GreedyDecodingTiedModel64Steps) {
  SPW_REQUIRE_GPU();
  auto m = both(models_->tied);
  const int V = m.vocab(), s = m.create();
  m.forward({{s, kPrompt, {}}});
  ASSERT_TRUE(m.rows_close(tol()));
  std::vector<int32_t> tc, tg;
  for (int step = 0; step < 64; ++step) {
    tc.push_back(test::argmax(m.lc.data() + m.lc.size() - V, V));
    tg.push_back(test::argmax(m.lg.data() + m.lg.size() - V, V));
    ASSERT_EQ(tc, tg) << "step " << step;
    m.cpu->forward(std::vector<SeqInput>{{s, std::span(&tc.back(), 1), {}}}, m.lc);
    m.gpu->forward(std::vector<SeqInput>{{s, std::span(&tg.back(), 1), {}}}, m.lg);
    ASSERT_TRUE(m.rows_close(tol())) << "step " << step;
  }
  m.expect_same_lengths({s});
}

// Untied models have near ties (random logits of std ~1 over 320 tokens): both backends are fed
// the CPU's greedy token for 64 steps; the CUDA argmax must be the same token except at a near
// tie within the tolerance (counted, printed), and every step's logits close.
TEST_P(CudaVsCpu, GreedyTokensMatchCpuFor64Steps) {
  SPW_REQUIRE_GPU();
  for (const std::string* path : {&models_->untied, &models_->qwen2}) {
    auto m = both(*path);
    const int V = m.vocab(), s = m.create();
    m.forward({{s, kPrompt, {}}});
    ASSERT_TRUE(m.rows_close(tol())) << *path;
    int near_ties = 0;
    for (int step = 0; step < 64; ++step) {
      const float* c = m.lc.data() + m.lc.size() - V;
      ASSERT_TRUE(test::same_greedy(c, m.lg.data() + m.lg.size() - V, V, tol(), &near_ties)) << *path << " " << step;
      const int32_t next = test::argmax(c, V);
      m.forward({{s, std::span(&next, 1), {}}});
      ASSERT_TRUE(m.rows_close(tol())) << *path << " step " << step;
    }
    std::printf("%s: %d near ties in 64 greedy steps\n", path->c_str(), near_ties);
  }
}

TEST_P(CudaVsCpu, ChainForwardOverCachedPrefix) {
  SPW_REQUIRE_GPU();
  for (int page : {4, 16}) {
    auto m = both(models_->qwen2, {.page_size = page});
    const int s = m.create();
    const std::vector<int32_t> prefix(kPrompt.begin(), kPrompt.begin() + 5), chain = {5, 6, 7, 8, 9, 10, 11};
    m.forward({{s, prefix, {}}});
    ASSERT_TRUE(m.rows_close(tol()));
    m.forward({{s, chain, {}}});  // tree_attention, chain case, prefix from the pool
    EXPECT_EQ(m.lg.size(), chain.size() * m.vocab());
    EXPECT_TRUE(m.rows_close(tol())) << "page_size " << page;
    m.expect_same_lengths({s});
  }
}

TEST_P(CudaVsCpu, TreeForwardThenKeepAcceptedPath) {
  SPW_REQUIRE_GPU();
  auto m = both(models_->untied);
  const int s = m.create();
  const std::vector<int32_t> prefix(kPrompt.begin(), kPrompt.begin() + 3);
  m.forward({{s, prefix, {}}});
  //        0(5) - 1(6) - 3(8)
  //     /        \ 2(7)
  //  4(9) - 5(10)
  const std::vector<int32_t> tokens = {5, 6, 7, 8, 9, 10}, parents = {-1, 0, 1, 1, -1, 4};
  m.forward({{s, tokens, parents}});
  EXPECT_TRUE(m.rows_close(tol()));
  m.keep(s, 3, {0, 1, 3});  // path 0 -> 1 -> 3: token 3 moves to slot 2
  m.expect_same_lengths({s});
  const int32_t next = 42;
  m.forward({{s, std::span(&next, 1), {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  // Overlapping moves (a row is read, then overwritten by a later move), across pages.
  const std::vector<int32_t> eight = {20, 21, 22, 23, 24, 25, 26, 27};
  m.forward({{s, eight, {}}});
  m.keep(s, 7, {1, 2, 5, 7});
  m.expect_same_lengths({s});
  const std::vector<int32_t> more = {30, 31, 32};
  m.forward({{s, more, {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  m.keep(s, 2, {0, 1, 2});  // nothing moves, only truncation
  m.forward({{s, std::span(&next, 1), {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  m.expect_same_lengths({s});
}

// Batch-invariant mode: every token's logits have the same bits however it is fed (prefill in
// one pass or in pieces, decoded alone, in a chain, on a token-tree path beside siblings, batched
// beside another sequence), and stay close to the CPU backend's. The prompt crosses the 256-token
// KV chunk of the invariant attention, so chunked and merged states are compared too.
TEST_P(CudaVsCpu, BatchInvariantLogitsAreTheSameBitsInEveryPass) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  std::vector<int32_t> prompt(270), cont(8);
  for (auto& t : prompt) t = std::uniform_int_distribution<int32_t>(0, 300)(rng);
  for (auto& t : cont) t = std::uniform_int_distribution<int32_t>(0, 300)(rng);
  for (int page : {4, 16}) {
    auto m = both(models_->qwen2, {.page_size = page, .max_forward_tokens = 300, .batch_invariant = true});
    const size_t V = m.vocab();
    Model& g = *m.gpu;
    auto row = [&](const std::vector<float>& l, size_t r) {
      return std::vector<float>(l.begin() + r * V, l.begin() + (r + 1) * V);
    };
    auto same = [&](const std::vector<float>& a, const std::vector<float>& b) {
      return std::memcmp(a.data(), b.data(), V * sizeof(float)) == 0;
    };
    // Reference sequence: the prompt in one pass (also checked against the CPU), then `cont`
    // decoded one token at a time.
    const int a = m.create();
    m.forward({{a, prompt, {}}});
    ASSERT_TRUE(m.rows_close(tol())) << "page " << page;
    const std::vector<float> prompt_logits = m.lg;
    std::vector<std::vector<float>> ar;  // ar[i]: logits after cont[i]
    for (int32_t t : cont) {
      m.forward({{a, std::span(&t, 1), {}}});
      ASSERT_TRUE(m.rows_close(tol())) << "page " << page;
      ar.push_back(m.lg);
    }
    // The prompt in pieces of 1, 5, 64, 100 and 100 tokens: every row the same bits.
    const int b = g.create_sequence();
    std::vector<float> l;
    size_t at = 0;
    for (size_t n : {1, 5, 64, 100, 100}) {
      g.forward(std::vector<SeqInput>{{b, std::span(prompt).subspan(at, n), {}}}, l);
      for (size_t r = 0; r < n; ++r)
        ASSERT_TRUE(same(row(l, r), row(prompt_logits, at + r))) << "page " << page << " prompt row " << at + r;
      at += n;
    }
    // `cont` as one chain: row i has the bits of decoding cont[i] alone.
    g.forward(std::vector<SeqInput>{{b, cont, {}}}, l);
    for (size_t i = 0; i < cont.size(); ++i)
      ASSERT_TRUE(same(row(l, i), ar[i])) << "page " << page << " chain row " << i;
    // A token tree whose path 0 -> 2 -> 3 -> 6 is cont[0..3], with siblings (tokens 1, 4, 5):
    // the path's rows have the bits of the decoded tokens; after keeping the path, the next
    // token batched beside another sequence's chain still does.
    g.rollback(b, static_cast<int>(prompt.size()));
    const std::vector<int32_t> tree = {cont[0], 7, cont[1], cont[2], 9, 11, cont[3]}, parents = {-1, 0, 0, 2, 2, -1, 3};
    g.forward(std::vector<SeqInput>{{b, tree, parents}}, l);
    const int path[] = {0, 2, 3, 6};
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(same(row(l, path[i]), ar[i])) << "page " << page << " tree path " << i;
    g.keep_tokens(b, static_cast<int>(prompt.size()), std::vector<int32_t>{0, 2, 3, 6});
    const int c = g.create_sequence();
    const std::vector<int32_t> other = {1, 2, 3};
    g.forward(std::vector<SeqInput>{{c, other, {}}, {b, std::span(&cont[4], 1), {}}}, l);
    ASSERT_TRUE(same(row(l, 3), ar[4])) << "page " << page << " batched step";
  }
}

TEST_P(CudaVsCpu, RollbackFreesPagesAndContinues) {
  SPW_REQUIRE_GPU();
  auto m = both(models_->tied);
  const int s = m.create();
  const std::vector<int32_t> ids = {256, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  m.forward({{s, ids, {}}});
  m.rollback(s, 3);  // 11 -> 3 tokens: two of three pages freed
  const std::vector<int32_t> more = {77, 78, 79, 80, 81};
  m.forward({{s, more, {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  m.rollback(s, 0);
  m.forward({{s, more, {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  m.expect_same_lengths({s});
}

TEST_P(CudaVsCpu, BatchOfSequencesWithDifferentLengths) {
  SPW_REQUIRE_GPU();
  auto m = both(models_->qwen2);
  std::vector<int> seqs;
  std::vector<std::vector<int32_t>> prompts;
  for (int len : {1, 17, 40, 3}) {
    seqs.push_back(m.create());
    std::vector<int32_t> p(len);
    for (int i = 0; i < len; ++i) p[i] = (len * 31 + i * 7) % 320;
    prompts.push_back(p);
  }
  std::vector<SeqInput> prefill;
  for (size_t i = 0; i < seqs.size(); ++i) prefill.push_back({seqs[i], prompts[i], {}});
  m.forward(prefill);  // one pass, tree_attention (chains of different lengths, empty prefixes)
  EXPECT_TRUE(m.rows_close(tol()));
  std::vector<int32_t> next(4);
  for (int step = 0; step < 6; ++step) {  // every sequence one token: decode_attention
    std::vector<SeqInput> b;
    for (size_t i = 0; i < seqs.size(); ++i) {
      next[i] = static_cast<int32_t>((step * 11 + i * 3) % 320);
      b.push_back({seqs[i], std::span(&next[i], 1), {}});
    }
    m.forward(b);
    EXPECT_TRUE(m.rows_close(tol())) << "step " << step;
  }
  // A mixed batch: chain, tree, single token, chain (tree_attention over prefixes of 7..46).
  const std::vector<int32_t> c3 = {1, 2, 3}, tree = {4, 5, 6, 7, 8, 9}, tp = {-1, 0, 0, 1, -1, 4}, c2 = {10, 11};
  const int32_t one = 12;
  m.forward({{seqs[0], c3, {}}, {seqs[1], tree, tp}, {seqs[2], std::span(&one, 1), {}}, {seqs[3], c2, {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  // Free one, create another (same id on both), batch again.
  m.free(seqs[1]);
  seqs[1] = m.create();
  m.forward({{seqs[1], c2, {}}, {seqs[2], c3, {}}});
  EXPECT_TRUE(m.rows_close(tol()));
  m.expect_same_lengths({seqs[0], seqs[1], seqs[2], seqs[3]});
}

TEST_P(CudaVsCpu, PrefillLongerThanMaxForwardTokens) {
  SPW_REQUIRE_GPU();
  std::vector<int32_t> prompt(300), other(150);
  for (int i = 0; i < 300; ++i) prompt[i] = (i * 13 + 5) % 320;
  for (int i = 0; i < 150; ++i) other[i] = (i * 17 + 3) % 320;
  // 48 tokens per pass: 7 passes (flat_gemm mma path); 256: pieces of 128 (tree_attention limit,
  // cuBLASLt for M > 64); 64 with two prompts: pieces of both sequences share passes.
  for (int mft : {48, 256, 64}) {
    auto m = both(models_->untied, {.page_size = 16, .max_forward_tokens = mft});
    const int a = m.create(), b = m.create();
    if (mft == 64) m.forward({{a, prompt, {}}, {b, other, {}}});
    else m.forward({{a, prompt, {}}});
    EXPECT_TRUE(m.rows_close(tol())) << "max_forward_tokens " << mft;
    const int32_t t1 = 7, t2 = 9;
    m.forward({{a, std::span(&t1, 1), {}}, {b, std::span(&t2, 1), {}}});
    EXPECT_TRUE(m.rows_close(tol())) << "max_forward_tokens " << mft;
    m.expect_same_lengths({a, b});
  }
}

TEST_P(CudaVsCpu, BadInputRejectedAsOnTheCpu) {
  SPW_REQUIRE_GPU();
  auto m = both(models_->tied);
  Model& g = *m.gpu;
  std::vector<float> logits;
  std::vector<int32_t> ok = {1, 2};
  const int s = m.create();
  auto fwd = [&](std::vector<SeqInput> b) { g.forward(b, logits); };
  EXPECT_THROW_MSG(fwd({{99, ok, {}}}), "Model::forward: seq_id = 99: no such sequence");
  std::vector<int32_t> bad = {1, 320};
  EXPECT_THROW_MSG(fwd({{s, bad, {}}}), "batch[0].tokens[1] = 320: must be in 0..319");
  std::vector<int32_t> parents = {-1, 1}, short_parents = {-1}, none;
  EXPECT_THROW_MSG(fwd({{s, ok, parents}}), "batch[0].parents[1] = 1");
  EXPECT_THROW_MSG(fwd({{s, ok, short_parents}}), "parents.size()");
  EXPECT_THROW_MSG(fwd({{s, none, {}}}), "tokens.size() = 0");
  std::vector<int32_t> many(513, 1);
  EXPECT_THROW_MSG(fwd({{s, many, {}}}), "exceed the context limit 512");
  std::vector<int32_t> big_tree(129, 1), chain_parents(129);
  for (int i = 0; i < 129; ++i) chain_parents[i] = i - 1;
  EXPECT_THROW_MSG(fwd({{s, big_tree, chain_parents}}), "at most 128 tokens");
  EXPECT_THROW_MSG(fwd({{s, ok, {}}, {s, ok, {}}}), "appears twice");
  EXPECT_EQ(g.cached_tokens(s), 0);  // nothing appended by the failed calls
  EXPECT_THROW_MSG(g.rollback(s, 1), "Model::rollback: new_len = 1: must be in 0..0");
  fwd({{s, ok, {}}});
  std::vector<int32_t> unsorted = {1, 0}, past = {5};
  EXPECT_THROW_MSG(g.keep_tokens(s, 0, unsorted), "strictly increasing");
  EXPECT_THROW_MSG(g.keep_tokens(s, 0, past), "Model::keep_tokens: offsets[0] = 5");
  EXPECT_THROW_MSG(g.keep_tokens(s, 3, {}), "Model::keep_tokens: base = 3: must be in 0..2");
  EXPECT_THROW_MSG(g.cached_tokens(7), "Model::cached_tokens: seq_id = 7: no such sequence");
  EXPECT_THROW_MSG(g.free_sequence(7), "Model::free_sequence: seq_id = 7");
  EXPECT_EQ(g.cached_tokens(s), 2);
}

TEST_P(CudaVsCpu, PoolExhaustionLeavesSequencesUnchanged) {
  SPW_REQUIRE_GPU();
  const ModelConfig c = load_model(models_->tied)->config();
  // Room for 4 pages of 16 tokens: 64 tokens in all.
  const long long page_bytes = 16LL * c.num_kv_heads * c.head_dim * 2 * c.num_layers * dtype_size(GetParam());
  auto g = test::cuda_model(models_->tied, {.dtype = GetParam(), .page_size = 16, .kv_cache_bytes = 4 * page_bytes});
  const int a = g->create_sequence(), b = g->create_sequence();
  std::vector<int32_t> forty(40, 3), thirty(30, 4);
  std::vector<float> logits;
  g->forward(std::vector<SeqInput>{{a, forty, {}}}, logits);  // 3 pages
  EXPECT_THROW_MSG(g->forward(std::vector<SeqInput>{{a, std::span(forty.data(), 8), {}}, {b, thirty, {}}}, logits),
                   "the KV cache pool is exhausted");
  EXPECT_EQ(g->cached_tokens(a), 40);
  EXPECT_EQ(g->cached_tokens(b), 0);
  g->rollback(a, 10);  // 1 page
  g->forward(std::vector<SeqInput>{{a, std::span(forty.data(), 8), {}}, {b, thirty, {}}}, logits);
  EXPECT_EQ(g->cached_tokens(a), 18);
  EXPECT_EQ(g->cached_tokens(b), 30);
}

TEST_P(CudaVsCpu, LoadModelWithBackendCuda) {
  SPW_REQUIRE_GPU();
  auto g = load_model(models_->qwen2, {.backend = "cuda", .max_tokens = 100, .dtype = GetParam()});
  EXPECT_EQ(g->backend_name(), "cuda");
  EXPECT_EQ(g->max_tokens(), 100);
  EXPECT_EQ(g->config().head_dim, 64);
  EXPECT_TRUE(g->config().attention_bias);
  auto c = load_model(models_->qwen2, {.max_tokens = 100});
  const int s = g->create_sequence();
  EXPECT_EQ(c->create_sequence(), s);
  std::vector<float> lg, lc;
  g->forward(std::vector<SeqInput>{{s, kPrompt, {}}}, lg);
  c->forward(std::vector<SeqInput>{{s, kPrompt, {}}}, lc);
  EXPECT_TRUE(test::close_to(lg, std::vector<double>(lc.begin(), lc.end()), tol()));
}

// SeqInput::logits_rows over several passes (max_forward_tokens 8 cuts the prompts): the
// wanted rows close to the CPU's, 0 rows skips the lm_head but fills the cache, and
// forward_argmax gives exactly the greedy tokens of the same forward's logits.
TEST_P(CudaVsCpu, WantedRowsAndDeviceArgmax) {
  SPW_REQUIRE_GPU();
  auto m = both(models_->untied, {.page_size = 4, .max_forward_tokens = 8});
  const auto &a = kTwelve, &b = kThree, &c = kFive;
  auto batch = [&](int s0, int s1, int s2) {
    return std::vector<SeqInput>{{s0, a, {}, 3}, {s1, b, {}, 0}, {s2, c, {}, -1}};
  };
  const int x0 = m.create(), x1 = m.create(), x2 = m.create();
  m.forward(batch(x0, x1, x2));
  ASSERT_EQ(m.lg.size(), size_t(3 + 0 + 5) * m.vocab());
  EXPECT_TRUE(m.rows_close(tol()));
  m.expect_same_lengths({x0, x1, x2});
  const int32_t next = 99;
  m.forward({{x1, std::span(&next, 1), {}}});  // after the 0-row prefill of b
  EXPECT_TRUE(m.rows_close(tol()));
  // The same batch on fresh sequences, greedy tokens only (the device reduces the rows).
  const int y0 = m.create(), y1 = m.create(), y2 = m.create();
  std::vector<int32_t> tokens;
  m.gpu->forward_argmax(batch(y0, y1, y2), tokens);
  m.cpu->forward(batch(y0, y1, y2), m.lc);  // keep the CPU in step
  const int V = m.vocab();
  std::vector<float> lg2;
  const int z0 = m.gpu->create_sequence(), z1 = m.gpu->create_sequence(), z2 = m.gpu->create_sequence();
  m.gpu->forward(batch(z0, z1, z2), lg2);
  ASSERT_EQ(tokens.size(), 8u);
  for (size_t r = 0; r < tokens.size(); ++r)
    EXPECT_EQ(tokens[r], greedy_token(std::span<const float>(lg2.data() + r * V, V))) << "row " << r;
}

// forward_topk ranks on the device: over several passes (max_forward_tokens 8) and wanted-row
// settings, each row's tokens are exactly spw::top_tokens of the same forward's logits (every k
// up to kMaxTopK), probabilities within fp32 rounding; forward_view_topk gives forward's logits
// bit for bit and forward_topk's ranking; then k out of range is refused.
TEST_P(CudaVsCpu, DeviceTopKMatchesTheHostRanking) {
  SPW_REQUIRE_GPU();
  auto gpu = untied_8();
  const auto &a = kTwelve, &b = kThree, &c = kFive;
  const int V = gpu->config().vocab_size;
  for (int k : {1, 3, kMaxTopK}) {
    const int t0 = gpu->create_sequence(), t1 = gpu->create_sequence(), t2 = gpu->create_sequence();
    const int l0 = gpu->create_sequence(), l1 = gpu->create_sequence(), l2 = gpu->create_sequence();
    std::vector<TopToken> top;
    gpu->forward_topk(std::vector<SeqInput>{{t0, a, {}, 3}, {t1, b, {}, 0}, {t2, c, {}, -1}}, k, top);
    std::vector<float> lg;
    gpu->forward(std::vector<SeqInput>{{l0, a, {}, 3}, {l1, b, {}, 0}, {l2, c, {}, -1}}, lg);
    ASSERT_EQ(top.size(), size_t(8 * k));
    ASSERT_EQ(lg.size(), size_t(8) * V);
    std::vector<TopToken> want(k);
    for (int r = 0; r < 8; ++r) {
      top_tokens(lg.data() + size_t(r) * V, V, k, want.data());
      for (int i = 0; i < k; ++i) {
        EXPECT_EQ(top[r * k + i].token, want[i].token) << "k " << k << " row " << r << " rank " << i;
        EXPECT_NEAR(top[r * k + i].prob, want[i].prob, 1e-5f * want[i].prob + 1e-7f) << "k " << k << " row " << r;
      }
      EXPECT_EQ(top[r * k].token, greedy_token(std::span<const float>(lg.data() + size_t(r) * V, V))) << "row " << r;
    }
    // Both at once (sampled decoding with a recycling drafter), on a third set of twins.
    const int v0 = gpu->create_sequence(), v1 = gpu->create_sequence(), v2 = gpu->create_sequence();
    std::vector<TopToken> top_v;
    const std::span<const float> view =
        gpu->forward_view_topk(std::vector<SeqInput>{{v0, a, {}, 3}, {v1, b, {}, 0}, {v2, c, {}, -1}}, k, top_v);
    ASSERT_EQ(view.size(), lg.size());
    EXPECT_EQ(std::memcmp(view.data(), lg.data(), lg.size() * sizeof(float)), 0) << "k " << k;
    ASSERT_EQ(top_v.size(), top.size());
    EXPECT_EQ(std::memcmp(top_v.data(), top.data(), top.size() * sizeof(TopToken)), 0) << "k " << k;
    for (int s : {t0, t1, t2, l0, l1, l2, v0, v1, v2}) gpu->free_sequence(s);
  }
  const int s = gpu->create_sequence();
  std::vector<TopToken> top;
  EXPECT_THROW_MSG(gpu->forward_topk(std::vector<SeqInput>{{s, b, {}, -1}}, 0, top), "k = 0: must be in [1, 8]");
  EXPECT_THROW_MSG(gpu->forward_topk(std::vector<SeqInput>{{s, b, {}, -1}}, kMaxTopK + 1, top), "k = 9");
  EXPECT_THROW_MSG(gpu->forward_view_topk(std::vector<SeqInput>{{s, b, {}, -1}}, -1, top),
                   "Model::forward_view_topk: k = -1");
  EXPECT_EQ(gpu->cached_tokens(s), 0);  // refused before anything ran
}

// forward_view (logits into the model's pinned buffer) against forward (into a vector) on twin
// sequences: the same bits, over several passes (max_forward_tokens 8), a view that needs the
// buffer to grow, one that fits in it, one of 0 rows, and an argmax forward in between.
TEST_P(CudaVsCpu, ForwardViewGivesTheBitsOfForward) {
  SPW_REQUIRE_GPU();
  auto gpu = untied_8();
  const auto &a = kTwelve, &b = kThree, &c = kFive;
  const int va = gpu->create_sequence(), vb = gpu->create_sequence();  // viewed
  const int fa = gpu->create_sequence(), fb = gpu->create_sequence();  // forward into a vector
  auto same_bits = [&](std::vector<SeqInput> viewed, std::vector<SeqInput> plain) {
    const std::span<const float> view = gpu->forward_view(viewed);
    std::vector<float> want;
    gpu->forward(plain, want);
    return view.size() == want.size() && std::equal(view.begin(), view.end(), want.begin(), [](float x, float y) {
             return std::memcmp(&x, &y, sizeof x) == 0;
           });
  };
  const int V = gpu->config().vocab_size;
  EXPECT_TRUE(same_bits({{va, a, {}, 2}, {vb, b, {}, 1}}, {{fa, a, {}, 2}, {fb, b, {}, 1}}));  // 3 rows
  EXPECT_TRUE(same_bits({{va, c, {}, -1}, {vb, c, {}, 5}}, {{fa, c, {}, -1}, {fb, c, {}, 5}}));  // 10: grows
  std::vector<int32_t> tokens;
  const int32_t t1 = 7;
  gpu->forward_argmax(std::vector<SeqInput>{{va, std::span(&t1, 1), {}}}, tokens);
  gpu->forward_argmax(std::vector<SeqInput>{{fa, std::span(&t1, 1), {}}}, tokens);
  EXPECT_TRUE(same_bits({{va, b, {}, -1}}, {{fa, b, {}, -1}}));  // 3 rows: fits
  EXPECT_TRUE(gpu->forward_view(std::vector<SeqInput>{{vb, b, {}, 0}}).empty());
  const std::span<const float> view = gpu->forward_view(std::vector<SeqInput>{{va, std::span(&t1, 1), {}}});
  ASSERT_EQ(view.size(), size_t(V));
  for (float x : view) ASSERT_TRUE(std::isfinite(x));
}

// CUDA graphs (cuda_graph_tokens) against kernel-by-kernel launches on the same weights: the
// same calls give the same bits, through decode steps, trees, chains, rollback, keep_tokens,
// batches of two lengths and an over-the-limit pass; steps whose launches repeat replay the
// captured graph. (Replaying whatever a slot holds, ignoring the record, fails this test.)
TEST_P(CudaVsCpu, CudaGraphsGiveTheBitsOfPlainLaunches) {
  SPW_REQUIRE_GPU();
  const CudaBackendOptions base{.dtype = GetParam(), .page_size = 4, .max_forward_tokens = 16};
  CudaBackendOptions plain_o = base, graph_o = base;
  plain_o.cuda_graph_tokens = 0;
  graph_o.cuda_graph_tokens = 8;
  auto plain = test::cuda_model(models_->qwen2, plain_o), graph = test::cuda_model(models_->qwen2, graph_o);
  std::vector<float> lp, lg;
  std::vector<int32_t> tp, tg;
  int calls = 0;
  auto both = [&](const std::vector<std::vector<int32_t>>& tokens, const std::vector<std::vector<int32_t>>& parents,
                  const std::vector<int>& seqs, bool argmax) {
    std::vector<SeqInput> in;
    for (size_t i = 0; i < seqs.size(); ++i) in.push_back({seqs[i], tokens[i], parents[i]});
    if (argmax) {
      plain->forward_argmax(in, tp);
      graph->forward_argmax(in, tg);
      ASSERT_EQ(tp, tg) << "call " << calls;
    } else {
      plain->forward(in, lp);
      graph->forward(in, lg);
      ASSERT_EQ(lp.size(), lg.size()) << "call " << calls;
      for (size_t i = 0; i < lp.size(); ++i) ASSERT_EQ(lp[i], lg[i]) << "call " << calls << " value " << i;
    }
    ++calls;
  };
  auto create = [&] {
    const int a = plain->create_sequence(), b = graph->create_sequence();
    EXPECT_EQ(a, b);
    return a;
  };
  const int s0 = create(), s1 = create();
  both({kPrompt}, {{}}, {s0}, false);  // 9 tokens > 8: launched plainly
  EXPECT_EQ(cuda_graph_stats(*graph).plain, 1);
  std::vector<int32_t> one{7};
  for (int step = 0; step < 40; ++step) {  // context 10..49
    one[0] = 20 + step % 50;
    both({one}, {{}}, {s0}, step % 2 == 1);
  }
  const CudaGraphStats after_decode = cuda_graph_stats(*graph);
  EXPECT_GT(after_decode.replays, 20) << "repeated decode steps must replay their graph";
  EXPECT_GE(after_decode.captures, 2);  // logits and argmax slots
  // A token tree, then keep a path; a chain; a rollback; a batch of two lengths; again.
  const std::vector<int32_t> tree{5, 6, 7, 8, 9}, tree_parents{-1, 0, 0, 1, 3};
  for (int round = 0; round < 3; ++round) {
    both({tree}, {tree_parents}, {s0}, round == 1);
    const int len = plain->cached_tokens(s0) - 5;
    const std::vector<int32_t> keep{0, 1, 3};
    plain->keep_tokens(s0, len, keep);
    graph->keep_tokens(s0, len, keep);
    both({{11, 12, 13}}, {{}}, {s0}, false);
    plain->rollback(s0, plain->cached_tokens(s0) - 2);
    graph->rollback(s0, graph->cached_tokens(s0) - 2);
    both({{14}, {15, 16, 17}}, {{}, {}}, {s0, s1}, false);  // a chain (tree_attention) batch
    both({{18}, {19}}, {{}, {}}, {s0, s1}, round == 2);      // decode batch of two lengths
  }
  const CudaGraphStats end = cuda_graph_stats(*graph);
  EXPECT_EQ(end.disabled, "");
  EXPECT_EQ(end.plain, 1);
  EXPECT_EQ(end.replays + end.captures + end.plain, calls);
  EXPECT_GT(end.replays, after_decode.replays) << "the repeated rounds replay";
  EXPECT_EQ(end.captures, end.updates + end.instantiations);
  const CudaGraphStats none = cuda_graph_stats(*plain);
  EXPECT_EQ(none.plain, calls);
  EXPECT_EQ(none.replays + none.captures, 0);
  EXPECT_THROW(cuda_graph_stats(*load_model(models_->qwen2)), Error);
}

// Warm passes allocate no device or pinned memory (a cudaMalloc / cudaHostAlloc would also
// synchronise the device): after one round of every kind of pass (decode steps through
// forward, forward_argmax, forward_topk, forward_view and forward_view_topk, a tree and
// keep_tokens, a chain and rollback, a batch of two lengths), later rounds of the same shapes
// call neither, with CUDA graphs and with plain launches. Each round ends where it started
// (rollback), so no buffer has a reason to grow. Counted through spw-sim's hooks: built in the
// sim twin of this file only (sim.DTypes/CudaVsCpu.*).
#if defined(SPW_SIM)
TEST_P(CudaVsCpu, WarmPassesAllocateNoDeviceOrPinnedMemory) {
  SPW_REQUIRE_GPU();
  for (int graph_tokens : {0, 8}) {
    CudaBackendOptions o{.dtype = GetParam(), .page_size = 4, .max_forward_tokens = 16};
    o.cuda_graph_tokens = graph_tokens;
    auto gpu = test::cuda_model(models_->qwen2, o);
    const int s0 = gpu->create_sequence(), s1 = gpu->create_sequence();
    std::vector<float> logits;
    std::vector<int32_t> tokens;
    std::vector<TopToken> top;
    gpu->forward(std::vector<SeqInput>{{s0, kPrompt, {}}, {s1, kFive, {}}}, logits);
    const int len0 = gpu->cached_tokens(s0), len1 = gpu->cached_tokens(s1);
    const std::vector<int32_t> tree{5, 6, 7, 8, 9}, tree_parents{-1, 0, 0, 1, 3}, keep{0, 1, 3};
    auto round = [&](int r) {
      const std::vector<int32_t> one{20 + r};
      const std::vector<SeqInput> step{{s0, one, {}}};
      gpu->forward(step, logits);
      gpu->forward_argmax(step, tokens);
      gpu->forward_topk(step, 4, top);
      EXPECT_EQ(gpu->forward_view(step).size(), logits.size());
      gpu->forward_view_topk(step, 4, top);
      const int base = gpu->cached_tokens(s0);
      gpu->forward(std::vector<SeqInput>{{s0, tree, tree_parents, -1}}, logits);
      gpu->keep_tokens(s0, base, keep);
      gpu->forward(std::vector<SeqInput>{{s0, std::vector<int32_t>{11, 12, 13}, {}}}, logits);
      gpu->rollback(s0, gpu->cached_tokens(s0) - 2);
      gpu->forward(std::vector<SeqInput>{{s0, std::vector<int32_t>{14}, {}}, {s1, std::vector<int32_t>{15, 16, 17}, {}}},
                   logits);
      gpu->rollback(s0, len0);
      gpu->rollback(s1, len1);
    };
    round(0);
    const uint64_t warm = sim::allocation_calls();
    for (int r = 1; r <= 3; ++r) round(r);
    EXPECT_EQ(sim::allocation_calls() - warm, 0u) << "cuda_graph_tokens " << graph_tokens;
  }
}
#endif

INSTANTIATE_TEST_SUITE_P(DTypes, CudaVsCpu, ::testing::Values(DType::f16, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace

// Stochastic exactness: with fixed seeds, the empirical distribution of the first and of the
// third sampled token under speculative decoding (chain with one-hot q, chain with a model
// drafter's q, token tree, cascade, bigram bottom) matches the target's exact distribution
// (chi-square, p = 0.001); the same test with a deliberately broken residual (test hook)
// is rejected.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "decode/model_drafter.h"
#include "decode/speculative.h"
#include "decode/verify.h"
#include "tests/common/helpers.h"
#include "tests/decode/decode_test_env.h"

using namespace spw::decode;
using spw::test::FakeModel;

namespace {

constexpr int V = 8;
constexpr int kTrials = 6000;
constexpr double kChi2Critical = 24.32;  // df = 7, p = 0.001

// Proposes the target's most likely continuation (deterministic, no q): the broken residual
// then visibly over-samples the argmax.
class OracleDrafter : public Drafter {
 public:
  explicit OracleDrafter(const FakeModel& m, int width = 1) : m_(m), width_(width) {}
  std::string name() const override { return "oracle"; }
  void propose_into(std::span<const int32_t> c, int k, Draft& out) override { out = draft(c, k); }
  Draft draft(std::span<const int32_t> ctx, int k) {
    Draft d;
    std::vector<int32_t> text(ctx.begin(), ctx.end());
    std::vector<float> lg(V);
    for (int i = 0; i < k; ++i) {
      m_.logits_after(text, static_cast<int>(text.size()), lg.data());
      d.tokens.push_back(argmax(lg));
      text.push_back(d.tokens.back());
    }
    return d;
  }
  void propose_tree_into(std::span<const int32_t> c, int k, int width, DraftSet& out) override {
    out.clear();
    for (auto& d : tree(c, k, width)) out.add() = std::move(d);
  }
  std::vector<Draft> tree(std::span<const int32_t> ctx, int k, int width) {
    std::vector<Draft> out{propose(ctx, k)};
    for (int j = 1; j < std::min(width, width_); ++j) out.push_back(Draft{{(out[0].tokens[0] + j) % V}, {}, {}, {}});
    return out;
  }

 private:
  const FakeModel& m_;
  int width_;
};

// Exact distributions of the first and third generated tokens.
void exact(const FakeModel& m, const std::vector<int32_t>& prompt, const SamplingParams& sp,
           std::vector<double>& first, std::vector<double>& third) {
  std::vector<float> lg(V), p1, p2, p3;
  first.assign(V, 0);
  third.assign(V, 0);
  m.logits_after(prompt, static_cast<int>(prompt.size()), lg.data());
  sampling_probs(lg, sp, p1);
  for (int a = 0; a < V; ++a) {
    first[a] = p1[a];
    if (p1[a] == 0) continue;
    auto t1 = prompt;
    t1.push_back(a);
    m.logits_after(t1, static_cast<int>(t1.size()), lg.data());
    sampling_probs(lg, sp, p2);
    for (int b = 0; b < V; ++b) {
      if (p2[b] == 0) continue;
      auto t2 = t1;
      t2.push_back(b);
      m.logits_after(t2, static_cast<int>(t2.size()), lg.data());
      sampling_probs(lg, sp, p3);
      for (int c = 0; c < V; ++c) third[c] += double(p1[a]) * p2[b] * p3[c];
    }
  }
}

double chi2(const std::vector<int>& counts, const std::vector<double>& p, int n) {
  double x = 0;
  for (int v = 0; v < V; ++v) {
    const double e = p[v] * n;
    if (e < 1e-9) {
      if (counts[v] > 0) return 1e9;  // a token the target can never emit
      continue;
    }
    x += (counts[v] - e) * (counts[v] - e) / e;
  }
  return x;
}

struct Result {
  double first, third;
};

Result run(FakeModel& target, DrafterFactory factory, SamplingParams sp, int width, int k,
           const std::function<void(GenerateParams&)>& tweak = {}) {
  const std::vector<int32_t> prompt{1, 5, 2};
  std::vector<double> pf, pt;
  exact(target, prompt, sp, pf, pt);
  std::vector<int> cf(V, 0), ct(V, 0);
  SpeculativeDecoder dec(target, std::move(factory));
  for (int trial = 0; trial < kTrials; ++trial) {
    GenerateParams gp;
    gp.max_new_tokens = 3;
    gp.k = k;
    gp.tree_width = width;
    gp.sampling = sp;
    gp.sampling.seed = 1000 + 7919ull * trial;
    if (tweak) tweak(gp);
    auto g = dec.generate(prompt, gp);
    EXPECT_EQ(g.tokens.size(), 3u);
    ++cf[g.tokens[0]];
    ++ct[g.tokens[2]];
  }
  return {chi2(cf, pf, kTrials), chi2(ct, pt, kTrials)};
}

SamplingParams temp(float t, float top_p = 1.f) {
  SamplingParams s;
  s.temperature = t;
  s.top_p = top_p;
  return s;
}

// A random token tree of 0..8 nodes over `vocab` tokens (each parent before its children), the
// target's logits rows for it (root row first; each value drawn by `logit(gen)`) and each row's
// greedy token.
struct RandomTree {
  std::vector<int32_t> tokens, parents, top;
  std::vector<float> logits;
};
template <typename Gen, typename Logit>
RandomTree random_tree(Gen& gen, int vocab, Logit logit) {
  RandomTree t;
  const int n = std::uniform_int_distribution<int>(0, 8)(gen);
  t.tokens.resize(n);
  t.parents.resize(n);
  for (int i = 0; i < n; ++i) {
    t.tokens[i] = std::uniform_int_distribution<int>(0, vocab - 1)(gen);
    t.parents[i] = std::uniform_int_distribution<int>(-1, i - 1)(gen);
  }
  t.logits.resize(static_cast<size_t>(n + 1) * vocab);
  for (auto& x : t.logits) x = logit(gen);
  t.top.resize(n + 1);
  for (int r = 0; r <= n; ++r) t.top[r] = argmax(std::span<const float>(t.logits.data() + r * vocab, vocab));
  return t;
}

}  // namespace

TEST(Stochastic, ChainOneHotDrafterKeepsTargetDistribution) {
  FakeModel target(V, 64, 3, 2.f, 0.3f);
  auto r = run(target, [&] { return std::make_unique<OracleDrafter>(target); }, temp(1.f), 1, 3);
  EXPECT_LT(r.first, kChi2Critical);
  EXPECT_LT(r.third, kChi2Critical);
}

// Sequence i of a sampled batch draws with seed + i (speculative.h): its tokens are those of
// the same prompt decoded alone with that seed, so any sequence of a batch can be reproduced.
TEST(Stochastic, BatchSequenceIDrawsWithSeedPlusI) {
  FakeModel target(V, 64, 3, 1.f, 0.3f);  // flat enough that seeds give different text
  SpeculativeDecoder dec(target, [&] { return std::make_unique<OracleDrafter>(target); });
  GenerateParams gp;
  gp.max_new_tokens = 12;
  gp.k = 3;
  gp.sampling = temp(1.f);
  gp.sampling.seed = 40;
  const std::vector<std::vector<int32_t>> prompts{{1, 5, 2}, {1, 5, 2}, {3, 3}, {1, 5, 2}};
  const auto batch = dec.generate_batch(prompts, gp);
  ASSERT_EQ(batch.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateParams one = gp;
    one.sampling.seed = gp.sampling.seed + i;
    EXPECT_EQ(dec.generate(prompts[i], one).tokens, batch[i].tokens) << "sequence " << i;
  }
  // The same prompt at positions 0, 1 and 3 of the batch: three seeds, not all one text.
  EXPECT_FALSE(batch[0].tokens == batch[1].tokens && batch[1].tokens == batch[3].tokens);
}

TEST(Stochastic, ChainWithDrafterProbabilitiesKeepsTargetDistribution) {
  FakeModel target(V, 64, 3, 2.f, 0.3f);
  auto small = std::make_shared<FakeModel>(V, 64, 4, 1.5f, 0.f);  // a different q
  uint64_t seed = 0;
  for (auto sp : {temp(1.f), temp(0.7f, 0.9f)}) {
    auto r = run(target, [&] {
          SamplingParams ds = sp;
          ds.seed = ++seed;
          return std::make_unique<ModelDrafter>(small, V, "small", ds);
        }, sp, 1, 2);
    EXPECT_LT(r.first, kChi2Critical) << sp.temperature;
    EXPECT_LT(r.third, kChi2Critical) << sp.temperature;
  }
}

TEST(Stochastic, TokenTreeKeepsTargetDistribution) {
  FakeModel target(V, 64, 3, 2.f, 0.3f);
  auto r = run(target, [&] { return std::make_unique<OracleDrafter>(target, 3); }, temp(1.f), 3, 2);
  EXPECT_LT(r.first, kChi2Critical);
  EXPECT_LT(r.third, kChi2Critical);
}

TEST(Stochastic, CascadeWithBigramBottomKeepsTargetDistribution) {
  FakeModel target(V, 64, 3, 2.f, 0.3f);
  auto env = spw::test::make_env(V, temp(1.f));
  for (const char* spec : {"maxgram+bigram", "vcascade(self:2,maxgram+bigram;lenience=2)",
                           "hcascade(self:2*1,bigram*2)", "maxgram+recycle", "hcascade(self:2*1,recycle*2)"}) {
    auto r = run(target, make_drafter_factory(spec, env), temp(1.f), 1, 3);
    EXPECT_LT(r.first, kChi2Critical) << spec;
    EXPECT_LT(r.third, kChi2Critical) << spec;
  }
}

TEST(Stochastic, TreesGrownFromTheTableKeepTargetDistribution) {
  // Cost pruning on a flat curve with growing (CostAwareTree::grow): trees of up to 24 nodes,
  // several candidates below each node, verified by recursive rejection.
  FakeModel target(V, 64, 3, 2.f, 0.3f);
  auto env = spw::test::make_env(V, temp(1.f));
  for (const char* spec : {"maxgram+bigram", "recycle"}) {
    auto r = run(target, make_drafter_factory(spec, env), temp(1.f), 4, 3, [](GenerateParams& gp) {
      gp.draft_length = DraftLength::cost;
      gp.pass_costs = {1.0};
      gp.grow_tree = true;
      gp.max_tree_nodes = 24;
    });
    EXPECT_LT(r.first, kChi2Critical) << spec;
    EXPECT_LT(r.third, kChi2Critical) << spec;
  }
}

TEST(Stochastic, BrokenResidualIsDetected) {
  FakeModel target(V, 64, 3, 2.f, 0.3f);
  SamplingParams broken = temp(1.f);
  broken.test_broken_residual = true;
  auto chain = run(target, [&] { return std::make_unique<OracleDrafter>(target); }, broken, 1, 3);
  EXPECT_GT(chain.first, kChi2Critical);
  auto tree = run(target, [&] { return std::make_unique<OracleDrafter>(target, 3); }, broken, 3, 2);
  EXPECT_GT(tree.first, kChi2Critical);
  auto small = std::make_shared<FakeModel>(V, 64, 4, 6.f, 0.f);  // a q far from p
  uint64_t seed = 0;
  auto withq = run(target, [&] {
        SamplingParams ds = temp(1.f);
        ds.seed = ++seed;
        return std::make_unique<ModelDrafter>(small, V, "small", ds);
      }, broken, 1, 2);
  EXPECT_GT(withq.first, kChi2Critical);
}

TEST(Stochastic, VerifyChainRulesOnHandMadeDistributions) {
  // p = softmax(logits) = {0.5, 0.25, 0.25}; draft token 1 with q(1) = 1 (one-hot).
  const float l2 = std::log(2.f);
  std::vector<float> logits{l2, 0, 0, 0, 0, 0};  // two rows, vocab 3
  SamplingParams sp = temp(1.f);
  Rng rng(5);
  std::vector<int> accepted(2, 0), next(3, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    auto r = verify_chain(logits, 3, std::vector<int32_t>{1}, {}, sp, rng);
    ++accepted[r.accepted];
    if (r.accepted == 0) ++next[r.next_token];
  }
  EXPECT_NEAR(accepted[1] / double(n), 0.25, 0.015);
  EXPECT_EQ(next[1], 0);  // the residual never returns the rejected one-hot token
  EXPECT_NEAR(next[0] / double(accepted[0]), 2.0 / 3.0, 0.02);
  EXPECT_THROW_MSG(verify_chain(logits, 3, std::vector<int32_t>{1, 2}, {}, sp, rng), "logits has 6 values");
  // Draft tokens just outside the vocabulary, at either end.
  EXPECT_THROW_MSG(verify_chain(logits, 3, std::vector<int32_t>{3}, {}, sp, rng),
                   "verify_chain: draft token 3 outside the vocabulary");
  EXPECT_THROW_MSG(verify_chain(logits, 3, std::vector<int32_t>{-1}, {}, sp, rng),
                   "verify_chain: draft token -1 outside the vocabulary");
}

TEST(Sampling, TopPKeepsTheSmallestNucleusAndRenormalises) {
  // softmax of log(p) = p for p = {0.05, 0.4, 0.1, 0.3, 0.15}
  std::vector<float> logits;
  for (float p : {0.05f, 0.4f, 0.1f, 0.3f, 0.15f}) logits.push_back(std::log(p));
  std::vector<float> q;
  sampling_probs(logits, temp(1.f, 0.8f), q);  // 0.4 + 0.3 + 0.15 = 0.85 >= 0.8
  EXPECT_FLOAT_EQ(q[0], 0.f);
  EXPECT_FLOAT_EQ(q[2], 0.f);
  EXPECT_NEAR(q[1], 0.4 / 0.85, 1e-6);
  EXPECT_NEAR(q[3], 0.3 / 0.85, 1e-6);
  EXPECT_NEAR(q[4], 0.15 / 0.85, 1e-6);
  sampling_probs(logits, temp(1.f, 0.3f), q);  // the top token alone
  EXPECT_FLOAT_EQ(q[1], 1.f);
  // At the boundary: top_p equal to the top token's probability is reached by that token
  // alone (the nucleus is the smallest set whose mass is >= top_p); a hair above needs two.
  std::vector<float> full;
  sampling_probs(logits, temp(1.f), full);
  sampling_probs(logits, temp(1.f, full[1]), q);
  EXPECT_EQ(q, (std::vector<float>{0, 1, 0, 0, 0}));
  sampling_probs(logits, temp(1.f, std::nextafter(full[1], 1.f)), q);
  EXPECT_EQ(std::count_if(q.begin(), q.end(), [](float x) { return x > 0; }), 2);
  EXPECT_GT(q[3], 0.f);
  // The same with two top tokens of equal probability: the lower id alone reaches it.
  const std::vector<float> tied{-1.f, 0.f, 0.f, -2.f};
  sampling_probs(tied, temp(1.f), full);
  ASSERT_EQ(full[1], full[2]);
  sampling_probs(tied, temp(1.f, full[1]), q);
  EXPECT_EQ(q, (std::vector<float>{0, 1, 0, 0}));
  sampling_probs(logits, temp(0.f), q);  // greedy: one-hot argmax
  EXPECT_EQ(q, (std::vector<float>{0, 1, 0, 0, 0}));
  // A large flat-ish vocabulary: the threshold search still finds the exact nucleus.
  std::vector<float> big(5000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>((i * 7919) % 1000) / 300.f;
  sampling_probs(big, temp(1.f, 0.95f), q);
  softmax(big, full);
  std::vector<int> order(full.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return full[a] > full[b]; });
  double cum = 0;
  size_t keep = 0;
  while (cum < 0.95) cum += full[order[keep++]];
  size_t nonzero = 0;
  for (float x : q) nonzero += x > 0;
  EXPECT_EQ(nonzero, keep);
  for (size_t i = 0; i < keep; ++i) EXPECT_GT(q[order[i]], 0.f);
}

// top_p just below 1 on rows whose probabilities, rounded, add up to less than top_p: the
// threshold search stops at 0 and every token is kept (renormalised), instead of looping.
TEST(Sampling, TopPJustBelowOneKeepsEveryTokenWhenTheRoundedMassFallsShort) {
  auto gen = spw::test::make_rng(11);
  const float top_p = std::nextafter(1.f, 0.f);
  std::vector<float> logits(1000), q, full;
  int short_rows = 0, trial = 0;
  for (; trial < 20000 && short_rows < 20; ++trial) {
    for (auto& x : logits) x = std::uniform_real_distribution<float>(-4.f, 4.f)(gen);
    softmax(logits, full);
    double mass = 0;
    for (float p : full) mass += p;
    sampling_probs(logits, temp(1.f, top_p), q);
    if (mass < top_p) {
      ++short_rows;
      for (size_t i = 0; i < q.size(); ++i) ASSERT_GT(q[i], 0.f) << trial << " " << i;
    }
    double kept = 0;
    for (float p : q) kept += p;
    ASSERT_NEAR(kept, 1.0, 1e-5) << trial;
  }
  EXPECT_EQ(short_rows, 20) << "in " << trial << " rows";  // the case the test is for was met
}

// The verifiers that write into a caller's VerifyResult (kept between a decoder's steps) give
// what a fresh result gets, whatever the previous step left in it.
TEST(Verify, ReusedResultsEqualFreshOnes) {
  auto gen = spw::test::make_rng(3);
  const int vocab = 4;
  SamplingParams greedy, sampled = temp(1.f);
  VerifyResult reused_greedy, reused_tree, reused_sampled;
  for (int trial = 0; trial < 300; ++trial) {
    const auto [tokens, parents, top, logits] =
        random_tree(gen, vocab, [](auto& g) { return std::uniform_real_distribution<float>(-2.f, 2.f)(g); });
    const auto same = [&](const VerifyResult& a, const VerifyResult& b) {
      ASSERT_EQ(a.accepted, b.accepted) << trial;
      ASSERT_EQ(a.next_token, b.next_token) << trial;
      ASSERT_EQ(a.path, b.path) << trial;
    };
    verify_tree_greedy(top, tokens, parents, reused_greedy);
    same(reused_greedy, verify_tree_greedy(top, tokens, parents));
    Rng unused(1);
    verify_tree(logits, vocab, tokens, parents, greedy, unused, reused_tree);
    same(reused_tree, verify_tree_greedy(top, tokens, parents));
    Rng a(trial), b(trial);
    verify_tree(logits, vocab, tokens, parents, sampled, a, reused_sampled);
    same(reused_sampled, verify_tree(logits, vocab, tokens, parents, sampled, b));
  }
}

// verify_*_greedy on the target's greedy tokens = verify_* with greedy params on the logits.
TEST(GreedyVerify, ArgmaxFormsEqualTheLogitsFormsOnRandomChainsAndTrees) {
  auto rng = spw::test::make_rng(7);
  const int vocab = 5;  // small: drafts often match
  SamplingParams greedy;
  Rng unused(1);
  for (int trial = 0; trial < 500; ++trial) {
    const auto [draft, parents, top, logits] = random_tree(rng, vocab, [](auto& g) {
      return static_cast<float>(std::uniform_int_distribution<int>(0, 3)(g));  // ties too
    });
    const int n = static_cast<int>(draft.size());
    const auto a = verify_chain(logits, vocab, draft, {}, greedy, unused), b = verify_chain_greedy(top, draft);
    ASSERT_EQ(a.accepted, b.accepted) << trial;
    ASSERT_EQ(a.next_token, b.next_token) << trial;
    const auto t = verify_tree(logits, vocab, draft, parents, greedy, unused),
               u = verify_tree_greedy(top, draft, parents);
    ASSERT_EQ(t.accepted, u.accepted) << trial;
    ASSERT_EQ(t.path, u.path) << trial;
    ASSERT_EQ(t.next_token, u.next_token) << trial;
    // The walk's definition, checked directly: below each node on the path (the root first) the
    // path takes the lowest-index child holding the target's token at that node's row, and it
    // ends where no child holds it; next_token is that row's token.
    ASSERT_EQ(static_cast<size_t>(u.accepted), u.path.size()) << trial;
    int cur = -1;
    for (size_t d = 0; d <= u.path.size(); ++d) {
      int first = -1;
      for (int i = 0; i < n && first < 0; ++i)
        if (parents[i] == cur && draft[i] == top[cur + 1]) first = i;
      if (d == u.path.size()) {
        ASSERT_EQ(first, -1) << trial;
        ASSERT_EQ(u.next_token, top[cur + 1]) << trial;
      } else {
        ASSERT_EQ(u.path[d], first) << trial;
        cur = first;
      }
    }
  }
  const std::vector<int32_t> two{1, 2};
  EXPECT_THROW_MSG(verify_chain_greedy(two, two), "verify_chain_greedy: 2 target tokens for 2 draft tokens (expected 3)");
  EXPECT_THROW_MSG(verify_tree_greedy(std::vector<int32_t>{1, 2, 3}, two, std::vector<int32_t>{-1, 1}),
                   "verify_tree_greedy: parents[1] = 1: must be in [-1, 1)");
}

// Cost-aware draft length (decode/draft_length.h, DraftLength::cost): the cost curve, the
// length chosen for flat and steep curves, how acceptance and streaks move it, the pruned
// token tree (learning per drafter and rank, optimal against brute force), the decoder's
// argument checks, and measure_pass_costs. (Greedy equality and replay equality with
// DraftLength::cost are in test_decode_greedy.cpp / test_decode_replay.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>

#include "decode/bigram.h"
#include "decode/draft_length.h"
#include "decode/speculative.h"
#include "tests/common/helpers.h"
#include "tests/decode/decode_test_env.h"

using namespace spw::decode;
using spw::test::FakeModel;

TEST(PassCostCurve, InterpolatesGivenPointsAndExtrapolatesLinearly) {
  const PassCostCurve c({2.0, 3.0, 5.0});
  EXPECT_DOUBLE_EQ(c.at(1), 2.0);
  EXPECT_DOUBLE_EQ(c.at(3), 5.0);
  EXPECT_DOUBLE_EQ(c.at(4), 7.0);   // last slope 2 per token
  EXPECT_DOUBLE_EQ(c.at(10), 19.0);
  const PassCostCurve one({4.0});
  EXPECT_DOUBLE_EQ(one.at(1), 4.0);
  EXPECT_DOUBLE_EQ(one.at(64), 4.0);  // a single point: flat
  const PassCostCurve falling({3.0, 2.0});
  EXPECT_DOUBLE_EQ(falling.at(5), 2.0);  // never cheaper than the last point
  EXPECT_THROW_MSG(c.at(0), "n must be >= 1");
}

TEST(PassCostCurve, RejectsEmptyAndNonPositiveValuesNamingThem) {
  EXPECT_THROW_MSG(PassCostCurve(std::vector<double>{}), "no values");
  EXPECT_THROW_MSG(PassCostCurve({1.0, 0.0}), "t(2) = 0: must be a positive number");
  EXPECT_THROW_MSG(PassCostCurve({-1.0}), "t(1) = -1");
  EXPECT_THROW_MSG(PassCostCurve({1.0, 2.0, std::numeric_limits<double>::quiet_NaN()}), "t(3) = nan");
  EXPECT_THROW_MSG(PassCostCurve({1.0, std::numeric_limits<double>::infinity()}), "t(2) = inf");
}

TEST(CostAwareLength, FlatCurveDraftsLongSteepCurveShort) {
  const PassCostCurve flat({1.0});
  const PassCostCurve steep({1.0, 2.0});  // t(n) = n: a draft token costs a whole pass
  const PassCostCurve cpu({1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5});
  // No history: every position at the prior 0.5.
  EXPECT_EQ(CostAwareLength(&flat).choose(8), 8);  // E(L) grows, t does not
  EXPECT_EQ(CostAwareLength(&steep).choose(8), 1);  // 1.5 / 2 beats 1.75 / 3
  // E(1)/t(2) = 1.5/1.1 = 1.36, E(2)/t(3) = 1.75/1.3 = 1.35: the shorter draft.
  EXPECT_EQ(CostAwareLength(&cpu).choose(8), 1);
  EXPECT_EQ(CostAwareLength(&cpu).choose(0), 0);
  EXPECT_EQ(CostAwareLength(&flat).choose(1), 1);
}

TEST(CostAwareLength, AcceptedStreaksLengthenAndRejectionsShortenTheDraft) {
  const PassCostCurve cpu({1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5});
  CostAwareLength len(&cpu);
  for (int i = 0; i < 20; ++i) len.observe(4, 4);  // wholly accepted 4-token drafts
  EXPECT_GT(len.acceptance(1), 0.9);
  EXPECT_GT(len.acceptance(4), 0.9);
  EXPECT_GT(len.acceptance(6), 0.8);  // never tried: borrows position 4's estimate
  const int hot = len.choose(6);
  EXPECT_GE(hot, 5) << "a streak of full acceptances pays for long drafts on this curve";
  // One rejection at the first position: the "not wholly accepted" statistics apply next, and
  // they hold only the very first step (observed before any streak: one success).
  len.observe(4, 0);
  EXPECT_NEAR(len.acceptance(1), 2.0 / 3.0, 1e-12);  // (1 + 2 * 0.5) / (1 + 2)
  EXPECT_LT(len.choose(6), hot);
  for (int i = 0; i < 30; ++i) len.observe(3, 0);  // keeps failing (state stays cold)
  EXPECT_LT(len.acceptance(1), 0.1);
  EXPECT_EQ(len.choose(6), 1) << "at least one token is drafted, so acceptance is still measured";
  // A wholly accepted step returns to the streak statistics, which remember the long drafts.
  len.observe(1, 1);
  EXPECT_GE(len.choose(6), 5);
}

TEST(CostAwareLength, CountsOnlyPositionsThatWereTried) {
  const PassCostCurve flat({1.0});
  CostAwareLength len(&flat);
  // Position 1 rejected: positions 2..4 were never verified, so their counts do not move.
  for (int i = 0; i < 10; ++i) len.observe(4, 0);
  // Position 1: (0 + 2 * 0.5) / (tried + 2) with tried = sum 0.9^i -> low.
  EXPECT_LT(len.acceptance(1), 0.2);
  // Position 2: no tries, so it equals position 1's estimate (shrinkage with nothing to shrink).
  EXPECT_DOUBLE_EQ(len.acceptance(2), len.acceptance(1));
  len.observe(0, 0);  // an empty draft (no Max-Gram match) changes nothing but the state
  EXPECT_DOUBLE_EQ(len.acceptance(1), len.acceptance(2));
}

TEST(DraftLengthCost, DecoderChecksItsArguments) {
  FakeModel target(spw::test::kVocab, spw::test::kMaxTokens);
  auto env = spw::test::make_env();
  SpeculativeDecoder dec(target, make_drafter_factory("maxgram", env));
  const std::vector<int32_t> prompt{1, 2, 3};
  GenerateParams gp;
  gp.draft_length = DraftLength::cost;
  gp.k = 4;
  EXPECT_THROW_MSG(dec.generate(prompt, gp), "draft_length cost needs pass_costs");
  gp.pass_costs = {1.0, -2.0};
  EXPECT_THROW_MSG(dec.generate(prompt, gp), "t(2) = -2: must be a positive number");
}

namespace {
// 40 tokens after a prompt of the fake target's own greedy text, drafted by `spec`: fixed length,
// then by cost on a flat curve, a steep one (t(n) = n) and each of `more`. No position term: the
// target's greedy text depends on the last two tokens only, so it becomes periodic, and a prompt
// of its own greedy text makes Max-Gram right every time.
struct CostRuns {
  Generation fixed, flat, steep;
  std::vector<Generation> more;
};
CostRuns run_by_cost(const char* spec, int k, int width, const std::vector<std::vector<double>>& more = {}) {
  FakeModel target(spw::test::kVocab, spw::test::kMaxTokens);
  auto env = spw::test::make_env();
  SpeculativeDecoder dec(target, make_drafter_factory(spec, env));
  const auto prompt = target.greedy_reference(std::vector<int32_t>{3}, 60);
  GenerateParams gp;
  gp.max_new_tokens = 40;
  gp.k = k;
  gp.tree_width = width;
  gp.draft_length = DraftLength::fixed;
  CostRuns r;
  r.fixed = dec.generate(prompt, gp);
  gp.draft_length = DraftLength::cost;
  gp.pass_costs = {1.0};
  r.flat = dec.generate(prompt, gp);
  gp.pass_costs = {1.0, 2.0};
  r.steep = dec.generate(prompt, gp);
  for (const auto& curve : more) {
    gp.pass_costs = curve;
    r.more.push_back(dec.generate(prompt, gp));
  }
  for (const auto* g : {&r.flat, &r.steep}) EXPECT_EQ(g->tokens, r.fixed.tokens);
  for (const auto& g : r.more) EXPECT_EQ(g.tokens, r.fixed.tokens);
  return r;
}
}  // namespace

TEST(DraftLengthCost, FlatCurveDraftsAsLongAsFixedSteepOneShortCpuLikeOneGrows) {
  // A CPU-like curve: 1 token drafted at first (prior 0.5 everywhere), longer drafts as Max-Gram
  // keeps being right (the decoder feeds every step back).
  const CostRuns r = run_by_cost("maxgram", 6, 1, {{1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5}});
  const Generation &fixed = r.fixed, &flat = r.flat, &steep = r.steep, &cpu = r.more[0];
  EXPECT_EQ(flat.stats.accepted, flat.stats.drafted) << "the premise: Max-Gram is always right here";
  EXPECT_EQ(flat.stats.drafted, fixed.stats.drafted) << "flat curve: always the longest draft";
  EXPECT_EQ(steep.stats.drafted, steep.stats.target_passes) << "t(n) = n: one draft token per pass";
  ASSERT_EQ(cpu.stats.proposed_at.size(), 6u) << "drafts grow to k once the streak is seen";
  EXPECT_EQ(cpu.stats.proposed_at[0], cpu.stats.target_passes);
  EXPECT_LT(cpu.stats.proposed_at[5], cpu.stats.proposed_at[0]) << "but start short";
  EXPECT_GT(cpu.stats.drafted, 2 * cpu.stats.target_passes) << cpu.stats.drafted << " / " << cpu.stats.target_passes;
}

namespace {
Draft draft(std::vector<int32_t> tokens, const std::string& source) {
  Draft d;
  d.tokens = std::move(tokens);
  d.sources.assign(d.tokens.size(), source);
  return d;
}
// (1 + expected accepted nodes) / t(1 + nodes): what CostAwareTree maximises.
double tree_value(const PassCostCurve& t, const std::vector<double>& p, const std::vector<int32_t>& keep) {
  double e = 1.0;
  for (int32_t v : keep) e += p[v];
  return e / t.at(1 + static_cast<int>(keep.size()));
}
}  // namespace

TEST(CostAwareTree, TiesGoToTheShorterDraftAndTheSmallerTree) {
  // With no history every c is 0.5, so E = 1.5, 1.75, 1.875 for 1, 2, 3 draft tokens; on this
  // curve each is worth exactly 1 (all exact in binary), and 4 tokens less (1.9375 / 2).
  const PassCostCurve even({1.0, 1.5, 1.75, 1.875});
  EXPECT_EQ(CostAwareLength(&even).choose(8), 1);
  // The same tie for a tree: a Max-Gram chain of three nodes, P = .5 .25 .125.
  const TokenTree chain = build_token_tree({draft({1, 2, 3}, "maxgram")});
  EXPECT_EQ(CostAwareTree(&even).choose(chain), (std::vector<int32_t>{0}));
  // One step cheaper for three draft tokens: the longer draft wins outright.
  const PassCostCurve cheaper({1.0, 1.5, 1.75, 1.87});
  EXPECT_EQ(CostAwareLength(&cheaper).choose(8), 3);
  EXPECT_EQ(CostAwareTree(&cheaper).choose(chain), (std::vector<int32_t>{0, 1, 2}));
}

TEST(CostAwareTree, FlatCurveKeepsTheWholeTreeSteepOneTheFirstNode) {
  // maxgram chain 10 11 12 13; bigram branches 20 21 and 10 22 (22 is node 0's second child).
  const TokenTree tree = build_token_tree({draft({10, 11, 12, 13}, "maxgram"), draft({20, 21}, "bigram"),
                                           draft({10, 22}, "bigram")});
  ASSERT_EQ(tree.size(), 7);
  const PassCostCurve flat({1.0}), steep({1.0, 2.0}), cpu({1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5});
  const std::vector<int32_t> all{0, 1, 2, 3, 4, 5, 6}, first{0};
  EXPECT_EQ(CostAwareTree(&flat).choose(tree), all);
  // No history (and no scores): c = 0.5 at rank 0 and 0.25 at rank 1, so
  // P = .5 .25 .125 .0625 .25 .125 .125.
  const auto p = CostAwareTree(&flat).node_probabilities(tree);
  const std::vector<double> want{0.5, 0.25, 0.125, 0.0625, 0.25, 0.125, 0.125};
  for (int v = 0; v < 7; ++v) EXPECT_DOUBLE_EQ(p[v], want[v]) << v;
  EXPECT_EQ(CostAwareTree(&steep).choose(tree), first);  // 1.5 / 2 beats 1.75 / 3
  EXPECT_EQ(CostAwareTree(&cpu).choose(tree), first);    // 1.5 / 1.1 beats 1.75 / 1.3
  // A gentler curve also takes the two .25 nodes (node 0's child, the root's second child):
  // 2.0 / 1.2 beats 1.75 / 1.1 and 2.125 / 1.3.
  const PassCostCurve gentle({1.0, 1.05, 1.1, 1.2, 1.3, 1.4});
  EXPECT_EQ(CostAwareTree(&gentle).choose(tree), (std::vector<int32_t>{0, 1, 4}));
  EXPECT_TRUE(CostAwareTree(&cpu).choose(TokenTree{}).empty());
}

TEST(CostAwareTree, LearnsWhichDrafterAndRankPays) {
  // Max-Gram's chain is always accepted, the bigram branches never are: on a curve where each
  // node costs a little, the bigram branches are pruned and the Max-Gram chain kept whole.
  const TokenTree tree = build_token_tree({draft({10, 11, 12, 13}, "maxgram"), draft({20, 21}, "bigram"),
                                           draft({10, 22}, "bigram")});
  const PassCostCurve gentle({1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.35});
  CostAwareTree ct(&gentle);
  const std::vector<int32_t> chain{0, 1, 2, 3};
  for (int i = 0; i < 20; ++i) ct.observe(tree, chain);
  EXPECT_GT(ct.acceptance("maxgram", 0, 0), 0.9);
  EXPECT_GT(ct.acceptance("maxgram", 0, 3), 0.9);
  EXPECT_LT(ct.acceptance("bigram", 1, 0), 0.05);
  EXPECT_LT(ct.acceptance("bigram", 1, 1), 0.05) << "tried at node 0's second child";
  EXPECT_EQ(ct.choose(tree), chain);
  // The rejected branch 20 -> 21: 21 was never verified, so only node 4 (20) counted. A source
  // never seen keeps the prior.
  EXPECT_DOUBLE_EQ(ct.acceptance("self:8", 0, 0), 0.5);
  EXPECT_DOUBLE_EQ(ct.acceptance("self:8", 3, 0), 0.125);
}

TEST(CostAwareTree, ScoredNodesAreCountedPerScoreBucket) {
  Draft mixed;  // Draft::push keeps scores aligned with tokens, -1 where a token has none
  mixed.push(10, "maxgram");
  EXPECT_TRUE(mixed.scores.empty());
  mixed.push(11, "bigram", 0.6f);
  mixed.push(12, "maxgram");
  EXPECT_EQ(mixed.scores, (std::vector<float>{-1.f, 0.6f, -1.f}));
  EXPECT_EQ(mixed.sources, (std::vector<std::string>{"maxgram", "bigram", "maxgram"}));
  // Root branches scored 0.6 (bucket 0) and 0.05 (bucket 4); the prior is the bucket's middle.
  Draft likely, unlikely;
  likely.push(20, "bigram", 0.6f);
  unlikely.push(21, "bigram", 0.05f);
  const TokenTree tree = build_token_tree({likely, unlikely});
  ASSERT_EQ(tree.scores, (std::vector<float>{0.6f, 0.05f}));
  const PassCostCurve flat({1.0});
  CostAwareTree ct(&flat);
  EXPECT_DOUBLE_EQ(ct.scored_acceptance("bigram", 0.6f, 0), 0.75);
  EXPECT_DOUBLE_EQ(ct.scored_acceptance("bigram", 0.05f, 0), 0.75 / 16);
  EXPECT_DOUBLE_EQ(ct.scored_acceptance("bigram", 0.f, 0), std::ldexp(0.75, -15)) << "the last bucket";
  EXPECT_DOUBLE_EQ(ct.scored_acceptance("bigram", std::nanf(""), 0), 0.5) << "NaN: unscored, rank 0";
  // The low-scored branch is the one accepted: the buckets learn it, ranks are not involved.
  for (int i = 0; i < 20; ++i) ct.observe(tree, std::vector<int32_t>{1});
  EXPECT_LT(ct.scored_acceptance("bigram", 0.6f, 0), 0.2);
  EXPECT_GT(ct.scored_acceptance("bigram", 0.05f, 0), 0.8);
  EXPECT_DOUBLE_EQ(ct.acceptance("bigram", 1, 0), 0.25) << "unscored rank-1 counters untouched";
  const auto p = ct.node_probabilities(tree);
  EXPECT_GT(p[1], p[0]);
}

TEST(CostAwareTree, ScoreBucketIsTheFloorOfMinusLog2) {
  // With no counts, c is the bucket's prior .75 * 2^-bucket, bucket = floor(-log2 p) in [0, 15]:
  // powers of two and their neighbours, the clamped ends, and random scores.
  const PassCostCurve flat({1.0});
  const CostAwareTree ct(&flat);
  auto want = [](float p) {
    const double b = p > 0 ? std::floor(-std::log2(double(p))) : 15.0;
    return std::ldexp(0.75, -int(std::clamp(b, 0.0, 15.0)));
  };
  std::vector<float> scores{1.f, 2.f, std::numeric_limits<float>::infinity(), 1e-9f, 1e-30f, 0.f,
                            std::numeric_limits<float>::denorm_min()};
  for (int e = 0; e <= 18; ++e) {
    const float p = std::ldexp(1.f, -e);
    scores.insert(scores.end(), {p, std::nextafter(p, 0.f), std::nextafter(p, 2.f)});
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) scores.push_back(std::ldexp(std::uniform_real_distribution<float>(0.5f, 1.f)(rng), -int(rng() % 20)));
  for (float p : scores) EXPECT_DOUBLE_EQ(ct.scored_acceptance("bigram", p, 0), want(p)) << "score " << p;
}

TEST(CostAwareTree, CountsOnlyChildrenOfAcceptedNodesAndChecksThePath) {
  const TokenTree tree = build_token_tree({draft({1, 2, 3}, "maxgram")});
  const PassCostCurve flat({1.0});
  CostAwareTree ct(&flat);
  for (int i = 0; i < 10; ++i) ct.observe(tree, {});  // node 0 rejected: 1 and 2 never tried
  EXPECT_LT(ct.acceptance("maxgram", 0, 0), 0.2);
  EXPECT_DOUBLE_EQ(ct.acceptance("maxgram", 0, 1), ct.acceptance("maxgram", 0, 0));
  EXPECT_THROW_MSG(ct.observe(tree, std::vector<int32_t>{3}), "path node 3 outside the tree of 3 nodes");
}

TEST(CostAwareTree, StreakStateFollowsWhetherTheDeepestNodeWasAccepted) {
  // History where a fully accepted step is always followed by a rejection and any other step
  // by a full acceptance: the counts of the two states learn opposite things, and the estimate
  // read is the one of the state the last observe() left.
  const TokenTree chain = build_token_tree({draft({1, 2, 3}, "maxgram")});
  const std::vector<int32_t> full{0, 1, 2}, partial{0, 1};
  const PassCostCurve flat({1.0});
  CostAwareTree ct(&flat);
  for (int i = 0; i < 12; ++i) {
    ct.observe(chain, full);  // counted cold (after a rejection): accepted
    ct.observe(chain, {});    // counted hot (after a full acceptance): rejected
  }
  const double cold = ct.acceptance("maxgram", 0, 0);
  EXPECT_GT(cold, 0.8) << "cold: after a rejection the chain was always accepted";
  ct.observe(chain, full);
  const double hot = ct.acceptance("maxgram", 0, 0);
  EXPECT_LT(hot, 0.2) << "hot: after a full acceptance the chain was always rejected";
  ct.observe(chain, partial);  // the deepest node rejected: cold again
  EXPECT_GT(ct.acceptance("maxgram", 0, 0), cold) << "cold, one more acceptance (the full step was counted cold)";
  // A branchy tree is hot only when the path reaches its deepest node, not just any leaf: the
  // same alternation, with the short branch (a leaf at depth 0) accepted in place of nothing.
  const TokenTree branchy = build_token_tree({draft({10, 11, 12, 13}, "maxgram"), draft({20}, "bigram")});
  ASSERT_EQ(branchy.size(), 5);
  const std::vector<int32_t> whole{0, 1, 2, 3}, leaf{4};
  CostAwareTree bt(&flat);
  for (int i = 0; i < 12; ++i) {
    bt.observe(branchy, whole);  // counted cold: the chain accepted
    bt.observe(branchy, leaf);   // counted hot: the chain rejected, the short branch accepted
  }
  EXPECT_GT(bt.acceptance("maxgram", 0, 0), 0.8) << "after the leaf path: cold";
  bt.observe(branchy, whole);
  EXPECT_LT(bt.acceptance("maxgram", 0, 0), 0.2) << "after the whole chain: hot";
  bt.observe(TokenTree{}, {});  // an empty tree verifies nothing: cold
  EXPECT_GT(bt.acceptance("maxgram", 0, 0), 0.8);
  // A tree of depth 0 only (two one-token drafts): one accepted node is its deepest, hot.
  const TokenTree flat_tree = build_token_tree({draft({10}, "maxgram"), draft({20}, "bigram")});
  ASSERT_EQ(flat_tree.size(), 2);
  bt.observe(flat_tree, std::vector<int32_t>{1});
  EXPECT_LT(bt.acceptance("maxgram", 0, 0), 0.2);
}

TEST(CostAwareTree, ChoiceIsTheBestSubtreeOfAnySize) {
  // Against brute force over every parent-closed node set of small random trees, after random
  // histories: the chosen set is a tree (ascending, parents kept), non-empty, and no other
  // set of nodes is worth more.
  std::mt19937 rng(7);
  const PassCostCurve curves[] = {PassCostCurve({1.0}), PassCostCurve({1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5}),
                                  PassCostCurve({1.0, 1.02, 1.04, 1.06, 1.3, 1.8, 2.4})};
  const char* sources[] = {"maxgram", "bigram"};
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<Draft> drafts;
    const int width = 1 + static_cast<int>(rng() % 4);
    for (int b = 0; b < width; ++b) {
      std::vector<int32_t> toks(1 + rng() % 4);
      for (auto& t : toks) t = static_cast<int32_t>(rng() % 3);
      drafts.push_back(draft(toks, sources[rng() % 2]));
    }
    const TokenTree tree = build_token_tree(drafts, 12);
    for (const auto& curve : curves) {
      CostAwareTree ct(&curve);
      const int steps = static_cast<int>(rng() % 12);
      for (int h = 0; h < steps; ++h) {  // a random accepted path
        std::vector<int32_t> path;
        for (int32_t parent = -1;;) {
          std::vector<int32_t> kids;
          for (int v = 0; v < tree.size(); ++v)
            if (tree.parents[v] == parent) kids.push_back(v);
          if (kids.empty() || rng() % 3 == 0) break;
          parent = kids[rng() % kids.size()];
          path.push_back(parent);
        }
        ct.observe(tree, path);
      }
      const auto keep = ct.choose(tree);
      const auto p = ct.node_probabilities(tree);
      ASSERT_FALSE(keep.empty());
      ASSERT_TRUE(std::is_sorted(keep.begin(), keep.end()));
      std::vector<char> kept(tree.size(), 0);
      for (int32_t v : keep) kept[v] = 1;
      for (int32_t v : keep) ASSERT_TRUE(tree.parents[v] < 0 || kept[tree.parents[v]]) << "node " << v;
      const double chosen = tree_value(curve, p, keep);
      for (uint32_t mask = 1; mask < (1u << tree.size()); ++mask) {
        std::vector<int32_t> set;
        bool closed = true;
        for (int v = 0; v < tree.size(); ++v)
          if (mask >> v & 1) {
            set.push_back(v);
            closed &= tree.parents[v] < 0 || (mask >> tree.parents[v] & 1);
          }
        if (closed) {
          ASSERT_LE(tree_value(curve, p, set), chosen * (1 + 1e-12)) << "trial " << trial << " mask " << mask;
        }
      }
    }
  }
}

namespace {
// A static table over 10 tokens, two candidates per row (rows not set: probability 0, skipped).
std::shared_ptr<BigramTable> grow_table() {
  auto t = std::make_shared<BigramTable>(10, 2, 0);
  auto set = [&](int32_t prev, BigramTable::Entry a, BigramTable::Entry b) {
    auto row = t->next_mutable(prev);
    row[0] = a, row[1] = b;
  };
  set(0, {1, 0.6f}, {5, 0.3f});
  set(1, {2, 0.7f}, {6, 0.2f});
  set(2, {3, 0.6f}, {4, 0.4f});
  set(5, {7, 0.5f}, {8, 0.5f});
  return t;
}
}  // namespace

TEST(CostAwareTree, GrowTakesTheMostLikelyOfTheDraftersNodesAndTheTablesCandidates) {
  // Pending token 0, Max-Gram's chain 1 2 (unscored: P .5, .25). Candidates (no history: the
  // score bucket's prior, .75 * 2^-bucket): 5 (p .3, bucket 1) below the root: .375; 6 (.2,
  // bucket 2) below 1: .5 * .1875; 3 (.6, bucket 0) and 4 (.4, bucket 1) below 2 at depth 2:
  // .25 * .75 and .25 * .375; 7 and 8 (.5, bucket 1) below 5: .375 * .375 each. Row 0's 1 and
  // row 1's 2 are already the chain's nodes; depth 2 is the last (max_depth 3).
  const NextTokens table(grow_table());
  const TokenTree base = build_token_tree({draft({1, 2}, "maxgram")});
  const PassCostCurve flat({1.0});
  const CostAwareTree ct(&flat);
  const TokenTree all = ct.grow(base, 0, table, 64, 3);
  // Taken: 1 (.5), 5 (.375), 2 (.25), 3 (.1875), 7 and 8 (.140625: pushed first wins), 6 and 4
  // (.09375); base nodes first, then the added ones in that order.
  EXPECT_EQ(all.tokens, (std::vector<int32_t>{1, 2, 5, 3, 7, 8, 6, 4}));
  EXPECT_EQ(all.parents, (std::vector<int32_t>{-1, 0, -1, 1, 2, 2, 0, 1}));
  EXPECT_EQ(all.depths, (std::vector<int32_t>{0, 1, 0, 2, 1, 1, 1, 2}));
  EXPECT_EQ(all.sources, (std::vector<std::string>{"maxgram", "maxgram", "bigram", "bigram", "bigram", "bigram",
                                                   "bigram", "bigram"}));
  EXPECT_EQ(all.scores, (std::vector<float>{-1.f, -1.f, 0.3f, 0.6f, 0.5f, 0.5f, 0.2f, 0.4f}));
  validate_parents(all.parents);
  EXPECT_EQ(tree_depths(all.parents), all.depths);
  // The pruner's estimate of the grown tree is the one growing used.
  const auto p = ct.node_probabilities(all);
  const std::vector<double> want{0.5, 0.25, 0.375, 0.1875, 0.140625, 0.140625, 0.09375, 0.09375};
  for (int v = 0; v < all.size(); ++v) EXPECT_DOUBLE_EQ(p[v], want[v]) << v;
  // A budget keeps the most likely: 1, 5, 2, 3.
  const TokenTree four = ct.grow(base, 0, table, 4, 3);
  EXPECT_EQ(four.tokens, (std::vector<int32_t>{1, 2, 5, 3}));
  EXPECT_EQ(four.parents, (std::vector<int32_t>{-1, 0, -1, 1}));
  EXPECT_EQ(ct.grow(base, 0, table, 0, 3).size(), 0);
  // max_depth 1: only the root's children come from the table.
  EXPECT_EQ(ct.grow(base, 0, table, 64, 1).tokens, (std::vector<int32_t>{1, 2, 5}));
  // Without a drafter's tree, the table alone (a bigram drafter's tree, grown).
  // 1 (.75), 2 (.75 * .75), 3 (.5625 * .75), 5 (.375), 4 (.5625 * .375), then 6, 7 and 8 at
  // .140625 each (6 was pushed first).
  EXPECT_EQ(ct.grow(TokenTree{}, 0, table, 64, 3).tokens, (std::vector<int32_t>{1, 2, 3, 5, 4, 6, 7, 8}));
  EXPECT_THROW_MSG(ct.grow(base, 0, table, 1025, 3), "max_nodes = 1025");
}

TEST(CostAwareTree, GrowFollowsWhatWasLearned) {
  // Once the table's candidates are seen rejected and Max-Gram's accepted, growing keeps the
  // chain and drops the candidates below a budget of the chain's length.
  const NextTokens table(grow_table());
  const TokenTree base = build_token_tree({draft({1, 2}, "maxgram")});
  const PassCostCurve flat({1.0});
  CostAwareTree ct(&flat);
  const TokenTree grown = ct.grow(base, 0, table, 64, 3);
  std::vector<int32_t> chain{0, 1};  // nodes 1 and 2 of the grown tree: tokens 1 2
  for (int i = 0; i < 20; ++i) ct.observe(grown, chain);
  const TokenTree two = ct.grow(base, 0, table, 2, 3);
  EXPECT_EQ(two.tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_LT(ct.scored_acceptance("bigram", 0.3f, 0), 0.1);
  // The same with the candidate accepted instead: 5 (the root's second child) comes first.
  CostAwareTree other(&flat);
  for (int i = 0; i < 20; ++i) other.observe(grown, std::vector<int32_t>{2});
  EXPECT_EQ(other.grow(base, 0, table, 1, 3).tokens, (std::vector<int32_t>{5}));
}

namespace {
// Growing written the slow way, as the reference: every step scans every waiting item. Below a
// taken node, its table row less base's children there, stable-sorted by c descending; the
// row's first candidate waits from the moment the node is taken, each next one from the moment
// the one before it is taken, with the push order of that moment (base nodes: order 0).
TokenTree naive_grow(const CostAwareTree& ct, const TokenTree& base, int32_t last, const NextTokens& table,
                     int max_nodes, int max_depth) {
  struct Row {
    int parent;  // ref: base node b, added node a: -2 - a, root -1
    int depth;
    double p;
    std::vector<BigramTable::Entry> sorted;
    size_t next = 0;
    int64_t order = 0;  // of the waiting candidate
  };
  const auto p_base = ct.node_probabilities(base);
  std::vector<Row> rows;
  std::vector<char> base_waits(base.size(), 0), base_taken(base.size(), 0);
  int64_t pushes = 0;
  auto expand = [&](int ref, double p, int depth, int32_t token) {
    std::vector<int32_t> kid_tokens;
    for (int v = 0; v < base.size(); ++v)
      if ((ref >= -1 && base.parents[v] == ref)) base_waits[v] = 1, kid_tokens.push_back(base.tokens[v]);
    if (depth + 1 >= max_depth) return;
    Row r{ref, depth + 1, p, {}};
    for (const auto& e : table.next(token))
      if (e.prob > 0.f && std::find(kid_tokens.begin(), kid_tokens.end(), e.token) == kid_tokens.end())
        r.sorted.push_back(e);
    auto c = [&](const BigramTable::Entry& e) { return ct.scored_acceptance(table.source(), e.prob, depth + 1); };
    std::stable_sort(r.sorted.begin(), r.sorted.end(), [&](const auto& a, const auto& b) { return c(a) > c(b); });
    if (r.sorted.empty()) return;
    r.order = ++pushes;
    rows.push_back(std::move(r));
  };
  struct Added {
    int parent, depth;
    BigramTable::Entry e;
  };
  std::vector<Added> added;
  expand(-1, 1.0, -1, last);
  for (int taken = 0; taken < max_nodes; ++taken) {
    // best waiting item: P, then the lower order, then the lower base index
    double best_p = -1;
    int64_t best_order = 0;
    int best_node = -1, best_row = -1;
    auto better = [&](double p, int64_t order, int node) {
      return best_p < 0 || p > best_p || (p == best_p && (order < best_order || (order == best_order && node < best_node)));
    };
    for (int v = 0; v < base.size(); ++v)
      if (base_waits[v] && !base_taken[v] && better(p_base[v], 0, v)) best_p = p_base[v], best_order = 0, best_node = v, best_row = -1;
    for (size_t r = 0; r < rows.size(); ++r) {
      const Row& row = rows[r];
      if (row.next >= row.sorted.size()) continue;
      const double p = row.p * ct.scored_acceptance(table.source(), row.sorted[row.next].prob, row.depth);
      if (better(p, row.order, std::numeric_limits<int>::max())) best_p = p, best_order = row.order, best_node = -1, best_row = int(r);
    }
    if (best_p < 0) break;
    if (best_row < 0) {
      base_taken[best_node] = 1;
      expand(best_node, best_p, base.depths[best_node], base.tokens[best_node]);
      continue;
    }
    Row& row = rows[best_row];
    const auto e = row.sorted[row.next++];
    row.order = ++pushes;
    added.push_back({row.parent, row.depth, e});
    expand(-2 - int(added.size() - 1), best_p, row.depth, e.token);
  }
  std::vector<int32_t> keep, index_of(base.size(), -1);
  for (int v = 0; v < base.size(); ++v)
    if (base_taken[v]) index_of[v] = int32_t(keep.size()), keep.push_back(v);
  TokenTree out = subtree(base, keep);
  const int first_added = out.size();
  for (const Added& a : added) {
    out.tokens.push_back(a.e.token);
    out.parents.push_back(a.parent == -1 ? -1 : a.parent >= 0 ? index_of[a.parent] : first_added + (-2 - a.parent));
    out.depths.push_back(a.depth);
    out.sources.push_back(table.source());
    out.scores.push_back(a.e.prob);
  }
  return out;
}
}  // namespace

TEST(CostAwareTree, GrowEqualsTheSlowReferenceOnRandomTreesAndTables) {
  // Random drafters' trees over a small vocabulary, a recycled table whose rows are observed
  // (so a row's probabilities go up again after the observation), probabilities on a coarse
  // grid (many equal classes: ties), random learned counts; every budget and depth limit.
  std::mt19937 rng(7);
  const int vocab = 12;
  auto coarse = [&](int max_twentieths) { return float(1 + rng() % max_twentieths) / 20.f; };
  int compared = 0, grown_nodes = 0;
  for (int trial = 0; trial < 60; ++trial) {
    auto t = std::make_shared<BigramTable>(vocab, 4, 0);
    for (int32_t prev = 0; prev < vocab; ++prev) {
      auto row = t->next_mutable(prev);
      std::vector<int32_t> toks(vocab);
      for (int i = 0; i < vocab; ++i) toks[i] = i;
      std::shuffle(toks.begin(), toks.end(), rng);
      std::vector<float> probs(4);
      for (float& p : probs) p = trial % 5 == 4 && rng() % 3 == 0 ? 0.f : coarse(12);
      std::sort(probs.rbegin(), probs.rend());
      for (int i = 0; i < 4; ++i) row[i] = {toks[i], probs[i]};
    }
    NextTokens table(t, /*recycle=*/trial % 2 == 1);
    for (int obs = 0; obs < 8; ++obs) {
      const spw::TopToken top[2] = {{int32_t(rng() % vocab), coarse(4)}, {int32_t(rng() % vocab), coarse(2)}};
      table.observe(int32_t(rng() % vocab), top);
    }
    std::vector<Draft> drafts(rng() % 4);
    for (auto& d : drafts) {
      const int len = 1 + int(rng() % 5);
      for (int i = 0; i < len; ++i) d.push(int32_t(rng() % vocab), rng() % 3 ? "maxgram" : "bigram", rng() % 2 ? -1.f : coarse(20));
    }
    const TokenTree base = build_token_tree(drafts);
    const PassCostCurve flat({1.0});
    CostAwareTree ct(&flat);
    for (int learn = 0; learn < int(rng() % 12); ++learn) {  // counts from random outcomes
      const TokenTree seen = ct.grow(base, int32_t(rng() % vocab), table, 16, 4);
      std::vector<int32_t> path;
      for (int v = 0; v < seen.size(); ++v)
        if ((seen.parents[v] < 0 ? path.empty() : !path.empty() && path.back() == seen.parents[v]) && rng() % 2)
          path.push_back(v);
      ct.observe(seen, path);
    }
    for (int max_nodes : {0, 1, 3, 9, 30, 64})
      for (int max_depth : {1, 2, 5}) {
        const int32_t last = int32_t(rng() % vocab);
        const TokenTree got = ct.grow(base, last, table, max_nodes, max_depth);
        const TokenTree want = naive_grow(ct, base, last, table, max_nodes, max_depth);
        ASSERT_EQ(got.tokens, want.tokens) << "trial " << trial << " nodes " << max_nodes << " depth " << max_depth;
        ASSERT_EQ(got.parents, want.parents) << "trial " << trial;
        ASSERT_EQ(got.depths, want.depths) << "trial " << trial;
        ASSERT_EQ(got.sources, want.sources) << "trial " << trial;
        ASSERT_EQ(got.scores, want.scores) << "trial " << trial;
        ++compared, grown_nodes += got.size();
      }
  }
  EXPECT_EQ(compared, 60 * 18);
  EXPECT_GT(grown_nodes, 60 * 18 * 5) << "trees big enough to matter";
}

TEST(DraftLengthCost, GrownTreesKeepGreedyOutputAndCarryMoreNodes) {
  FakeModel target(spw::test::kVocab, spw::test::kMaxTokens);
  auto env = spw::test::make_env();
  const std::vector<int32_t> prompt{3, 9, 4, 9, 3};
  // Trees of 4 branches, 6 deep, by cost on a flat curve (every node pays), without and with growing.
  auto plain_and_grown = [&](const char* spec) {
    SpeculativeDecoder dec(target, make_drafter_factory(spec, env));
    GenerateParams gp;
    gp.max_new_tokens = 40;
    gp.k = 6;
    gp.tree_width = 4;
    gp.draft_length = DraftLength::cost;
    gp.pass_costs = {1.0};
    gp.max_tree_nodes = 40;  // the drafter's trees have at most 4 x 6 nodes
    const Generation plain = dec.generate(prompt, gp);
    gp.grow_tree = true;
    return std::pair{plain, dec.generate(prompt, gp)};
  };
  for (const char* spec : {"maxgram+bigram", "maxgram+recycle", "bigram", "recycle"}) {
    const auto [plain, grown] = plain_and_grown(spec);
    EXPECT_EQ(grown.tokens, target.greedy_reference(prompt, 40)) << spec;
    EXPECT_EQ(plain.tokens, grown.tokens) << spec;
    EXPECT_GT(grown.stats.drafted, plain.stats.drafted) << spec << ": a flat curve takes the whole grown tree";
    int64_t max_carried = 0;
    for (size_t n = 0; n < grown.stats.passes_of.size(); ++n)
      if (grown.stats.passes_of[n] > 0) max_carried = static_cast<int64_t>(n);
    EXPECT_LE(max_carried, 1 + 40) << spec;
  }
  // A drafter with no table: growing changes nothing.
  const auto [plain, grown] = plain_and_grown("maxgram");
  EXPECT_EQ(plain.tokens, grown.tokens);
  EXPECT_EQ(plain.stats.drafted, grown.stats.drafted);
}

TEST(DraftLengthCost, TreesFlatCurveVerifiesTheWholeTreeSteepOneNode) {
  const CostRuns r = run_by_cost("maxgram+bigram", 5, 3);
  const Generation &fixed = r.fixed, &flat = r.flat, &steep = r.steep;
  EXPECT_GT(fixed.stats.drafted, fixed.stats.target_passes * 5) << "the premise: trees wider than a chain";
  EXPECT_EQ(flat.stats.drafted, fixed.stats.drafted) << "flat curve: every node of every tree";
  EXPECT_EQ(flat.stats.target_passes, fixed.stats.target_passes);
  EXPECT_EQ(steep.stats.drafted, steep.stats.target_passes) << "t(n) = n: one node per pass";
  ASSERT_EQ(steep.stats.passes_of.size(), 3u) << "every pass carried the pending token and one node";
  EXPECT_EQ(steep.stats.passes_of[2], steep.stats.target_passes);
}

TEST(MeasurePassCosts, TimesEveryLengthAndFreesItsSequence) {
  FakeModel target(spw::test::kVocab, spw::test::kMaxTokens);
  const int64_t calls = target.forward_calls;
  const auto curve = measure_pass_costs(target, 5, 16, 3);
  ASSERT_EQ(curve.size(), 5u);
  for (double t : curve) EXPECT_GT(t, 0.0);
  // 1 prefill + 5 lengths x (1 warm-up + 3 timed) passes
  EXPECT_EQ(target.forward_calls - calls, 1 + 5 * 4);
  const int next = target.create_sequence();
  EXPECT_THROW(target.cached_tokens(next - 1), std::runtime_error) << "the scratch sequence was freed";
  EXPECT_NO_THROW(PassCostCurve{curve});
  // Above 8 tokens (a tree's curve) only some n are timed, the rest interpolated.
  const int64_t before = target.forward_calls;
  const auto tree_curve = measure_pass_costs(target, 21, 16, 2);
  ASSERT_EQ(tree_curve.size(), 21u);
  std::vector<int> timed;
  for (int n = 1; n <= 21; ++n)
    if (pass_cost_measured(n, 21)) timed.push_back(n);
  EXPECT_EQ(timed, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 21}));
  EXPECT_EQ(target.forward_calls - before, 1 + 14 * 3);
  EXPECT_DOUBLE_EQ(tree_curve[8], (tree_curve[7] + tree_curve[9]) / 2);  // t(9) between t(8) and t(10)
  EXPECT_DOUBLE_EQ(tree_curve[17], tree_curve[15] + (tree_curve[19] - tree_curve[15]) * 2 / 4);  // t(18)
  EXPECT_TRUE(pass_cost_measured(64, 65) && pass_cost_measured(65, 65) && !pass_cost_measured(60, 65));
  EXPECT_THROW_MSG(measure_pass_costs(target, 0), "max_n = 0: must be in [1, 65]");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, spw::test::kMaxTokens), "plus max_n must fit");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, 8, 0), "reps = 0");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, 8, 2, spw::test::kVocab), "filler");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, 8, 2, -1), "filler = -1: must be a token of the vocabulary");
  for (int32_t filler : {0, spw::test::kVocab - 1})  // the vocabulary's first and last tokens
    EXPECT_EQ(measure_pass_costs(target, 2, 0, 1, filler).size(), 2u) << filler;
}

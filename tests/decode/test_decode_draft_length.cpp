// Cost-aware draft length (decode/draft_length.h, DraftLength::cost): the cost curve, the
// length chosen for flat and steep curves, how acceptance and streaks move it, the decoder's
// argument checks, and measure_pass_costs. (Greedy equality and replay equality with
// DraftLength::cost are in test_decode_greedy.cpp / test_decode_replay.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

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
  gp.pass_costs = {1.0, 1.2};
  gp.tree_width = 3;
  EXPECT_THROW_MSG(dec.generate(prompt, gp), "draft_length cost is for chains: tree_width = 3");
}

TEST(DraftLengthCost, FlatCurveDraftsAsLongAsFixedSteepOneShortCpuLikeOneGrows) {
  // No position term: the target's greedy text depends on the last two tokens only, so it
  // becomes periodic, and a prompt of its own greedy text makes Max-Gram right every time.
  FakeModel target(spw::test::kVocab, spw::test::kMaxTokens);
  auto env = spw::test::make_env();
  SpeculativeDecoder dec(target, make_drafter_factory("maxgram", env));
  const auto prompt = target.greedy_reference(std::vector<int32_t>{3}, 60);
  GenerateParams gp;
  gp.max_new_tokens = 40;
  gp.k = 6;
  gp.draft_length = DraftLength::fixed;
  const auto fixed = dec.generate(prompt, gp);
  gp.draft_length = DraftLength::cost;
  gp.pass_costs = {1.0};
  const auto flat = dec.generate(prompt, gp);
  gp.pass_costs = {1.0, 2.0};
  const auto steep = dec.generate(prompt, gp);
  // A CPU-like curve: 1 token drafted at first (prior 0.5 everywhere), longer drafts as Max-Gram
  // keeps being right (the decoder feeds every step back).
  gp.pass_costs = {1.0, 1.1, 1.3, 1.6, 1.9, 2.2, 2.5};
  const auto cpu = dec.generate(prompt, gp);
  for (const auto* g : {&flat, &steep, &cpu}) EXPECT_EQ(g->tokens, fixed.tokens);
  EXPECT_EQ(flat.stats.accepted, flat.stats.drafted) << "the premise: Max-Gram is always right here";
  EXPECT_EQ(flat.stats.drafted, fixed.stats.drafted) << "flat curve: always the longest draft";
  EXPECT_EQ(steep.stats.drafted, steep.stats.target_passes) << "t(n) = n: one draft token per pass";
  ASSERT_EQ(cpu.stats.proposed_at.size(), 6u) << "drafts grow to k once the streak is seen";
  EXPECT_EQ(cpu.stats.proposed_at[0], cpu.stats.target_passes);
  EXPECT_LT(cpu.stats.proposed_at[5], cpu.stats.proposed_at[0]) << "but start short";
  EXPECT_GT(cpu.stats.drafted, 2 * cpu.stats.target_passes) << cpu.stats.drafted << " / " << cpu.stats.target_passes;
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
  EXPECT_THROW_MSG(measure_pass_costs(target, 0), "max_n = 0: must be in [1, 65]");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, spw::test::kMaxTokens), "plus max_n must fit");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, 8, 0), "reps = 0");
  EXPECT_THROW_MSG(measure_pass_costs(target, 4, 8, 2, spw::test::kVocab), "filler");
}

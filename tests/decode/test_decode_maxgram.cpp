// Max-Gram drafter unit tests: longest match, most recent match wins, incremental index
// under growth and shrinkage, periodic extension, tree proposals, bigram fill to exactly k.
#include <gtest/gtest.h>

#include <random>

#include "decode/maxgram.h"
#include "tests/common/helpers.h"

using namespace spw::decode;

namespace {
std::vector<int32_t> V(std::initializer_list<int32_t> v) { return v; }
}

TEST(MaxGram, LongestSuffixMatchProposesContinuation) {
  MaxGramDrafter d;
  // "1 2 3 9 ... 2 3" : suffix "2 3" matched at the start, continuation 9 4 5.
  auto ctx = V({1, 2, 3, 9, 4, 5, 7, 2, 3});
  auto draft = d.propose(ctx, 3);
  EXPECT_EQ(draft.tokens, V({9, 4, 5}));
  ASSERT_EQ(draft.sources.size(), 3u);
  EXPECT_EQ(draft.sources[0], "maxgram");
}

TEST(MaxGram, LongerMatchBeatsMoreRecentShorterOne) {
  MaxGramDrafter d;
  // suffix "5 6": "5 6 -> 1" early, "6 -> 2" more recent; the 2-gram match wins.
  auto ctx = V({5, 6, 1, 8, 6, 2, 8, 5, 6});
  EXPECT_EQ(d.propose(ctx, 1).tokens, V({1}));
}

TEST(MaxGram, MostRecentOccurrenceWins) {
  MaxGramDrafter d;
  auto ctx = V({4, 7, 1, 4, 7, 2, 4, 7});
  EXPECT_EQ(d.propose(ctx, 1).tokens, V({2}));
  auto m = d.longest_match(ctx);
  EXPECT_EQ(m.first, 4);
  EXPECT_EQ(m.second, 2);
}

TEST(MaxGram, NoMatchGivesEmptyDraft) {
  MaxGramDrafter d;
  EXPECT_TRUE(d.propose(V({1, 2, 3, 4}), 4).tokens.empty());
  EXPECT_TRUE(d.propose({}, 4).tokens.empty());
  EXPECT_TRUE(d.propose(V({1}), 4).tokens.empty());
}

TEST(MaxGram, PeriodicExtensionFillsK) {
  MaxGramDrafter d;
  auto ctx = V({1, 2, 3, 1, 2, 3, 1});
  EXPECT_EQ(d.propose(ctx, 7).tokens, V({2, 3, 1, 2, 3, 1, 2}));
}

TEST(MaxGram, MinNIsRespected) {
  MaxGramDrafter d({2, 4});
  EXPECT_TRUE(d.propose(V({3, 9, 5, 3}), 2).tokens.empty());  // only a 1-gram match
  MaxGramDrafter d1({1, 4});
  EXPECT_EQ(d1.propose(V({3, 9, 5, 3}), 1).tokens, V({9}));
  EXPECT_THROW_MSG(MaxGramDrafter({0, 3}), "min_n = 0");
  EXPECT_THROW_MSG(MaxGramDrafter({3, 2}), "max_n = 2");
}

TEST(MaxGram, IncrementalIndexMatchesFreshIndexUnderGrowthAndShrinkage) {
  std::mt19937 rng(7);
  MaxGramDrafter inc({1, 5});
  std::vector<int32_t> ctx;
  for (int step = 0; step < 400; ++step) {
    const int op = rng() % 4;
    if (op == 0 && !ctx.empty()) {
      ctx.resize(ctx.size() - std::min<size_t>(ctx.size(), rng() % 4));  // a discarded draft
    } else {
      for (int i = 0, n = 1 + rng() % 3; i < n; ++i) ctx.push_back(rng() % 6);
    }
    MaxGramDrafter fresh({1, 5});
    const int k = 1 + rng() % 5;
    ASSERT_EQ(inc.propose(ctx, k).tokens, fresh.propose(ctx, k).tokens) << "step " << step;
    ASSERT_EQ(inc.indexed_tokens(), ctx.size());
  }
}

TEST(MaxGram, TreeProposesDistinctContinuations) {
  MaxGramDrafter d;
  auto ctx = V({4, 7, 1, 4, 7, 2, 4, 7, 2, 5, 4, 7});
  auto drafts = d.propose_tree(ctx, 2, 3);
  ASSERT_EQ(drafts.size(), 2u);  // continuations start with 2 (most recent) and 1
  EXPECT_EQ(drafts[0].tokens, V({2, 5}));
  EXPECT_EQ(drafts[1].tokens, V({1, 4}));
}

TEST(MaxGram, BigramFillGivesExactlyK) {
  auto table = std::make_shared<BigramTable>(BigramTable::from_sequences({{0, 1, 2, 3, 0, 1, 2, 3}}, 8, 1, 0));
  MaxGramDrafter d({1, 4}, table);
  EXPECT_EQ(d.name(), "maxgram+bigram");
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int32_t> ctx;
    for (int i = 0, n = rng() % 12; i < n; ++i) ctx.push_back(rng() % 8);
    if (ctx.empty()) continue;
    const int k = 1 + rng() % 8;
    auto draft = d.propose(ctx, k);
    ASSERT_EQ(static_cast<int>(draft.tokens.size()), k);
    ASSERT_EQ(draft.sources.size(), draft.tokens.size());
  }
  // No match at all: the bigram chain from the last token.
  auto draft = d.propose(V({6, 0}), 3);
  EXPECT_EQ(draft.tokens, V({1, 2, 3}));
  EXPECT_EQ(draft.sources[0], "bigram");
  // A short match, then bigram.
  auto d2 = d.propose(V({7, 5, 7}), 3);
  EXPECT_EQ(d2.tokens[0], 5);
  EXPECT_EQ(d2.sources[0], "maxgram");
  EXPECT_EQ(d2.tokens.size(), 3u);
}

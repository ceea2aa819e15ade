// Max-Gram drafter unit tests: longest match, most recent match wins, incremental index
// under growth and shrinkage, periodic extension, tree proposals, bigram fill to exactly k.
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

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
  // The ends of the allowed range: max_n = min_n, and max_n = 64.
  EXPECT_EQ(MaxGramDrafter({2, 2}).propose(V({3, 9, 3, 9}), 1).tokens, V({3}));
  EXPECT_NO_THROW(MaxGramDrafter({1, 64}));
  EXPECT_THROW_MSG(MaxGramDrafter({1, 65}), "max_n = 65: must be in [min_n, 64]");
}

// The shortest context with a match: two tokens, the second repeating the first.
TEST(MaxGram, TwoTokenContextMatchesItsOneGram) {
  MaxGramDrafter d;
  EXPECT_EQ(d.propose(V({7, 7}), 3).tokens, V({7, 7, 7}));
  EXPECT_TRUE(d.propose(V({7, 8}), 3).tokens.empty());
  EXPECT_TRUE(d.propose(V({7}), 3).tokens.empty());
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
  // "4 7" occurred ending at 7 (then 2 5), 4 (then 2 4) and 1 (then 1 4): distinct first
  // tokens first (most recent first), then a continuation that branches at depth 1.
  auto drafts = d.propose_tree(ctx, 2, 3);
  ASSERT_EQ(drafts.size(), 3u);
  EXPECT_EQ(drafts[0].tokens, V({2, 5}));
  EXPECT_EQ(drafts[1].tokens, V({1, 4}));
  EXPECT_EQ(drafts[2].tokens, V({2, 4}));
  EXPECT_EQ(d.propose_tree(ctx, 2, 2).size(), 2u);  // width bounds it
  // Equal continuations are proposed once: with k = 1 only two distinct drafts exist.
  drafts = d.propose_tree(ctx, 1, 3);
  ASSERT_EQ(drafts.size(), 2u);
  EXPECT_EQ(drafts[0].tokens, V({2}));
  EXPECT_EQ(drafts[1].tokens, V({1}));
}

TEST(MaxGram, TreeAddsTheBigramTablesOtherNextTokensAtTheRoot) {
  // After 3 the corpus has 1 (twice), 2 and 5: the table's top-3.
  auto table = std::make_shared<BigramTable>(
      BigramTable::from_sequences({{3, 1, 0, 3, 1, 0, 3, 2, 0, 3, 5, 0}}, 8, 3, 0));
  ASSERT_EQ(table->next(3).size(), 3u);
  MaxGramDrafter d({1, 4}, table);
  // "0 3" occurred before (then 2 0 4 0), "3" also at the start (then 1 0 3 2): two maxgram
  // drafts with distinct first tokens, then the table's remaining next token 5 as a branch.
  const auto ctx = V({3, 1, 0, 3, 2, 0, 4, 0, 3});
  const auto drafts = d.propose_tree(ctx, 4, 4);
  ASSERT_EQ(drafts.size(), 3u) << "two maxgram drafts and one bigram alternative";
  EXPECT_EQ(drafts[0].tokens, V({2, 0, 4, 0}));
  EXPECT_EQ(drafts[1].tokens, V({1, 0, 3, 2}));
  EXPECT_EQ(drafts[2].tokens, V({5, table->most_likely(5)}));  // the alternative and one token after it
  EXPECT_EQ(drafts[2].sources, (std::vector<std::string>{"bigram", "bigram"}));
  EXPECT_EQ(d.propose_tree(ctx, 4, 2).size(), 2u);                  // width bounds it
  EXPECT_EQ(d.propose_tree(ctx, 1, 4).at(2).tokens, V({5}));         // and k
  // No match at all: the bigram chain, then the other next tokens.
  const auto none = d.propose_tree(V({7, 3}), 3, 4);
  ASSERT_EQ(none.size(), 3u);
  EXPECT_EQ(none[0].tokens[0], 1);
  EXPECT_EQ(none[0].tokens.size(), 3u);
  EXPECT_EQ(none[1].tokens.size(), 2u);
  EXPECT_EQ(none[2].tokens.size(), 2u);
  EXPECT_NE(none[1].tokens[0], none[2].tokens[0]);
  // Without a table the tree has maxgram's drafts only.
  MaxGramDrafter plain({1, 4});
  EXPECT_EQ(plain.propose_tree(ctx, 4, 4).size(), 2u);
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

// The index's open-addressing table against std::unordered_map under random inserts,
// replacements and deletions. Keys share their low bits in small groups, so probe runs are long,
// wrap around the end of the table and get holes punched into them (backward shift), and the
// table grows from empty through several doublings, then again after a reserve().
TEST(NgramTable, AgreesWithAnUnorderedMap) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 2; ++round) {
    NgramTable t;
    if (round == 1) t.reserve(300);
    std::unordered_map<uint64_t, int32_t> ref;
    std::vector<uint64_t> keys;
    for (int i = 0; i < 600; ++i) {
      const uint64_t low = (rng() % 8) * 0x3f;  // 8 homes in any table of >= 512 slots; wraps below
      keys.push_back((rng() << 16) | low | 0xffc0ull * (i % 2));
    }
    for (int op = 0; op < 20000; ++op) {
      const uint64_t key = keys[rng() % keys.size()];
      const int kind = static_cast<int>(rng() % 3);
      if (kind < 2) {  // insert or replace
        const int32_t v = static_cast<int32_t>(rng() % 1000);
        auto it = ref.find(key);
        const int32_t old = it == ref.end() ? -1 : it->second;
        ASSERT_EQ(t.exchange(key, v), old) << "op " << op;
        ref[key] = v;
      } else if (ref.count(key)) {
        t.erase(key);
        ref.erase(key);
      }
      ASSERT_EQ(t.size(), ref.size()) << "op " << op;
      if (op % 97 == 0)
        for (uint64_t k : keys) {
          auto it = ref.find(k);
          const int32_t* v = t.find(k);
          ASSERT_EQ(v != nullptr, it != ref.end()) << "op " << op << " key " << k;
          if (v) {
            ASSERT_EQ(*v, it->second);
          }
        }
    }
    t.clear();
    EXPECT_EQ(t.size(), 0u);
    for (uint64_t k : keys) EXPECT_EQ(t.find(k), nullptr);
  }
}

// BigramTable: pair counts on a tiny corpus, smoothing, tokenizer hash, file round trip,
// corrupted / truncated / mismatched files rejected with clear errors, builder from a model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

#include "decode/bigram.h"
#include "tests/common/helpers.h"
#include "tests/decode/fake_model.h"

using namespace spw::decode;

namespace {
std::string tmp_path(const char* name) { return std::string(::testing::TempDir()) + name; }
std::vector<char> read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_all(const std::string& p, const std::vector<char>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}
}  // namespace

TEST(Bigram, PairCountsOnTinyCorpus) {
  // 0->1 twice, 0->2 once, 1->2 twice, 2->0 twice (across two sequences; no pair across them).
  auto t = BigramTable::from_sequences({{0, 1, 2, 0, 1}, {2, 0, 2}}, 4, 2, 42, 0.5);
  EXPECT_EQ(t.vocab_size(), 4);
  EXPECT_EQ(t.tokenizer_hash(), 42u);
  EXPECT_EQ(t.next(0)[0].token, 1);
  EXPECT_NEAR(t.next(0)[0].prob, (2 + 0.5) / (3 + 0.5 * 4), 1e-6);
  EXPECT_EQ(t.next(0)[1].token, 2);
  EXPECT_NEAR(t.next(0)[1].prob, (1 + 0.5) / (3 + 2.0), 1e-6);
  EXPECT_EQ(t.most_likely(1), 2);
  EXPECT_EQ(t.most_likely(2), 0);
  // Token 3 never seen as a context: unigram row (counts 0:3, 1:2, 2:3 -> tie to lower id 0).
  EXPECT_EQ(t.most_likely(3), 0);
  EXPECT_NEAR(t.next(3)[0].prob, (3 + 0.5) / (8 + 2.0), 1e-6);
  EXPECT_THROW_MSG(BigramTable::from_sequences({{0, 9}}, 4, 1, 0), "token = 9");
  EXPECT_THROW_MSG(BigramTable::from_sequences({{0, 4}}, 4, 1, 0), "token = 4: outside the vocabulary");
  EXPECT_THROW_MSG(BigramTable::from_sequences({{-1, 0}}, 4, 1, 0), "token = -1: outside the vocabulary");
}

// Pairs seen equally often rank by the lower token id, whatever order the corpus shows them in.
TEST(Bigram, TiedPairCountsRankByTokenId) {
  auto t = BigramTable::from_sequences({{0, 9}, {0, 7}, {0, 8}, {0, 3}, {0, 5}, {1, 6}, {1, 2}}, 10, 3, 0);
  const auto row = t.next(0);
  EXPECT_EQ(row[0].token, 3);
  EXPECT_EQ(row[1].token, 5);
  EXPECT_EQ(row[2].token, 7);
  EXPECT_EQ(t.next(1)[0].token, 2);
  EXPECT_EQ(t.next(1)[1].token, 6);
  EXPECT_EQ(t.next(1)[2].token, 0);  // then unseen tokens at the floor, lowest id first
}

// Table shapes: top_k up to min(64, vocab_size); a vocabulary must have a token.
TEST(Bigram, TableShapesAreChecked) {
  EXPECT_NO_THROW(BigramTable(100, 64, 0));
  EXPECT_NO_THROW(BigramTable(1, 1, 0));
  EXPECT_THROW_MSG(BigramTable(100, 65, 0), "top_k = 65: must be in [1, min(64, vocab_size)]");
  EXPECT_THROW_MSG(BigramTable(5, 6, 0), "top_k = 6: must be in [1, min(64, vocab_size)]");
  EXPECT_THROW_MSG(BigramTable(5, 0, 0), "top_k = 0");
  EXPECT_THROW_MSG(BigramTable(0, 1, 0), "vocab_size = 0: must be > 0");
}

TEST(Bigram, TokenizerHashDependsOnStringsAndBoundaries) {
  EXPECT_EQ(tokenizer_hash({"a", "b"}), tokenizer_hash({"a", "b"}));
  EXPECT_NE(tokenizer_hash({"a", "b"}), tokenizer_hash({"b", "a"}));
  EXPECT_NE(tokenizer_hash({"ab", ""}), tokenizer_hash({"a", "b"}));
}

TEST(Bigram, FileRoundTrip) {
  auto t = BigramTable::from_sequences({{0, 1, 2, 3, 1, 2}}, 5, 3, 777);
  const auto path = tmp_path("spw_bigram_rt.bin");
  t.save(path);
  auto u = BigramTable::load(path, 5, 777);
  ASSERT_EQ(u.top_k(), 3);
  for (int a = 0; a < 5; ++a)
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(u.next(a)[j].token, t.next(a)[j].token);
      EXPECT_EQ(u.next(a)[j].prob, t.next(a)[j].prob);
    }
}

TEST(Bigram, BadFilesRejectedWithClearErrors) {
  auto t = BigramTable::from_sequences({{0, 1, 2, 3, 1, 2}}, 5, 1, 777);
  const auto path = tmp_path("spw_bigram_bad.bin");
  t.save(path);
  const auto good = read_all(path);
  EXPECT_THROW_MSG(BigramTable::load(path, 6, 777), "vocab_size = 5, but the model has 6");
  EXPECT_THROW_MSG(BigramTable::load(path, 5, 778), "tokenizer hash");
  EXPECT_THROW_MSG(BigramTable::load(tmp_path("spw_no_such_file.bin")), "cannot open");
  auto b = good;
  b.resize(b.size() - 3);
  write_all(path, b);
  EXPECT_THROW_MSG(BigramTable::load(path), "truncated");
  b = good;
  b.resize(20);
  write_all(path, b);
  EXPECT_THROW_MSG(BigramTable::load(path), "truncated header");
  b = good;
  b.back() ^= 0x5A;
  write_all(path, b);
  EXPECT_THROW_MSG(BigramTable::load(path), "corrupted");
  b = good;
  b[0] = 'X';
  write_all(path, b);
  EXPECT_THROW_MSG(BigramTable::load(path), "not a Spillway bigram file");
  b = good;
  b[8] = 9;  // version
  write_all(path, b);
  EXPECT_THROW_MSG(BigramTable::load(path), "version 9");
  b = good;
  b.push_back(0);
  write_all(path, b);
  EXPECT_THROW_MSG(BigramTable::load(path), "trailing");
  write_all(path, {});
  EXPECT_THROW_MSG(BigramTable::load(path), "bad magic");
  // A well-formed file (checksum included) whose entries are out of range.
  for (BigramTable::Entry bad : {BigramTable::Entry{5, 0.5f}, BigramTable::Entry{-1, 0.5f},
                                 BigramTable::Entry{1, 1.5f}, BigramTable::Entry{1, -0.5f}}) {
    auto u = BigramTable::from_sequences({{0, 1, 2, 3, 1, 2}}, 5, 1, 777);
    u.next_mutable(4)[0] = bad;
    u.save(path);
    SCOPED_TRACE(std::to_string(bad.token) + " " + std::to_string(bad.prob));
    EXPECT_THROW_MSG(BigramTable::load(path), "corrupted entry");
  }
}

TEST(Bigram, FromModelMatchesDirectArgmaxAndReportsProgress) {
  spw::test::FakeModel m(37, 64);
  int calls = 0;
  int64_t last_done = 0;
  auto t = BigramTable::from_model(m, /*bos=*/3, 2, 9, /*batch=*/8,
                                   [&](int64_t done, int64_t total, double eta) {
                                     ++calls;
                                     EXPECT_EQ(total, 37);
                                     EXPECT_GT(done, last_done);
                                     EXPECT_GE(eta, 0.0);
                                     last_done = done;
                                   });
  EXPECT_EQ(calls, 5);  // ceil(37 / 8) forward calls
  EXPECT_EQ(m.forward_calls, 6);  // BOS once per slot, then one forward per batch
  std::vector<float> lg(37);
  for (int v = 0; v < 37; ++v) {
    std::vector<int32_t> ctx{3, v};
    m.logits_after(ctx, 2, lg.data());
    int best = 0;
    for (int j = 1; j < 37; ++j)
      if (lg[j] > lg[best]) best = j;
    EXPECT_EQ(t.most_likely(v), best) << v;
    EXPECT_GE(t.next(v)[0].prob, t.next(v)[1].prob);
  }
  // Without BOS: one-token context.
  auto t2 = BigramTable::from_model(m, -1, 1, 9, 100);
  std::vector<int32_t> ctx{5};
  m.logits_after(ctx, 1, lg.data());
  int best = 0;
  for (int j = 1; j < 37; ++j)
    if (lg[j] > lg[best]) best = j;
  EXPECT_EQ(t2.most_likely(5), best);
}

// Rows with fewer than top_k numbers (the rest NaN): the numbers first, then the lowest ids
// not yet listed, with the probabilities the softmax gives them (0 for NaN).
TEST(Bigram, FromModelFillsRowsShortOfNumbersWithTheLowestIds) {
  struct MostlyNaN : spw::test::FakeModel {
    using FakeModel::FakeModel;
    void forward(std::span<const spw::rt::SeqInput> batch, std::vector<float>& logits) override {
      FakeModel::forward(batch, logits);
      const int v = config().vocab_size;
      for (size_t r = 0; r < logits.size() / v; ++r)
        for (int j = 0; j < v; ++j)
          if (j != 4 && j != 1) logits[r * v + j] = std::numeric_limits<float>::quiet_NaN();
    }
  };
  MostlyNaN m(12, 64);
  const auto t = BigramTable::from_model(m, /*bos=*/-1, 4, 0, /*batch=*/5);
  for (int v = 0; v < 12; ++v) {
    const auto row = t.next(v);
    ASSERT_TRUE((row[0].token == 1 && row[1].token == 4) || (row[0].token == 4 && row[1].token == 1)) << v;
    EXPECT_EQ(row[2].token, 0) << v;
    EXPECT_EQ(row[3].token, 2) << v;
    EXPECT_NEAR(row[0].prob + row[1].prob, 1.0, 1e-6) << v;
    EXPECT_EQ(row[2].prob, 0.f) << v;
    EXPECT_EQ(row[3].prob, 0.f) << v;
  }
}

// from_model's top-k (one scan over the logits, no sort) against a full stable sort of the
// double-precision softmax: the same tokens in the same order (ties to the lower id) and the
// same probabilities to float rounding. Logits rounded to halves give rows full of ties,
// including across the k-th place.
TEST(Bigram, FromModelTopKEqualsAFullSortOfTheSoftmax) {
  struct Rounded : spw::test::FakeModel {
    using FakeModel::FakeModel;
    static float round(float x) { return std::round(x * 2) / 2; }
    void forward(std::span<const spw::rt::SeqInput> batch, std::vector<float>& logits) override {
      FakeModel::forward(batch, logits);
      for (auto& x : logits) x = round(x);
    }
  };
  const int vocab = 150, k = 7;
  Rounded m(vocab, 64);
  const auto t = BigramTable::from_model(m, /*bos=*/-1, k, 9, /*batch=*/32);
  std::vector<float> lg(vocab);
  int ties_at_k = 0;
  for (int v = 0; v < vocab; ++v) {
    std::vector<int32_t> ctx{v};
    m.logits_after(ctx, 1, lg.data());
    for (auto& x : lg) x = Rounded::round(x);
    double mx = -INFINITY, sum = 0;
    for (float x : lg) mx = std::max(mx, double(x));
    for (float x : lg) sum += std::exp(x - mx);
    std::vector<int> order(vocab);
    for (int i = 0; i < vocab; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return lg[a] > lg[b]; });
    ties_at_k += lg[order[k - 1]] == lg[order[k]];
    const auto row = t.next(v);
    ASSERT_EQ(row.size(), size_t(k));
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(row[j].token, order[j]) << "row " << v << " place " << j;
      EXPECT_NEAR(row[j].prob, std::exp(lg[order[j]] - mx) / sum, 1e-6) << "row " << v << " place " << j;
    }
  }
  EXPECT_GT(ties_at_k, 20) << "the rounding should put ties at the k-th place in many rows";
}

TEST(Bigram, DrafterChains) {
  auto t = std::make_shared<BigramTable>(BigramTable::from_sequences({{0, 1, 2, 3, 0}}, 4, 2, 0));
  BigramDrafter d(t);
  EXPECT_EQ(d.propose(std::vector<int32_t>{2}, 5).tokens, (std::vector<int32_t>{3, 0, 1, 2, 3}));
  auto tree = d.propose_tree(std::vector<int32_t>{2}, 4, 2);
  ASSERT_EQ(tree.size(), 2u);
  EXPECT_EQ(tree[0].tokens.size(), 4u);
  EXPECT_EQ(tree[1].tokens.size(), size_t(alternative_length(false)));
  BigramDrafter r(t, 0.f, /*recycle=*/true);
  EXPECT_EQ(r.propose_tree(std::vector<int32_t>{2}, 4, 2)[1].tokens.size(), size_t(alternative_length(true)));
  EXPECT_NE(tree[0].tokens[0], tree[1].tokens[0]);
}

TEST(Bigram, ConfidenceCutStopsTheChainBelowMinP) {
  // Hand-made table: 0 -> 1 (p 0.9), 1 -> 2 (p 0.5), 2 -> 3 (p 0.9), 3 -> 0 (p 0.2).
  auto t = std::make_shared<BigramTable>(4, 1, 0);
  const std::pair<int32_t, float> next[4] = {{1, 0.9f}, {2, 0.5f}, {3, 0.9f}, {0, 0.2f}};
  for (int32_t a = 0; a < 4; ++a) t->next_mutable(a)[0] = {next[a].first, next[a].second};
  const NextTokens plain(t);
  Draft d;
  bigram_fill(plain, 0, 6, d, 0.4f);  // products 0.9, 0.45, 0.405 (kept), then 0.081 < 0.4
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(d.sources, (std::vector<std::string>{"bigram", "bigram", "bigram"}));
  Draft all;
  bigram_fill(plain, 0, 6, all);  // no cut: exactly k
  EXPECT_EQ(all.tokens, (std::vector<int32_t>{1, 2, 3, 0, 1, 2}));
  Draft none;
  bigram_fill(plain, 3, 6, none, 0.5f);  // the first step is already below
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(BigramDrafter(t, 0.4f).propose(std::vector<int32_t>{0}, 6).tokens, d.tokens);
  // "Below" is strict: a chain exactly at min_p goes on.
  Draft at;
  bigram_fill(plain, 3, 1, at, 0.2f);
  EXPECT_EQ(at.tokens, (std::vector<int32_t>{0}));
  EXPECT_THROW_MSG(BigramDrafter(t, 1.5f), "min_p = 1.5: must be in [0, 1]");
}

// Recycling: an observed row is the target's top tokens (its probabilities), then the table's
// other candidates up to the table's width; the latest observation wins; clear() forgets;
// a plain NextTokens ignores observations; bad tokens are ignored, never stored.
TEST(Bigram, RecyclingReadsTheTargetsObservedPredictions) {
  auto t = std::make_shared<BigramTable>(6, 3, 0);
  for (int32_t a = 0; a < 6; ++a)
    for (int j = 0; j < 3; ++j) t->next_mutable(a)[j] = {(a + 1 + j) % 6, 0.5f / (j + 1)};
  NextTokens r(t, /*recycle=*/true);
  EXPECT_EQ(r.source(), std::string("recycle"));
  const spw::TopToken seen[2] = {{4, 0.7f}, {2, 0.2f}};  // after 1: the table says 2, 3, 4
  r.observe(1, seen);
  auto row = r.next(1);
  ASSERT_EQ(row.size(), 3u);
  EXPECT_EQ(row[0].token, 4);
  EXPECT_FLOAT_EQ(row[0].prob, 0.7f);
  EXPECT_EQ(row[1].token, 2);
  EXPECT_FLOAT_EQ(row[1].prob, 0.2f);
  EXPECT_EQ(row[2].token, 3);  // the table's first candidate not observed
  EXPECT_EQ(r.next(0)[0].token, 1);  // unobserved rows: the table
  Draft d;
  bigram_fill(r, 0, 4, d);  // 0 -> 1 (table) -> 4 (observed) -> 5 -> 0
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{1, 4, 5, 0}));
  EXPECT_EQ(d.sources[0], "recycle");
  const spw::TopToken later[1] = {{0, 0.9f}};
  r.observe(1, later);
  EXPECT_EQ(r.next(1)[0].token, 0);
  EXPECT_EQ(r.next(1)[1].token, 2);
  EXPECT_EQ(r.observed_rows(), 1u);
  const spw::TopToken bad[2] = {{-1, 0.5f}, {6, 0.5f}};
  r.observe(2, bad);   // no valid token: the table's row
  r.observe(-3, seen);  // outside the vocabulary: ignored
  r.observe(6, seen);
  EXPECT_EQ(r.next(2)[0].token, 3);
  EXPECT_EQ(r.observed_rows(), 2u);
  r.clear();
  EXPECT_EQ(r.observed_rows(), 0u);
  EXPECT_EQ(r.next(1)[0].token, 2);
  NextTokens plain(t);
  plain.observe(1, seen);
  EXPECT_EQ(plain.next(1)[0].token, 2);
  EXPECT_EQ(plain.observed_rows(), 0u);
  EXPECT_EQ(plain.source(), std::string("bigram"));
  // The drafters ask for the target's top tokens only when recycling, and forget on reset().
  BigramDrafter rd(t, 0.f, true);
  EXPECT_EQ(rd.name(), "recycle");
  EXPECT_EQ(rd.wants_target_topk(), kRecycleTopK);
  EXPECT_EQ(BigramDrafter(t).wants_target_topk(), 0);
  rd.observe_target(1, seen);
  EXPECT_EQ(rd.propose(std::vector<int32_t>{1}, 1).tokens, (std::vector<int32_t>{4}));
  rd.reset();
  EXPECT_EQ(rd.propose(std::vector<int32_t>{1}, 1).tokens, (std::vector<int32_t>{2}));
  EXPECT_THROW_MSG(NextTokens(nullptr), "NextTokens: no bigram table");
}


// Greedy equality: speculative output is identical to plain greedy decoding for every drafter
// and cascade configuration, chain and tree, several prompts, hitting max tokens, EOS and the
// context limit; batches with different acceptance; empty and over-long prompts.
#include <gtest/gtest.h>

#include <initializer_list>
#include <limits>
#include <random>
#include <utility>

#include "decode/speculative.h"
#include "tests/common/helpers.h"
#include "tests/decode/decode_test_env.h"

using namespace spw::decode;
using spw::test::FakeModel;

namespace {

const char* kSpecs[] = {
    "none",
    "maxgram",
    "maxgram:2-4",
    "bigram",
    "maxgram+bigram",
    "maxgram+bigram@0.2",
    "recycle",
    "maxgram+recycle",
    "maxgram+recycle@0.2",
    "model:draft",
    "self:2",
    "model:self:2",
    "vcascade(self:2,maxgram;lenience=2)",
    "vcascade(model:draft,self:2,maxgram+bigram;lenience=3,k=3)",
    "hcascade(self:2*2,maxgram*3)",
    "hcascade(vcascade(self:2,maxgram)*2,maxgram+bigram*3)",
    "hcascade(vcascade(self:2,maxgram+recycle)*2,recycle*3)",
};

std::vector<std::vector<int32_t>> prompts() {
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> p;
  p.push_back({7});
  p.push_back({1, 2, 3, 4, 1, 2, 3, 4, 1, 2});
  std::vector<int32_t> r;
  for (int i = 0; i < 40; ++i) r.push_back(rng() % spw::test::kVocab);
  p.push_back(r);
  // Near the context limit.
  std::vector<int32_t> longp;
  for (int i = 0; i < spw::test::kMaxTokens - 9; ++i) longp.push_back((i * 7) % spw::test::kVocab);
  p.push_back(longp);
  return p;
}

FakeModel make_target() { return FakeModel(spw::test::kVocab, spw::test::kMaxTokens, 1, 4.f, 0.5f); }

}  // namespace

class GreedyEquality : public ::testing::TestWithParam<const char*> {};

TEST_P(GreedyEquality, ChainAndTreeMatchPlainGreedy) {
  FakeModel target = make_target();
  auto env = spw::test::make_env();
  auto factory = make_drafter_factory(GetParam(), env);
  SpeculativeDecoder dec(target, factory);
  int64_t accepted = 0;
  for (int width : {1, 3}) {
    for (int k : {1, 4, 7}) {
      for (const auto& prompt : prompts())
      for (const auto& [length, grow] : std::initializer_list<std::pair<DraftLength, bool>>{
               {DraftLength::fixed, false}, {DraftLength::adaptive, false}, {DraftLength::cost, false},
               {DraftLength::cost, true}}) {
        GenerateParams gp;
        gp.max_new_tokens = 30;
        gp.k = k;
        gp.tree_width = width;
        gp.draft_length = length;
        gp.grow_tree = grow;  // (trees of drafters with a table grow from it)
        // by cost: a steep curve (CPU-like: short drafts, small trees) for k < 7, a flat one
        // (long drafts, whole trees) for 7
        if (length == DraftLength::cost) gp.pass_costs = k < 7 ? std::vector<double>{1, 1.3, 1.7, 2.2} : std::vector<double>{1};
        std::vector<int32_t> streamed;
        gp.on_token = [&](int i, int32_t t) {
          EXPECT_EQ(i, 0);
          streamed.push_back(t);
        };
        auto g = dec.generate(prompt, gp);
        const auto ref = target.greedy_reference(prompt, 30);
        ASSERT_EQ(g.tokens, ref) << GetParam() << " k=" << k << " width=" << width
                                 << " length=" << static_cast<int>(length) << " grow=" << grow
                                 << " prompt size " << prompt.size();
        EXPECT_EQ(streamed, g.tokens);
        const bool at_limit = prompt.size() + ref.size() >= static_cast<size_t>(spw::test::kMaxTokens);
        EXPECT_EQ(g.stop, at_limit ? StopReason::context_limit : StopReason::max_tokens);
        EXPECT_EQ(g.stats.generated, static_cast<int64_t>(g.tokens.size()));
        EXPECT_LE(g.stats.target_passes, g.stats.generated);
        int64_t passes = 0, carried = 0;  // passes_of: how many tokens each pass carried
        for (size_t n = 0; n < g.stats.passes_of.size(); ++n) passes += g.stats.passes_of[n], carried += n * g.stats.passes_of[n];
        EXPECT_EQ(passes, g.stats.target_passes);
        EXPECT_EQ(carried, g.stats.target_passes + g.stats.drafted);
        accepted += g.stats.accepted;
        if (std::string(GetParam()) == "none") {
          EXPECT_EQ(g.stats.target_passes, g.stats.generated);
        }
      }
    }
  }
  if (std::string(GetParam()) != "none") {
    EXPECT_GT(accepted, 0) << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(AllDrafters, GreedyEquality, ::testing::ValuesIn(kSpecs));

TEST(GreedyDecoding, BatchWithDifferentAcceptanceMatchesEachSequence) {
  FakeModel target = make_target();
  auto env = spw::test::make_env();
  for (const char* spec : {"none", "maxgram", "vcascade(self:2,maxgram;lenience=2)"}) {
    for (int width : {1, 2}) {
      SpeculativeDecoder dec(target, make_drafter_factory(spec, env));
      GenerateParams gp;
      gp.max_new_tokens = 25;
      gp.k = 5;
      gp.tree_width = width;
      std::vector<int> streamed(4, 0);
      gp.on_token = [&](int i, int32_t) { ++streamed.at(i); };
      const auto ps = prompts();
      const int64_t calls_before = target.forward_calls;
      auto gens = dec.generate_batch(ps, gp);
      ASSERT_EQ(gens.size(), ps.size());
      int64_t max_passes = 0;
      for (size_t i = 0; i < ps.size(); ++i) {
        EXPECT_EQ(gens[i].tokens, target.greedy_reference(ps[i], 25)) << spec << " seq " << i;
        EXPECT_EQ(streamed[i], static_cast<int>(gens[i].tokens.size()));
        max_passes = std::max(max_passes, gens[i].stats.target_passes);
      }
      // One prefill forward plus one forward per step for the whole batch.
      EXPECT_EQ(target.forward_calls - calls_before, 1 + max_passes) << spec;
    }
  }
}

namespace {
// Proposes `k` copies of a fixed token and records the k it was asked for.
struct RecordingDrafter : Drafter {
  int32_t token;
  std::vector<int>* asked;
  RecordingDrafter(int32_t t, std::vector<int>* a) : token(t), asked(a) {}
  std::string name() const override { return "recording"; }
  void propose_into(std::span<const int32_t> c, int k, Draft& out) override { out = draft(c, k); }
  Draft draft(std::span<const int32_t>, int k) {
    asked->push_back(k);
    return Draft{std::vector<int32_t>(k, token), {}, {}, {}};
  }
};
}  // namespace

TEST(GreedyDecoding, AdaptiveDraftLengthShrinksOnRejectionAndGrowsOnAcceptance) {
  FakeModel target = make_target();
  const std::vector<int32_t> prompt{1, 2, 3};
  const auto ref = target.greedy_reference(prompt, 12);
  // A token the target never emits next is always rejected: k goes 6, 5, 4, 3, 2, 1, 1, ...
  int32_t wrong = 0;
  while (std::find(ref.begin(), ref.end(), wrong) != ref.end()) ++wrong;
  std::vector<int> asked;
  SpeculativeDecoder dec(target, [&] { return std::make_unique<RecordingDrafter>(wrong, &asked); });
  GenerateParams gp;
  gp.max_new_tokens = 12;
  gp.k = 6;
  gp.draft_length = DraftLength::adaptive;
  auto g = dec.generate(prompt, gp);
  EXPECT_EQ(g.tokens, ref);
  ASSERT_GE(asked.size(), 8u);
  EXPECT_EQ(std::vector<int>(asked.begin(), asked.begin() + 8), (std::vector<int>{6, 5, 4, 3, 2, 1, 1, 1}));
  // Token trees adapt their depth the same way.
  asked.clear();
  gp.tree_width = 2;
  EXPECT_EQ(dec.generate(prompt, gp).tokens, ref);
  ASSERT_GE(asked.size(), 8u);
  EXPECT_EQ(std::vector<int>(asked.begin(), asked.begin() + 8), (std::vector<int>{6, 5, 4, 3, 2, 1, 1, 1}));
  gp.tree_width = 1;
  // Fixed length keeps asking for 6 (until max_new_tokens limits the draft).
  asked.clear();
  gp.draft_length = DraftLength::fixed;
  EXPECT_EQ(dec.generate(prompt, gp).tokens, ref);
  EXPECT_EQ(asked.front(), 6);
  EXPECT_EQ(asked[3], 6);
  // An oracle drafter (proposes the target's own continuation) stays at k: each step accepts all.
  struct Oracle : Drafter {
    std::vector<int32_t> full;  // prompt + reference continuation
    std::vector<int>* asked;
    std::string name() const override { return "oracle"; }
    void propose_into(std::span<const int32_t> c, int k, Draft& out) override { out = draft(c, k); }
    Draft draft(std::span<const int32_t> context, int k) {
      asked->push_back(k);
      Draft d;
      for (size_t i = context.size(); i < full.size() && d.tokens.size() < static_cast<size_t>(k); ++i)
        d.tokens.push_back(full[i]);
      return d;
    }
  };
  const auto long_ref = target.greedy_reference(prompt, 40);
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), long_ref.begin(), long_ref.end());
  asked.clear();
  SpeculativeDecoder oracle(target, [&] {
    auto d = std::make_unique<Oracle>();
    d->full = full;
    d->asked = &asked;
    return d;
  });
  gp.draft_length = DraftLength::adaptive;
  gp.max_new_tokens = 40;
  auto go = oracle.generate(prompt, gp);
  EXPECT_EQ(go.tokens, long_ref);
  ASSERT_GE(asked.size(), 4u);
  EXPECT_EQ(std::vector<int>(asked.begin(), asked.begin() + 4), (std::vector<int>{6, 6, 6, 6}));
  EXPECT_EQ(go.stats.accepted, go.stats.drafted);
}

// A draft the target accepts past an EOS: only the tokens up to the EOS are emitted, and only
// they count as accepted (chain and tree), so acceptance metrics match what was generated.
TEST(GreedyDecoding, AcceptedTokensStopAtEos) {
  FakeModel target = make_target();
  const std::vector<int32_t> prompt{1, 2, 3};
  const auto ref = target.greedy_reference(prompt, 12);
  const int32_t eos = ref[2];
  ASSERT_TRUE(ref[0] != eos && ref[1] != eos);
  struct Oracle : Drafter {
    std::vector<int32_t> cont;
    std::string name() const override { return "oracle"; }
    void propose_into(std::span<const int32_t> c, int k, Draft& out) override { out = draft(c, k); }
    Draft draft(std::span<const int32_t>, int k) {
      Draft d;
      d.tokens.assign(cont.begin(), cont.begin() + std::min<size_t>(k, cont.size()));
      return d;
    }
  };
  for (int width : {1, 2}) {
    SpeculativeDecoder dec(target, [&] {
      auto d = std::make_unique<Oracle>();
      d->cont = ref;
      return d;
    });
    GenerateParams gp;
    gp.max_new_tokens = 12;
    gp.k = 6;
    gp.tree_width = width;
    gp.eos_tokens = {eos};
    const auto g = dec.generate(prompt, gp);
    EXPECT_EQ(g.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + 3)) << "width " << width;
    EXPECT_EQ(g.stop, StopReason::eos);
    EXPECT_EQ(g.stats.target_passes, 1);
    EXPECT_EQ(g.stats.drafted, 6);
    EXPECT_EQ(g.stats.accepted, 3) << "width " << width;  // not 6: three of them follow the EOS
    EXPECT_EQ(g.stats.by_source.at("oracle").second, 3);
  }
}

TEST(GreedyDecoding, EosStopsAndIsEmitted) {
  FakeModel target = make_target();
  std::vector<int32_t> prompt{1, 2, 3};
  const auto ref = target.greedy_reference(prompt, 40);
  const int32_t eos = ref[6];
  size_t first = 0;
  while (ref[first] != eos) ++first;
  SpeculativeDecoder dec(target, make_drafter_factory("maxgram", spw::test::make_env()));
  GenerateParams gp;
  gp.max_new_tokens = 40;
  gp.k = 6;
  gp.eos_tokens = {eos};
  auto g = dec.generate(prompt, gp);
  EXPECT_EQ(g.stop, StopReason::eos);
  EXPECT_EQ(g.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + first + 1));
}

TEST(GreedyDecoding, EmptyAndOverlongPromptsDoNotCrash) {
  FakeModel target = make_target();
  SpeculativeDecoder dec(target, make_drafter_factory("maxgram+bigram", spw::test::make_env()));
  GenerateParams gp;
  gp.max_new_tokens = 10;
  auto g = dec.generate({}, gp);
  EXPECT_EQ(g.stop, StopReason::empty_prompt);
  EXPECT_TRUE(g.tokens.empty());
  gp.bos = 3;
  g = dec.generate({}, gp);
  EXPECT_EQ(g.tokens, target.greedy_reference({3}, 10));
  gp.bos = 0;  // token 0 is a token like any other
  g = dec.generate({}, gp);
  EXPECT_EQ(g.tokens, target.greedy_reference({0}, 10));
  std::vector<int32_t> huge(spw::test::kMaxTokens + 5, 1);
  g = dec.generate(huge, gp);
  EXPECT_EQ(g.stop, StopReason::context_limit);
  EXPECT_TRUE(g.tokens.empty());
  std::vector<int32_t> exact(spw::test::kMaxTokens - 1, 2);
  g = dec.generate(exact, gp);
  EXPECT_EQ(g.stop, StopReason::context_limit);
  EXPECT_EQ(g.tokens.size(), 1u);
  gp.max_new_tokens = 0;
  g = dec.generate(std::vector<int32_t>{1, 2}, gp);
  EXPECT_TRUE(g.tokens.empty());
  EXPECT_EQ(g.stop, StopReason::max_tokens);
}

TEST(GreedyDecoding, BadArgumentsGiveClearErrors) {
  FakeModel target = make_target();
  SpeculativeDecoder dec(target);
  GenerateParams gp;
  gp.max_new_tokens = 3;
  gp.k = 65;
  EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1}, gp), "k = 65");
  gp.k = -1;
  EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1}, gp), "k = -1: must be in [0, 64]");
  SpeculativeDecoder drafting(target, make_drafter_factory("maxgram", spw::test::make_env()));
  for (int k : {0, 64}) {  // both ends of the range
    gp.k = k;
    EXPECT_EQ(drafting.generate(std::vector<int32_t>{1, 2, 1}, gp).tokens, target.greedy_reference({1, 2, 1}, 3)) << k;
  }
  gp.k = 4;
  gp.tree_width = 17;
  EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1}, gp), "tree_width = 17");
  gp.tree_width = 0;
  EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1}, gp), "tree_width = 0: must be in [1, 16]");
  gp.tree_width = 16;
  EXPECT_EQ(drafting.generate(std::vector<int32_t>{1, 2, 1}, gp).tokens, target.greedy_reference({1, 2, 1}, 3));
  gp.tree_width = 1;
  EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1, 999}, gp), "token 999 outside the vocabulary");
  for (float t : {-1.f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    gp.sampling.temperature = t;
    SCOPED_TRACE(t);
    EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1}, gp), "must be a finite number >= 0 (0: greedy)");
  }
  gp.sampling.temperature = 0.f;  // greedy: top_p is still checked
  gp.sampling.top_p = 0.f;
  EXPECT_THROW_MSG(dec.generate(std::vector<int32_t>{1}, gp), "sampling.top_p = 0: must be in (0, 1]");
}

TEST(GreedyDecoding, MetricsAndSwi) {
  FakeModel target = make_target();
  SpeculativeDecoder dec(target, make_drafter_factory("vcascade(self:2,maxgram+bigram;lenience=2)",
                                                      spw::test::make_env()));
  GenerateParams gp;
  gp.max_new_tokens = 40;
  gp.k = 4;
  auto g = dec.generate(std::vector<int32_t>{4, 5, 6}, gp);
  const auto& s = g.stats;
  EXPECT_EQ(s.generated, 40);
  EXPECT_EQ(s.generated, s.target_passes + s.accepted);  // each pass emits accepted + 1
  ASSERT_FALSE(s.drafter_costs.empty());
  EXPECT_GT(s.drafter_costs[0].forwards, 0);
  const double expected = 40.0 * s.target_cost /
                          (s.target_passes * s.target_cost +
                           s.drafter_costs[0].forwards * s.drafter_costs[0].cost_per_forward);
  EXPECT_NEAR(s.swi(), expected, 1e-9);
  EXPECT_NEAR(standardized_walltime_improvement(10, 4, 100, {{"d", 10, 5}, {"maxgram", 99, 0}}),
              1000.0 / 450.0, 1e-12);
  int64_t by_pos = 0;
  for (auto a : s.accepted_at) by_pos += a;
  EXPECT_EQ(by_pos, s.accepted);
  int64_t by_src = 0;
  for (auto& [k, v] : s.by_source) by_src += v.second;
  EXPECT_EQ(by_src, s.accepted);
  EXPECT_FALSE(s.summary().empty());
}

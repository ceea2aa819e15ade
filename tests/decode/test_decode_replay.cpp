// ReplayModel: greedy speculative decoding against recorded greedy outputs takes exactly the
// steps it takes against the real target (same tokens, passes, accepted and drafted counts,
// per source), for every drafter kind, chain and tree, fixed and adaptive lengths, EOS and the
// context limit, and batches; misuse is reported by name, with the backends' messages
// (runtime/forward_passes.h).
#include <gtest/gtest.h>

#include <random>

#include "decode/replay_model.h"
#include "decode/speculative.h"
#include "tests/common/helpers.h"
#include "tests/decode/decode_test_env.h"

using namespace spw::decode;
using spw::test::FakeModel;

namespace {

FakeModel make_target() { return FakeModel(spw::test::kVocab, spw::test::kMaxTokens, 1, 4.f, 0.5f); }

std::vector<std::vector<int32_t>> prompts() {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> p{{7}, {1, 2, 3, 4, 1, 2, 3, 4, 1, 2}};
  std::vector<int32_t> r;
  for (int i = 0; i < 40; ++i) r.push_back(rng() % spw::test::kVocab);
  p.push_back(r);
  std::vector<int32_t> near_limit;  // generation stops at the context limit
  for (int i = 0; i < spw::test::kMaxTokens - 9; ++i) near_limit.push_back((i * 7) % spw::test::kVocab);
  p.push_back(near_limit);
  return p;
}

// prompt + the target's greedy output: what `spillway generate --json` records.
std::vector<std::vector<int32_t>> record(FakeModel& target, const std::vector<std::vector<int32_t>>& ps,
                                         const GenerateParams& gp) {
  SpeculativeDecoder ar(target);
  std::vector<std::vector<int32_t>> refs;
  for (const auto& p : ps) {
    auto g = ar.generate(p, gp);
    refs.push_back(p);
    refs.back().insert(refs.back().end(), g.tokens.begin(), g.tokens.end());
  }
  return refs;
}

ReplayModel make_replay(const FakeModel& target, std::vector<std::vector<int32_t>> refs,
                        std::vector<int32_t> eos = {}) {
  return ReplayModel(target.config(), std::move(refs), target.max_tokens(), std::move(eos));
}

void expect_same_steps(const Generation& real, const Generation& replay, const std::string& what) {
  EXPECT_EQ(replay.tokens, real.tokens) << what;
  EXPECT_EQ(replay.stop, real.stop) << what;
  EXPECT_EQ(replay.stats.target_passes, real.stats.target_passes) << what;
  EXPECT_EQ(replay.stats.accepted, real.stats.accepted) << what;
  EXPECT_EQ(replay.stats.drafted, real.stats.drafted) << what;
  EXPECT_EQ(replay.stats.accepted_at, real.stats.accepted_at) << what;
  EXPECT_EQ(replay.stats.by_source, real.stats.by_source) << what;
}

const char* kSpecs[] = {"maxgram", "maxgram+bigram", "bigram", "self:2", "vcascade(self:2,maxgram;lenience=2)",
                        "hcascade(model:draft*2,maxgram+bigram*3)"};

}  // namespace

class ReplayEquality : public ::testing::TestWithParam<const char*> {};

TEST_P(ReplayEquality, SameStepsAsTheRealTarget) {
  FakeModel target = make_target();
  auto env = spw::test::make_env();
  const auto ps = prompts();
  GenerateParams rec;
  rec.max_new_tokens = 30;
  ReplayModel replay = make_replay(target, record(target, ps, rec));
  SpeculativeDecoder real_dec(target, make_drafter_factory(GetParam(), env));
  SpeculativeDecoder replay_dec(replay, make_drafter_factory(GetParam(), env));
  int64_t accepted = 0;
  for (int width : {1, 4})
    for (int k : {1, 5})
      for (DraftLength length : {DraftLength::fixed, DraftLength::adaptive, DraftLength::cost})
        for (size_t i = 0; i < ps.size(); ++i) {
          GenerateParams gp = rec;
          gp.k = k;
          gp.tree_width = width;
          gp.draft_length = length;
          if (length == DraftLength::cost) gp.pass_costs = {1, 1.2, 1.5};  // the same curve on both sides
          const auto a = real_dec.generate(ps[i], gp);
          const auto b = replay_dec.generate(ps[i], gp);
          expect_same_steps(a, b, fmt::format("{} width {} k {} length {} prompt {}", GetParam(), width, k,
                                              static_cast<int>(length), i));
          accepted += b.stats.accepted;
        }
  EXPECT_GT(accepted, 0) << "the drafter never hit: the comparison would be weak";
  EXPECT_GT(replay.rows(), 0);
}

INSTANTIATE_TEST_SUITE_P(Drafters, ReplayEquality, ::testing::ValuesIn(kSpecs));

TEST(ReplayModel, BatchAndEndOfGeneration) {
  FakeModel target = make_target();
  auto env = spw::test::make_env();
  const auto ps = prompts();
  GenerateParams gp;
  gp.max_new_tokens = 30;
  gp.k = 4;
  gp.tree_width = 3;
  // An EOS that the greedy outputs of some prompts reach before 30 tokens.
  const auto refs30 = record(target, ps, gp);
  const int32_t eos = refs30[1][ps[1].size() + 6];
  gp.eos_tokens = {eos};
  const auto refs = record(target, ps, gp);
  ReplayModel replay = make_replay(target, refs, {eos});
  auto factory = make_drafter_factory("maxgram+bigram", env);
  const auto real = SpeculativeDecoder(target, factory).generate_batch(ps, gp);
  const auto rep = SpeculativeDecoder(replay, factory).generate_batch(ps, gp);
  ASSERT_EQ(rep.size(), real.size());
  bool saw_eos = false;
  for (size_t i = 0; i < ps.size(); ++i) {
    expect_same_steps(real[i], rep[i], fmt::format("batch sequence {}", i));
    saw_eos |= rep[i].stop == StopReason::eos;
  }
  EXPECT_TRUE(saw_eos);
}

TEST(ReplayModel, RowsOffTheReferenceAndCacheBookkeeping) {
  spw::rt::ModelConfig cfg;
  cfg.vocab_size = 10;
  ReplayModel m(cfg, {{1, 2, 3, 4, 5, 6}}, 16);
  const int s = m.create_sequence();
  const std::vector<int32_t> prompt{1, 2};
  std::vector<float> logits;
  m.forward(std::vector<spw::rt::SeqInput>{{s, prompt, {}, 0}}, logits);
  EXPECT_TRUE(logits.empty());
  // Tree under the pending token 3: children 4 (on the reference) and 9 (off); 5 under 4.
  const std::vector<int32_t> tokens{3, 4, 9, 5, 7};
  const std::vector<int32_t> parents{-1, 0, 0, 1, 2};
  std::vector<int32_t> out;
  m.forward_argmax(std::vector<spw::rt::SeqInput>{{s, tokens, parents}}, out);
  EXPECT_EQ(out, (std::vector<int32_t>{4, 5, ReplayModel::kOffReference, 6, ReplayModel::kOffReference}));
  EXPECT_EQ(m.cached_tokens(s), 7);
  const std::vector<int32_t> keep{0, 1, 3};  // 3, 4, 5 after the prompt
  m.keep_tokens(s, 2, keep);
  EXPECT_EQ(m.cached_tokens(s), 5);
  // The cache is 1 2 3 4 5: the next pending token 6 is on the reference, at its last token.
  EXPECT_THROW_MSG(m.forward_argmax(std::vector<spw::rt::SeqInput>{{s, std::vector<int32_t>{6}, {}}}, out),
                   "reached the end of its reference (6 tokens)");
  m.rollback(s, 3);
  EXPECT_EQ(m.cached_tokens(s), 3);
  m.forward_argmax(std::vector<spw::rt::SeqInput>{{s, std::vector<int32_t>{8}, {}}}, out);
  EXPECT_EQ(out, std::vector<int32_t>{ReplayModel::kOffReference});  // 1 2 3 8: off the reference
  EXPECT_EQ(m.forwards(), 3);  // the call that threw is not counted
}

TEST(ReplayModel, MisuseIsNamed) {
  spw::rt::ModelConfig cfg;
  cfg.vocab_size = 10;
  EXPECT_THROW_MSG(ReplayModel(cfg, {{1, 12}}, 16), "reference 0 has token 12 outside the vocabulary (10)");
  EXPECT_THROW_MSG(ReplayModel(spw::rt::ModelConfig{}, {}, 16), "config.vocab_size = 0");
  ReplayModel m(cfg, {{1, 2, 3, 4}}, 6);
  const int s = m.create_sequence();
  std::vector<float> logits;
  std::vector<int32_t> out;
  const std::vector<int32_t> two{1, 2};
  EXPECT_THROW_MSG(m.forward(std::vector<spw::rt::SeqInput>{{s, two, {}, -1}}, logits),
                   "answers greedy tokens only");
  EXPECT_THROW_MSG(m.forward_argmax(std::vector<spw::rt::SeqInput>{{s, std::vector<int32_t>{5, 1}, {}}}, out),
                   "no reference begins with its 1 tokens");
  EXPECT_THROW_MSG(m.forward_argmax(std::vector<spw::rt::SeqInput>{{s + 1, two, {}}}, out), "seq_id = 1");
  const std::vector<int32_t> bad_parents{-1, 1};
  EXPECT_THROW_MSG(m.forward_argmax(std::vector<spw::rt::SeqInput>{{s, two, bad_parents}}, out),
                   "batch[0].parents[1] = 1: must be -1 or the index of an earlier token");
  const std::vector<int32_t> seven(7, 1);
  EXPECT_THROW_MSG(m.forward_argmax(std::vector<spw::rt::SeqInput>{{s, seven, {}}}, out), "sequence 0 holds 0 tokens; 7 more exceed the context limit 6");
  EXPECT_THROW_MSG(m.rollback(s, 3), "Model::rollback: new_len = 3: must be in 0..0 (cached tokens)");
  EXPECT_THROW_MSG(m.keep_tokens(s, 1, std::vector<int32_t>{}), "Model::keep_tokens: base = 1: must be in 0..0");
}

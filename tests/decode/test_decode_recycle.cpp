// What the decoder shows drafters that learn from the target (Drafter::wants_target_topk,
// observe_target): the target's top tokens of every prompt row at the prefill, then of every row
// of every step, the rejected rows first and the kept ones (root, accepted path) last; each
// observation checked exactly against the target's own logits for that row's context.
#include <gtest/gtest.h>

#include <random>

#include "decode/maxgram.h"
#include "decode/replay_model.h"
#include "decode/speculative.h"
#include "tests/common/helpers.h"
#include "tests/decode/decode_test_env.h"

using namespace spw::decode;
using spw::test::FakeModel;

namespace {

struct Observation {
  int32_t token;
  std::vector<spw::TopToken> top;
};

// Every step (context and draft) and the observations that follow it (index 0: the prefill's).
struct Log {
  struct Step {
    std::vector<int32_t> context, draft;  // draft: chains only
  };
  std::vector<Step> steps;
  std::vector<std::vector<Observation>> seen{1};  // [0]: the prefill; [s + 1]: after step s
};

// Max-Gram's drafts, logged (the log outlives the drafter, which the decoder frees).
class Recorder final : public Drafter {
 public:
  Recorder(Log& log, int k) : log_(log), k_(k) {}
  std::string name() const override { return "recorder"; }
  void propose_into(std::span<const int32_t> c, int k, Draft& out) override { out = draft(c, k); }
  Draft draft(std::span<const int32_t> context, int k) {
    Draft d = mg_.propose(context, k);
    log_.steps.push_back({std::vector<int32_t>(context.begin(), context.end()), d.tokens});
    log_.seen.emplace_back();
    return d;
  }
  void propose_tree_into(std::span<const int32_t> c, int k, int width, DraftSet& out) override {
    out.clear();
    for (auto& d : tree(c, k, width)) out.add() = std::move(d);
  }
  std::vector<Draft> tree(std::span<const int32_t> context, int k, int width) {
    auto drafts = mg_.propose_tree(context, k, width);
    log_.steps.push_back({std::vector<int32_t>(context.begin(), context.end()), {}});
    log_.seen.emplace_back();
    return drafts;
  }
  int wants_target_topk() const override { return k_; }
  void observe_target(int32_t token, std::span<const spw::TopToken> next) override {
    log_.seen.back().push_back({token, std::vector<spw::TopToken>(next.begin(), next.end())});
  }

 private:
  Log& log_;
  int k_;
  MaxGramDrafter mg_;
};

// The target's top k after `visible` (row at position pos), as the decoder must report it.
std::vector<spw::TopToken> expected_top(const FakeModel& m, const std::vector<int32_t>& visible, int k) {
  std::vector<float> lg(m.config().vocab_size);
  m.logits_after(visible, static_cast<int>(visible.size()), lg.data());
  std::vector<spw::TopToken> top(k);
  spw::top_tokens(lg.data(), static_cast<int>(lg.size()), k, top.data());
  return top;
}

void expect_same(const std::vector<spw::TopToken>& got, const std::vector<spw::TopToken>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].token, want[i].token) << what << " rank " << i;
    EXPECT_FLOAT_EQ(got[i].prob, want[i].prob) << what << " rank " << i;
  }
}

}  // namespace

TEST(RecyclingObservations, EveryRowOfThePrefillAndOfEachStepRejectedFirst) {
  for (bool sampled : {false, true})
    for (int width : {1, 3}) {
      // sampled: a sharp target (scale 16) that mostly follows its greedy loop, so drafts get accepted
      FakeModel target(spw::test::kVocab, spw::test::kMaxTokens, 1, sampled ? 16.f : 4.f, sampled ? 0.f : 0.5f);
      Log log;
      const Log* rec = &log;
      SpeculativeDecoder dec(target, [&] { return std::make_unique<Recorder>(log, 3); });
      const std::vector<int32_t> prompt{1, 2, 3, 4, 1, 2, 3, 4, 1, 2};
      GenerateParams gp;
      gp.max_new_tokens = 40;
      gp.k = 4;
      gp.tree_width = width;
      if (sampled) gp.sampling.temperature = 0.1f;
      const Generation g = dec.generate(prompt, gp);
      const std::string what = std::string(sampled ? "sampled" : "greedy") + " width " + std::to_string(width);
      std::vector<int32_t> text = prompt;
      text.insert(text.end(), g.tokens.begin(), g.tokens.end());
      if (!sampled) {
        EXPECT_EQ(g.tokens, target.greedy_reference(prompt, 40)) << what;
      }

      // Prefill: the prompt's rows but the pending last token's, in order.
      ASSERT_EQ(rec->seen.size(), rec->steps.size() + 1) << what;
      ASSERT_EQ(rec->seen[0].size(), prompt.size() - 1) << what;
      for (size_t i = 0; i + 1 < prompt.size(); ++i) {
        EXPECT_EQ(rec->seen[0][i].token, prompt[i]) << what;
        expect_same(rec->seen[0][i].top,
                    expected_top(target, std::vector<int32_t>(prompt.begin(), prompt.begin() + i + 1), 3),
                    what + " prefill row " + std::to_string(i));
      }
      // Steps: the kept rows last (pending + accepted tokens, in text order).
      int64_t rejected_rows = 0;
      for (size_t s = 0; s < rec->steps.size(); ++s) {
        const auto& step = rec->steps[s];
        const auto& obs = rec->seen[s + 1];
        const size_t L = step.context.size();
        const size_t next_len = s + 1 < rec->steps.size() ? rec->steps[s + 1].context.size() : text.size();
        const size_t kept = next_len - L;  // accepted + 1 (the bonus token has no row yet)
        ASSERT_GE(obs.size(), kept) << what << " step " << s;
        const size_t first_kept = obs.size() - kept;
        for (size_t j = 0; j < kept; ++j) {
          const Observation& o = obs[first_kept + j];
          EXPECT_EQ(o.token, text[L - 1 + j]) << what << " step " << s;
          expect_same(o.top, expected_top(target, std::vector<int32_t>(text.begin(), text.begin() + L + j), 3),
                      what + " step " + std::to_string(s) + " kept row " + std::to_string(j));
          if (!sampled && L + j < text.size()) {
            EXPECT_EQ(o.top[0].token, text[L + j]) << what << " step " << s;
          }
        }
        if (width == 1) {  // chains: every draft row observed, the rejected ones first
          // (after the last step, passes without a draft near max_new_tokens add kept rows)
          if (s + 1 < rec->steps.size()) {
            ASSERT_EQ(obs.size(), step.draft.size() + 1) << what << " step " << s;
          }
          ASSERT_LE(first_kept, step.draft.size()) << what << " step " << s;
          const size_t accepted = step.draft.size() - first_kept;
          for (size_t r = accepted + 1; r <= step.draft.size(); ++r) {
            const Observation& o = obs[r - accepted - 1];
            EXPECT_EQ(o.token, step.draft[r - 1]) << what << " step " << s;
            std::vector<int32_t> visible = step.context;
            visible.insert(visible.end(), step.draft.begin(), step.draft.begin() + r);
            expect_same(o.top, expected_top(target, visible, 3), what + " step " + std::to_string(s) + " rejected row");
          }
        }
        rejected_rows += static_cast<int64_t>(first_kept);
      }
      EXPECT_GT(rejected_rows, 0) << what << ": no draft token was rejected: the order check says nothing";
      EXPECT_GT(g.stats.accepted, 0) << what << ": no draft token was accepted: the path check says little";
    }
}

// A drafter that wants more than the vocabulary has is served min(vocab, kMaxTopK) tokens;
// a replayed target, which records greedy tokens only, refuses with a message naming why.
TEST(RecyclingObservations, TopKIsCappedAndAReplayedTargetRefuses) {
  FakeModel target(5, 64);
  Log log;
  const Log* rec = &log;
  SpeculativeDecoder dec(target, [&] { return std::make_unique<Recorder>(log, 64); });
  GenerateParams gp;
  gp.max_new_tokens = 6;
  gp.k = 2;
  dec.generate(std::vector<int32_t>{1, 2, 3}, gp);
  ASSERT_FALSE(rec->seen[0].empty());
  EXPECT_EQ(rec->seen[0][0].top.size(), 5u);

  ReplayModel replay(target.config(), {{1, 2, 3, 4}}, 64);
  const int seq = replay.create_sequence();
  const std::vector<int32_t> tokens{1, 2};
  std::vector<spw::TopToken> top;
  EXPECT_THROW_MSG(replay.forward_topk(std::vector<spw::rt::SeqInput>{{seq, tokens, {}, -1}}, 2, top),
                   "ReplayModel::forward_topk: a replayed target knows only its recorded greedy tokens");
}

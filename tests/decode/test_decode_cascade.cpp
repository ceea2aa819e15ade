// Cascades and config strings: lenience semantics (unit rule and in a vertical cascade),
// lenience 1 reproduces the reviewer's own greedy draft, horizontal position split,
// config parsing (names, every error names the bad token), model drafter vocab check.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "decode/cascade.h"
#include "decode/drafter_config.h"
#include "decode/maxgram.h"
#include "decode/model_drafter.h"
#include "tests/common/helpers.h"
#include "tests/decode/decode_test_env.h"

using namespace spw::decode;
using spw::test::FakeModel;

namespace {
// Proposes fixed tokens (and optionally a fixed q for each).
class ScriptDrafter : public Drafter {
 public:
  ScriptDrafter(std::vector<int32_t> t, float q = -1.f, int vocab = 0) : t_(std::move(t)), q_(q), v_(vocab) {}
  std::string name() const override { return "script"; }
  void propose_into(std::span<const int32_t> c, int k, Draft& out) override { out = draft(c, k); }
  Draft draft(std::span<const int32_t>, int k) {
    Draft d;
    for (int i = 0; i < k && i < static_cast<int>(t_.size()); ++i) {
      d.tokens.push_back(t_[i]);
      if (q_ >= 0) {  // row i: q_ on its token, the rest spread evenly
        d.probs.insert(d.probs.end(), static_cast<size_t>(v_), (1.f - q_) / (v_ - 1));
        d.probs[static_cast<size_t>(i) * v_ + t_[i]] = q_;
      }
    }
    return d;
  }

 private:
  std::vector<int32_t> t_;
  float q_;
  int v_;
};
}  // namespace

TEST(Lenience, RuleOnHandMadeDistribution) {
  std::vector<float> p{0.5f, 0.3f, 0.2f};
  EXPECT_TRUE(lenient_accept(p, 0, 1.0, 1.0));   // the reviewer's argmax: always
  EXPECT_FALSE(lenient_accept(p, 1, 1.0, 1.0));  // lenience 1: exact greedy agreement only
  EXPECT_FALSE(lenient_accept(p, 1, 1.0, 2.0));  // 0.3 > 1/2 ? no
  EXPECT_TRUE(lenient_accept(p, 1, 1.0, 4.0));   // 0.3 > 1/4
  EXPECT_TRUE(lenient_accept(p, 1, 0.5, 2.0));   // 0.3 > 0.5/2 (drafter's own q)
  EXPECT_FALSE(lenient_accept(p, 2, 0.5, 2.0));  // 0.2 > 0.25 ? no
  const std::vector<float> quarters{0.5f, 0.25f, 0.25f};
  EXPECT_FALSE(lenient_accept(quarters, 1, 0.5, 2.0));  // 0.25 > 0.5/2 ? no: strictly above
  EXPECT_TRUE(lenient_accept(quarters, 1, 0.5, 2.5));   // 0.25 > 0.2
}

TEST(Lenience, VerticalCascadeWithLenienceOneEqualsReviewerGreedy) {
  auto model = std::make_shared<FakeModel>(spw::test::kVocab, 200, 1, 4.f, 0.f);
  ModelDrafter alone(model, spw::test::kVocab, "m");
  auto c = Cascade::vertical(std::make_unique<ModelDrafter>(model, spw::test::kVocab, "m"),
                             std::make_unique<MaxGramDrafter>(), 1.0, 3);
  std::vector<int32_t> ctx{1, 2, 3, 4, 5, 1, 2, 3};
  for (int k : {1, 3, 8}) EXPECT_EQ(c->propose(ctx, k).tokens, alone.propose(ctx, k).tokens) << k;
}

TEST(Lenience, HigherLenienceAcceptsMoreOfTheLowerDrafter) {
  auto model = std::make_shared<FakeModel>(spw::test::kVocab, 400, 1, 1.f, 0.f);  // flat-ish p
  std::vector<int32_t> ctx{1, 2, 3};
  std::vector<int64_t> accepted;
  for (double l : {1.0, 2.0, 8.0, 64.0}) {
    std::vector<int32_t> script{7, 9, 11, 13, 15, 17};
    auto c = Cascade::vertical(std::make_unique<ModelDrafter>(model, spw::test::kVocab, "m"),
                               std::make_unique<ScriptDrafter>(script), l, 6);
    for (int rep = 0; rep < 5; ++rep) c->propose(ctx, 6);
    accepted.push_back(c->lower_accepted());
    EXPECT_EQ(c->lower_proposed() > 0, true);
  }
  for (size_t i = 1; i < accepted.size(); ++i) EXPECT_GE(accepted[i], accepted[i - 1]);
  EXPECT_GT(accepted.back(), accepted.front());
  // With lenience 64 every token with p > 1/64 passes; q < 1 makes acceptance easier still.
  auto c = Cascade::vertical(std::make_unique<ModelDrafter>(model, spw::test::kVocab, "m"),
                             std::make_unique<ScriptDrafter>(std::vector<int32_t>{7, 9}, 0.001f, spw::test::kVocab),
                             2.0, 2);
  auto d = c->propose(ctx, 3);
  EXPECT_EQ(c->lower_accepted(), 2);  // p(x) > 0.001 / 2 always
  EXPECT_EQ(d.tokens[0], 7);
  EXPECT_EQ(d.tokens[1], 9);
  EXPECT_EQ(d.sources[2], "m");
  EXPECT_TRUE(d.probs.empty());  // the target verifies a cascade with one-hot q
}

// Positions per part and tokens per vertical round: 1 and 64 allowed, 0 and 65 rejected.
TEST(Cascade, ConstructorsCheckTheirRanges) {
  const auto part = [](int positions) {
    std::vector<Cascade::Part> p;
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{1}), positions});
    return p;
  };
  EXPECT_NO_THROW(Cascade::horizontal(part(1)));
  EXPECT_NO_THROW(Cascade::horizontal(part(64)));
  EXPECT_THROW_MSG(Cascade::horizontal(part(0)), "positions = 0: must be in [1, 64]");
  EXPECT_THROW_MSG(Cascade::horizontal(part(65)), "positions = 65: must be in [1, 64]");
  auto model = std::make_shared<FakeModel>(spw::test::kVocab, 200, 1, 4.f, 0.f);
  const auto vertical = [&](int k) {
    return Cascade::vertical(std::make_unique<ModelDrafter>(model, spw::test::kVocab, "m"),
                             std::make_unique<MaxGramDrafter>(), 1.0, k);
  };
  EXPECT_NO_THROW(vertical(1));
  EXPECT_NO_THROW(vertical(64));
  EXPECT_THROW_MSG(vertical(0), "k = 0: must be in [1, 64]");
  EXPECT_THROW_MSG(vertical(65), "k = 65: must be in [1, 64]");
}

TEST(Cascade, HorizontalSplitsPositions) {
  auto c = Cascade::horizontal([] {
    std::vector<Cascade::Part> p;
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{1, 1, 1}), 2});
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{2, 2, 2, 2}), 3});
    return p;
  }());
  EXPECT_EQ(c->propose(std::vector<int32_t>{5}, 4).tokens, (std::vector<int32_t>{1, 1, 2, 2}));
  EXPECT_EQ(c->propose(std::vector<int32_t>{5}, 9).tokens, (std::vector<int32_t>{1, 1, 2, 2, 2}));
  EXPECT_EQ(c->name(), "hcascade(script*2,script*3)");
}

TEST(Cascade, HorizontalFillsOneHotRowsNextToModelProbabilities) {
  auto c = Cascade::horizontal([] {
    std::vector<Cascade::Part> p;
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{3, 2}, 0.5f, 6), 2});
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{4, 4}), 2});
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{1, 5}, 0.75f, 6), 2});
    return p;
  }());
  auto d = c->propose(std::vector<int32_t>{5}, 6);
  ASSERT_EQ(d.tokens, (std::vector<int32_t>{3, 2, 4, 4, 1, 5}));
  ASSERT_EQ(d.probs.size(), 6u * 6u);  // six rows of the 6-token vocabulary
  EXPECT_EQ(d.prob_width(), 6u);
  // Each part's rows in their order: q on the row's own token, the rest spread evenly.
  const auto spread = [](int token, float q) {
    std::vector<float> r(6, (1.f - q) / 5);
    r[token] = q;
    return r;
  };
  const std::vector<float> one_hot{0, 0, 0, 0, 1, 0};
  const std::vector<std::vector<float>> want{spread(3, 0.5f), spread(2, 0.5f), one_hot, one_hot,
                                             spread(1, 0.75f), spread(5, 0.75f)};
  for (size_t i = 0; i < want.size(); ++i) {
    const auto r = d.prob_row(i);
    EXPECT_EQ(std::vector<float>(r.begin(), r.end()), want[i]) << "row " << i;
  }
  // Parts whose rows differ in width: an error naming the drafter, not a garbled row.
  auto bad = Cascade::horizontal([] {
    std::vector<Cascade::Part> p;
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{3}, 0.5f, 6), 1});
    p.push_back({std::make_unique<ScriptDrafter>(std::vector<int32_t>{4, 4}, 0.5f, 7), 2});
    return p;
  }());
  EXPECT_THROW_MSG(bad->propose(std::vector<int32_t>{5}, 3), "rows of 7 probabilities, another of 6");
}

TEST(DrafterConfig, NamesAndStructure) {
  auto env = spw::test::make_env();
  EXPECT_FALSE(make_drafter_factory("none", env));
  EXPECT_FALSE(make_drafter_factory(" ar ", env));
  EXPECT_EQ(make_drafter_factory("maxgram", env)()->name(), "maxgram");
  EXPECT_EQ(make_drafter_factory("maxgram + bigram", env)()->name(), "maxgram+bigram");
  EXPECT_EQ(make_drafter_factory("bigram", env)()->name(), "bigram");
  EXPECT_EQ(make_drafter_factory("maxgram+bigram@0.3", env)()->name(), "maxgram+bigram");
  EXPECT_EQ(make_drafter_factory("maxgram + recycle@0.3", env)()->name(), "maxgram+recycle");
  EXPECT_EQ(make_drafter_factory("recycle", env)()->name(), "recycle");
  EXPECT_EQ(make_drafter_factory("maxgram+bigram", env)()->wants_target_topk(), 0);
  EXPECT_EQ(make_drafter_factory("maxgram+recycle", env)()->wants_target_topk(), kRecycleTopK);
  // A cascade asks for what its parts ask for.
  EXPECT_EQ(make_drafter_factory("hcascade(self:2*2,recycle*3)", env)()->wants_target_topk(), kRecycleTopK);
  EXPECT_EQ(make_drafter_factory("vcascade(self:2,maxgram+recycle)", env)()->wants_target_topk(), kRecycleTopK);
  EXPECT_EQ(make_drafter_factory("hcascade(self:2*2,maxgram*3)", env)()->wants_target_topk(), 0);
  EXPECT_EQ(make_drafter_factory("hcascade(bigram@1*2,maxgram:2-4+bigram@0.05*3)", env)()->name(),
            "hcascade(bigram@1*2,maxgram:2-4+bigram@0.05*3)");
  EXPECT_EQ(make_drafter_factory("self:2", env)()->name(), "self:2");
  EXPECT_EQ(make_drafter_factory("vcascade(model:self:2,maxgram+bigram;lenience=2)", env)()->name(),
            "vcascade(model:self:2,maxgram+bigram;lenience=2)");
  EXPECT_EQ(make_drafter_factory("hcascade(self:2*2, maxgram*6)", env)()->name(), "hcascade(self:2*2,maxgram*6)");
  // Each drafter made is a fresh instance (one per sequence).
  auto f = make_drafter_factory("self:2", env);
  EXPECT_NE(f().get(), f().get());
  std::vector<DraftCost> costs;
  auto d = make_drafter_factory("vcascade(model:draft,self:2,maxgram)", env)();
  d->propose(std::vector<int32_t>{1, 2, 3}, 4);
  d->collect_costs(costs);
  ASSERT_EQ(costs.size(), 2u);
  EXPECT_EQ(costs[0].name, "model:draft");
  EXPECT_GT(costs[0].forwards, 0);
  EXPECT_GT(costs[1].forwards, 0);
}

TEST(DrafterConfig, ErrorsNameTheBadToken) {
  auto env = spw::test::make_env();
  auto no_bigram = env;
  no_bigram.bigram = nullptr;
  auto no_loader = env;
  no_loader.load_model = nullptr;
  struct Case {
    const char* spec;
    const DrafterEnv* env;
    const char* message;
  };
  const Case cases[] = {
      {"maxgarm", &env, "unknown drafter 'maxgarm'"},
      {"", &env, "empty"},
      {"maxgram)", &env, "unexpected ')'"},
      {"vcascade(maxgram,bigram)", &env, "reviewer 'maxgram' must be a model drafter"},
      {"vcascade(self:2)", &env, "at least two"},
      {"vcascade(self:2,maxgram;lenience=0.5)", &env, "lenience must be >= 1"},
      {"vcascade(self:2,maxgram;foo=1)", &env, "unknown vcascade option 'foo=1'"},
      {"vcascade(self:2,maxgram;k=0)", &env, "k must be in [1, 64]"},
      {"vcascade(self:2,maxgram", &env, "expected ')' but found 'end'"},
      {"hcascade(maxgram)", &env, "expected '*'"},
      {"hcascade(maxgram*x)", &env, "expected a number (positions)"},
      {"hcascade(maxgram*99)", &env, "positions must be in [1, 64]"},
      {"maxgram:3-1", &env, "MIN <= MAX"},
      {"maxgram+bigram@0", &env, "bigram@P needs 0 < P <= 1"},
      {"bigram@1.5", &env, "bigram@P needs 0 < P <= 1"},
      {"bigram@x", &env, "expected a number (bigram min probability)"},
      {"self:x", &env, "expected a number (layers)"},
      {"self:9", &env, "only 4 layers"},
      {"model:", &env, "model: needs a path"},
      {"model:badvocab", &env, "vocab_size = 51: must equal the target's vocab_size 50"},
      {"maxgram+bigram", &no_bigram, "needs a bigram table"},
      {"hcascade(bigram*2)", &no_bigram, "needs a bigram table"},
      {"maxgram+recycle", &no_bigram, "'maxgram+recycle' needs a bigram table"},
      {"recycle@0.5", &no_bigram, "'recycle' needs a bigram table"},
      {"recycle@2", &env, "bigram@P needs 0 < P <= 1"},
      {"self:2", &no_loader, "needs a model loader"},
      // a number must be one number: "1.2.3" is not 1.2 followed by nothing
      {"vcascade(self:2,maxgram;lenience=1.2.3)", &env, "expected a number (lenience)"},
      {"bigram@0.5.", &env, "expected a number (bigram min probability)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    EXPECT_THROW_MSG(make_drafter_factory(c.spec, *c.env), c.message);
  }
}

// Nesting: 16 levels parse, 17 are refused by name, and a generated spec nested a million deep
// is refused just as quickly (no recursion to the end of it), quoted in part in the message.
TEST(DrafterConfig, NestingIsBoundedAndLongSpecsAreQuotedInPart) {
  auto env = spw::test::make_env();
  auto nest = [](int levels) {
    std::string s;
    for (int i = 0; i < levels; ++i) s += "hcascade(";
    s += "maxgram";
    for (int i = 0; i < levels; ++i) s += "*1)";
    return s;
  };
  auto f = make_drafter_factory(nest(15), env);  // 15 cascades around a leaf: 16 levels
  ASSERT_TRUE(f);
  EXPECT_EQ(f()->propose(std::vector<int32_t>{1, 2, 1}, 4).tokens.size(), 1u);  // positions 1 all the way down
  EXPECT_THROW_MSG(make_drafter_factory(nest(16), env), "cascades nested over 16 deep at position 144");
  std::string huge;
  for (int i = 0; i < 1000000; ++i) huge += "vcascade(";
  try {
    make_drafter_factory(huge, env);
    ADD_FAILURE() << "a spec nested a million deep parsed";
  } catch (const spw::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cascades nested over 16 deep at position 144"), std::string::npos) << m;
    EXPECT_LT(m.size(), 400u) << m;
    EXPECT_NE(m.find("'vcascade(vcascade("), std::string::npos) << m;  // its start, then "..."
    EXPECT_NE(m.find("..."), std::string::npos) << m;
  }
  // an unknown word of 100 KB is named by its first 48 characters
  const std::string word(100000, 'z');
  try {
    make_drafter_factory("hcascade(" + word + "*2)", env);
    ADD_FAILURE() << "an unknown drafter parsed";
  } catch (const spw::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown drafter '" + std::string(48, 'z') + "...'"), std::string::npos) << m.substr(0, 400);
    EXPECT_LT(m.size(), 500u) << m.substr(0, 600);
  }
}

// Grammar fuzz: specs made by the grammar (depth up to 4), some of them then cut, spliced or
// mutated, and specs glued together from the grammar's pieces, must each give a factory whose
// drafters propose at most k tokens of the vocabulary, or raise spw::Error with a short
// message; never crash, hang or throw anything else.
TEST(DrafterConfig, RandomSpecsParseOrFailCleanly) {
  auto env = spw::test::make_env();
  env.load_model = [](const std::string& path, int layers) -> std::shared_ptr<spw::rt::Model> {
    if (path == "draft" || path == "target" || path == "badvocab") return spw::test::load_fake(path, layers);
    spw::fail("no such model: '{}'", path);
  };
  std::mt19937 rng(20261207);
  auto pick = [&](std::initializer_list<const char*> xs) { return std::string(xs.begin()[rng() % xs.size()]); };
  auto num = [&](int lo, int hi) { return std::to_string(lo + static_cast<int>(rng() % (hi - lo + 1))); };
  std::function<std::string(int)> model = [&](int) {
    return rng() % 3 ? "self:" + num(1, 4) : pick({"model:draft", "model:self:2", "model:target"});
  };
  std::function<std::string(int)> term = [&](int depth) -> std::string {
    const int choice = static_cast<int>(rng() % (depth >= 4 ? 3 : 5));
    if (choice == 0)
      return "maxgram" + (rng() % 2 ? ":" + num(1, 3) + "-" + num(3, 8) : "") + pick({"", "+bigram", "+recycle@0.2"});
    if (choice == 1) return pick({"bigram", "recycle", "bigram@0.1"});
    if (choice == 2) return model(depth);
    if (choice == 3) {
      std::string t = "vcascade(" + model(depth);
      for (int i = static_cast<int>(rng() % 2); i > 0; --i) t += "," + model(depth);
      t += "," + term(depth + 1);
      if (rng() % 2) t += ";lenience=" + num(1, 4) + (rng() % 2 ? ",k=" + num(1, 6) : "");
      return t + ")";
    }
    std::string t = "hcascade(";
    for (int i = 1 + static_cast<int>(rng() % 3); i > 0; --i) t += term(depth + 1) + "*" + num(1, 4) + (i > 1 ? "," : "");
    return t + ")";
  };
  const std::vector<std::string> pieces = {
      "maxgram", "bigram", "recycle", "self:", "model:", "model:self:", "draft", "badvocab", "vcascade(",
      "hcascade(", ",", ";", "*", ")", "(", "lenience=", "k=", "1", "2", "3", "64", "65", "0", "0.5",
      "1.2.3", ".", "@", "+bigram", "+recycle", ":", "-", "x", " ", "none", "999999999", "\t"};
  int parsed = 0, refused = 0;
  for (int trial = 0; trial < 6000; ++trial) {
    std::string spec;
    if (trial % 3 == 2) {
      for (int i = 1 + static_cast<int>(rng() % 14); i > 0; --i) spec += pieces[rng() % pieces.size()];
    } else {
      spec = term(0);
      if (trial % 3 == 1 && !spec.empty()) {  // one mutation: cut, drop a character, or splice a piece in
        const size_t at = rng() % spec.size();
        const int how = static_cast<int>(rng() % 3);
        if (how == 0) spec.resize(at);
        else if (how == 1) spec.erase(at, 1);
        else spec.insert(at, pieces[rng() % pieces.size()]);
      }
    }
    try {
      DrafterFactory f = make_drafter_factory(spec, env);
      ++parsed;
      if (!f) continue;  // none
      auto d = f();
      ASSERT_TRUE(d) << spec;
      const int k = 1 + static_cast<int>(rng() % 8);
      const Draft draft = d->propose(std::vector<int32_t>{1, 2, 3, 1, 2}, k);
      ASSERT_LE(static_cast<int>(draft.tokens.size()), k) << spec;
      for (int32_t t : draft.tokens) ASSERT_TRUE(t >= 0 && t < spw::test::kVocab) << spec;
    } catch (const spw::Error& e) {
      ++refused;
      ASSERT_LT(std::string(e.what()).size(), 600u) << spec;
    }
  }
  // both outcomes are exercised many times
  EXPECT_GT(parsed, 1500);
  EXPECT_GT(refused, 2000);
}

// --draft @FILE: a spec laid out over lines, with comments, gives the drafter the same
// spec on one line gives; a missing, empty or oversized file is named in the error.
TEST(DrafterConfig, SpecFromAFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("spw_drafter_spec_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return "@" + (dir / name).string();
  };
  EXPECT_EQ(read_drafter_spec("maxgram+bigram"), "maxgram+bigram");  // not a file: unchanged
  const std::string layout = write("cascade.spec",
                                   "# model drafter reviewed by Max-Gram for 2 positions\n"
                                   "hcascade(\n"
                                   "\tvcascade(model:self:2, maxgram+bigram; lenience=2) * 2,  # early\n"
                                   "  maxgram+bigram@0.05 * 3   # late\r\n"
                                   ")\n#");
  const std::string spec = read_drafter_spec(layout);
  EXPECT_EQ(spec, "hcascade(vcascade(model:self:2,maxgram+bigram;lenience=2)*2,maxgram+bigram@0.05*3)");
  auto env = spw::test::make_env();
  EXPECT_EQ(make_drafter_factory(spec, env)()->name(), spec);
  EXPECT_EQ(read_drafter_spec(write("one.spec", "maxgram")), "maxgram");  // no newline at the end
  EXPECT_EQ(read_drafter_spec(write("ar.spec", "  none  \n")), "none");
  EXPECT_THROW_MSG(read_drafter_spec("@"), "needs a file name after '@'");
  EXPECT_THROW_MSG(read_drafter_spec("@" + (dir / "absent.spec").string()), "absent.spec': cannot open it");
  EXPECT_THROW_MSG(read_drafter_spec(write("empty.spec", "# nothing here\n   \n")), "holds no spec");
  EXPECT_THROW_MSG(read_drafter_spec(write("big.spec", std::string(70000, 'x'))), "over 65536 bytes");
  std::filesystem::remove_all(dir);
}

TEST(ModelDrafter, RejectsDifferentVocabularyAndStaysInContext) {
  auto bad = std::make_shared<FakeModel>(51, 100);
  EXPECT_THROW_MSG(ModelDrafter(bad, 50, "small"), "vocab_size = 51: must equal the target's vocab_size 50");
  auto tiny = std::make_shared<FakeModel>(50, 6);
  ModelDrafter d(tiny, 50, "tiny");
  EXPECT_EQ(d.propose(std::vector<int32_t>{1, 2, 3, 4}, 8).tokens.size(), 3u);  // 4 + 3 - 1 = 6 fit
  EXPECT_TRUE(d.propose(std::vector<int32_t>(7, 1), 2).tokens.empty());
  // Greedy proposals match the model's argmax chain, with the cache reused across calls.
  auto m = std::make_shared<FakeModel>(50, 100, 2, 4.f, 0.f);
  ModelDrafter g(m, 50, "g");
  std::vector<int32_t> ctx{3, 4, 5};
  auto ref = m->greedy_reference(ctx, 5);
  EXPECT_EQ(g.propose(ctx, 5).tokens, ref);
  ctx.push_back(ref[0]);
  ctx.push_back(ref[1]);
  EXPECT_EQ(g.propose(ctx, 3).tokens, std::vector<int32_t>(ref.begin() + 2, ref.end()));
  ctx[1] = 9;  // an edit in the middle: rolls back to the common prefix
  EXPECT_EQ(g.propose(ctx, 2).tokens, m->greedy_reference(ctx, 2));
}

// A warm speculative decoding step allocates nothing outside the target's forward: drafters
// fill the decoder's own Draft / DraftSet (Drafter::propose_into), the token tree, the
// verification result and the emitted tokens are kept per sequence, and the Max-Gram index is
// an open-addressing table sized once by Drafter::reserve. (The target's and drafter models'
// forward passes are the CPU backend's, whose warm steps tests/runtime/test_cpu_backend_alloc.cpp
// checks; their KV cache and score rows grow with the context, so this test pauses the count
// inside them.)
// The count is the calling thread's allocations (tests/common/count_allocations.h).
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "decode/drafter_config.h"
#include "decode/speculative.h"
#include "runtime/gguf_writer.h"
#include "runtime/model_loader.h"
#include "tests/common/count_allocations.h"
#include "tests/common/helpers.h"

using namespace spw;
using namespace spw::decode;

namespace {

using Paused = test::AllocationsNotCounted;
using test::allocations_counted;

// A model (the target, or a model drafter's) with the count paused inside its forward passes
// (see the header).
class PausedForwards final : public rt::Model {
 public:
  explicit PausedForwards(rt::Model& m) : m_(m) {}
  explicit PausedForwards(std::shared_ptr<rt::Model> owned) : owned_(std::move(owned)), m_(*owned_) {}
  const rt::ModelConfig& config() const override { return m_.config(); }
  std::string backend_name() const override { return m_.backend_name(); }
  int create_sequence() override { return m_.create_sequence(); }
  void free_sequence(int s) override { m_.free_sequence(s); }
  int cached_tokens(int s) const override { return m_.cached_tokens(s); }
  int max_tokens() const override { return m_.max_tokens(); }
  void forward(std::span<const rt::SeqInput> b, std::vector<float>& logits) override {
    Paused p;
    m_.forward(b, logits);
  }
  void forward_argmax(std::span<const rt::SeqInput> b, std::vector<int32_t>& tokens) override {
    Paused p;
    m_.forward_argmax(b, tokens);
  }
  void forward_topk(std::span<const rt::SeqInput> b, int k, std::vector<TopToken>& top) override {
    Paused p;
    m_.forward_topk(b, k, top);
  }
  std::span<const float> forward_view(std::span<const rt::SeqInput> b) override {
    Paused p;
    return m_.forward_view(b);
  }
  std::span<const float> forward_view_topk(std::span<const rt::SeqInput> b, int k, std::vector<TopToken>& top) override {
    Paused p;
    return m_.forward_view_topk(b, k, top);
  }
  void rollback(int s, int n) override { m_.rollback(s, n); }  // counted
  void keep_tokens(int s, int base, std::span<const int32_t> offsets) override { m_.keep_tokens(s, base, offsets); }

 private:
  std::shared_ptr<rt::Model> owned_;
  rt::Model& m_;
};

constexpr int kNewTokens = 240;
constexpr int kWarmTokens = 80;  // the count is compared from this emitted token on

struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<rt::Model> cpu;
  std::unique_ptr<PausedForwards> target;
  DrafterEnv env;
  Fixture() {
    dir = std::filesystem::temp_directory_path() / ("spw_decode_alloc_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string file = (dir / "tiny.gguf").string();
    rt::TinyLlamaSpec spec;
    spec.context = 1024;
    spec.layers = 3;
    rt::write_tiny_llama(file, spec);
    cpu = rt::load_model(file, {.threads = 2});
    target = std::make_unique<PausedForwards>(*cpu);
    env.vocab_size = cpu->config().vocab_size;
    env.target_path = file;  // self:L drafters: its first L layers, their forwards paused too
    env.load_model = [](const std::string& path, int layers) -> std::shared_ptr<rt::Model> {
      return std::make_shared<PausedForwards>(std::shared_ptr<rt::Model>(rt::load_model(path, {.max_layers = layers > 0 ? layers : -1, .threads = 2})));
    };
    SpeculativeDecoder ar(*cpu);
    GenerateParams p;
    p.max_new_tokens = 100;
    const auto text = ar.generate(std::vector<int32_t>{72, 101, 108}, p).tokens;
    env.bigram = std::make_shared<BigramTable>(BigramTable::from_sequences({text}, env.vocab_size, 4, 0));
  }
  ~Fixture() { std::filesystem::remove_all(dir); }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

struct Result {
  long warm_allocations = 0;  // between emitted token kWarmTokens and the last one
  size_t distinct = 0;        // distinct tokens emitted in that window
  Generation gen;
};

// The parameters every test here starts from: drafts of up to k = 6 tokens, trees `width` wide,
// and an on_token that records the allocation count at each emitted token into `at` (reserved
// for `tokens` entries, so recording allocates nothing).
GenerateParams counting_params(int max_new_tokens, int width, std::vector<long>& at, size_t tokens) {
  GenerateParams p;
  p.max_new_tokens = max_new_tokens;
  p.k = 6;
  p.tree_width = width;
  at.reserve(tokens);
  p.on_token = [&at](int, int32_t) { at.push_back(allocations_counted.load()); };
  return p;
}

Result run(const DrafterFactory& factory, int width, float temperature, DraftLength length, bool grow = false) {
  auto& f = fixture();
  SpeculativeDecoder dec(*f.target, factory);
  std::vector<long> at;  // the count at each emitted token
  GenerateParams p = counting_params(kNewTokens, width, at, kNewTokens);
  p.draft_length = length;
  if (length == DraftLength::cost) {  // a GPU-like curve: long drafts and large trees pay
    for (int n = 1; n <= 80; ++n) p.pass_costs.push_back(1.0 + 0.02 * n);
    p.grow_tree = grow;
  }
  p.sampling.temperature = temperature;
  p.sampling.top_p = temperature > 0 ? 0.95f : 1.f;
  p.sampling.seed = 7;
  const std::vector<int32_t> prompt{72, 101, 108, 108, 111, 33, 72, 101};
  test::counting_allocations = true;
  Result r;
  r.gen = dec.generate(prompt, p);
  test::counting_allocations = false;
  EXPECT_EQ(at.size(), static_cast<size_t>(kNewTokens));
  if (at.size() != static_cast<size_t>(kNewTokens)) return r;
  r.warm_allocations = at.back() - at[kWarmTokens];
  std::vector<int32_t> window(r.gen.tokens.begin() + kWarmTokens, r.gen.tokens.end());
  std::sort(window.begin(), window.end());
  r.distinct = static_cast<size_t>(std::unique(window.begin(), window.end()) - window.begin());
  return r;
}

TEST(DecodeAlloc, TheCounterSeesAnAllocation) {
  EXPECT_GE(test::allocations_in([] {
              int* q = new int(7);
              asm volatile("" : : "r"(q) : "memory");  // not elided
              delete q;
            }),
            1);
}

// A drafter that hands the decoder a freshly built draft every step (what every drafter did
// before propose_into): the window's count must see it, so the zeros below can fail.
TEST(DecodeAlloc, TheCountSeesADrafterThatAllocatesEveryStep) {
  struct Fresh final : Drafter {
    std::string name() const override { return "fresh"; }
    void propose_into(std::span<const int32_t> context, int k, Draft& out) override {
      Draft d;  // a new draft: its vectors allocate
      for (int i = 0; i < k; ++i) d.push(context.back(), "fresh");
      out = std::move(d);
    }
  };
  const Result r = run([] { return std::make_unique<Fresh>(); }, 1, 0.f, DraftLength::fixed);
  EXPECT_GT(r.warm_allocations, 0);
}

// A batch: one target forward per step for three sequences of different prompts (their drafts,
// acceptance and lengths differ), kept and dropped from the pass independently.
TEST(DecodeAlloc, WarmBatchStepsAllocateNothingOutsideTheTarget) {
  for (const char* spec : {"maxgram+recycle", "maxgram"})
    for (int width : {1, 4}) {
      SpeculativeDecoder dec(*fixture().target, make_drafter_factory(spec, fixture().env));
      std::vector<long> at;  // the count at each emitted token, any sequence
      GenerateParams p = counting_params(kNewTokens, width, at, 3 * kNewTokens);
      p.draft_length = DraftLength::adaptive;
      p.sampling.temperature = 10.f;
      p.sampling.seed = 3;
      const std::vector<std::vector<int32_t>> prompts{{72, 101, 108, 108, 111}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {200}};
      test::counting_allocations = true;
      const auto gens = dec.generate_batch(prompts, p);
      test::counting_allocations = false;
      ASSERT_EQ(at.size(), static_cast<size_t>(3 * kNewTokens));
      EXPECT_EQ(at.back() - at[3 * kWarmTokens], 0) << spec << " width " << width;
      for (const auto& g : gens) EXPECT_EQ(g.tokens.size(), static_cast<size_t>(kNewTokens));
    }
}

// Decoding until the context is full: the text, the drafters' indexes and the per-position
// counts were sized at the start for everything the sequence can reach, the last pass included.
TEST(DecodeAlloc, DecodingToTheContextLimitAllocatesNothingOnceWarm) {
  const int max_tokens = fixture().target->max_tokens();
  std::vector<int32_t> prompt;
  for (int i = 0; prompt.size() + 150 < static_cast<size_t>(max_tokens); ++i) prompt.push_back(72 + (i * 7) % 41);
  const char* spec = "maxgram+recycle";  // the Max-Gram index and the recycled rows
  for (int width : {1, 4}) {
    SpeculativeDecoder dec(*fixture().target, make_drafter_factory(spec, fixture().env));
    std::vector<long> at;
    const GenerateParams p = counting_params(max_tokens, width, at, static_cast<size_t>(max_tokens));
    test::counting_allocations = true;
    const Generation g = dec.generate(prompt, p);
    test::counting_allocations = false;
    EXPECT_EQ(g.stop, StopReason::context_limit) << spec;
    ASSERT_GT(at.size(), static_cast<size_t>(kWarmTokens)) << spec;
    EXPECT_EQ(at.back() - at[kWarmTokens], 0) << spec << " width " << width;
  }
}

// Drafter names longer than a std::string's inline buffer (15 characters here): a model:PATH
// drafter's name is its spec, path included. The decoder's drafts keep their names' buffers
// (SourceNames), and a cascade asks its drafters' names once.
TEST(DecodeAlloc, LongDrafterNamesAllocateNothingOnceWarm) {
  const std::string model = "model:" + (fixture().dir / "tiny.gguf").string();
  ASSERT_GT(model.size(), 15u);
  for (const std::string& spec : {model, "vcascade(" + model + ",maxgram)", "hcascade(" + model + "*2,maxgram*4)"})
    for (int width : {1, 4})
      for (float t : {0.f, 10.f}) {
        const Result r = run(make_drafter_factory(spec, fixture().env), width, t, DraftLength::adaptive);
        EXPECT_EQ(r.warm_allocations, 0) << spec << " width " << width << " temperature " << t;
        EXPECT_GE(r.gen.stats.target_passes, 20);
        bool named = false;  // the long name reached the statistics
        for (const auto& [name, counts] : r.gen.stats.by_source) named |= name == model && counts.first > 0;
        EXPECT_TRUE(named) << spec;
      }
}

TEST(DecodeAlloc, SourceNamesKeepTheirBuffersWhenRefilled) {
  const std::string long_a(40, 'a'), long_b(33, 'b');
  SourceNames names;
  names.push_back(long_a);
  names.push_back("short");
  names.resize(4, long_b);
  EXPECT_EQ(names, (std::vector<std::string>{long_a, "short", long_b, long_b}));
  names.resize(1);
  EXPECT_EQ(names, (std::vector<std::string>{long_a}));
  names.resize(3);  // new entries empty, not the old ones' names
  EXPECT_EQ(names, (std::vector<std::string>{long_a, "", ""}));
  names.assign(2, "x");
  EXPECT_EQ(names, (std::vector<std::string>{"x", "x"}));
  names.clear();
  EXPECT_TRUE(names.empty());
  EXPECT_EQ(names.begin(), names.end());
  names.reserve(8);
  for (int i = 0; i < 8; ++i) names.push_back(long_a);  // warms every slot's buffer
  const long n = test::allocations_in([&] {
    for (int round = 0; round < 5; ++round) {
      names.clear();
      for (int i = 0; i < 8; ++i) names.push_back(i % 2 ? long_b : long_a);
      names.resize(3);
      names.resize(8, long_b);
      names.assign(6, long_a);
    }
  });
  EXPECT_EQ(n, 0);
  EXPECT_EQ(names.size(), 6u);
  EXPECT_EQ(names[5], long_a);
}

struct Case {
  const char* spec;
  int width;
  float temperature;
  DraftLength length;
  bool grow = false;  // cost-pruned trees grown from the drafter's table first
};

class WarmSteps : public ::testing::TestWithParam<Case> {};

TEST_P(WarmSteps, AllocateNothingOutsideTheTarget) {
  const Case c = GetParam();
  const auto factory = make_drafter_factory(c.spec, fixture().env);
  const Result r = run(factory, c.width, c.temperature, c.length, c.grow);
  EXPECT_EQ(r.warm_allocations, 0) << c.spec << " width " << c.width << " temperature " << c.temperature
                                   << " length " << static_cast<int>(c.length) << " grown " << c.grow;
  EXPECT_EQ(r.gen.tokens.size(), static_cast<size_t>(kNewTokens));
  // The window holds real decoding: several passes, and (sampled) text that keeps adding
  // n-grams to the Max-Gram index instead of a short loop.
  EXPECT_GE(r.gen.stats.target_passes, 20);
  if (c.temperature > 0) {
    EXPECT_GE(r.distinct, 40u);
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const char* spec : {"ar", "maxgram", "bigram", "recycle", "maxgram+bigram", "maxgram+recycle",
                           "hcascade(maxgram*2,bigram*4)"})
    for (int width : {1, 4})
      for (float t : {0.f, 10.f})  // the tiny model is so sure of itself that only a high
                                       // temperature makes text that is not one repeated token
        for (DraftLength l : {DraftLength::fixed, DraftLength::adaptive, DraftLength::cost})
          out.push_back({spec, width, t, l});
  for (const char* spec : {"maxgram+bigram", "maxgram+recycle", "recycle"})
    for (float t : {0.f, 10.f}) out.push_back({spec, 8, t, DraftLength::cost, true});
  // Model drafters (the drafter's own forwards paused, like the target's) and cascades of them:
  // a sampled one hands over a probability row per token, a tree ranks the first row.
  for (const char* spec : {"self:1", "vcascade(self:2,maxgram)", "hcascade(self:1*2,maxgram*4)"})
    for (int width : {1, 4})
      for (float t : {0.f, 10.f}) out.push_back({spec, width, t, DraftLength::adaptive});
  return out;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string s;
  for (const char* p = info.param.spec; *p; ++p) s += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
  s += info.param.width > 1 ? "_tree" : "_chain";
  s += info.param.temperature > 0 ? "_sampled" : "_greedy";
  s += info.param.length == DraftLength::adaptive ? "_adaptive"
       : info.param.length == DraftLength::cost   ? "_cost"
                                                   : "_fixed";
  if (info.param.grow) s += "_grown";
  return s;
}

INSTANTIATE_TEST_SUITE_P(Drafters, WarmSteps, ::testing::ValuesIn(cases()), case_name);

}  // namespace

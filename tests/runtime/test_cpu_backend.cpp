// CPU backend on tiny random models written by the project's own writer: a chain forward of N
// tokens equals N single-token forwards, a tree forward equals running each root-to-leaf path
// on its own, rollback/keep_tokens then continuing equals a fresh run, batches of sequences
// equal separate runs, and bad input is rejected by name. (Agreement with an independent
// NumPy implementation: the runtime_numpy_reference_* tests.)
#include <filesystem>
#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#include "runtime/dequant.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/model_loader.h"
#include "tests/common/helpers.h"

using namespace spw;
using namespace spw::rt;

namespace {

class CpuBackend : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("spw_cpu_backend_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    TinyLlamaSpec s;
    s.context = 64;
    write_tiny_llama(path(), s);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string path() { return (dir_ / "tiny.gguf").string(); }

  // Logits of the last token after feeding `ids` one forward call at a time.
  static std::vector<float> run_single(Model& m, const std::vector<int32_t>& ids) {
    const int s = m.create_sequence();
    std::vector<float> logits;
    for (int32_t id : ids) {
      SeqInput in{s, std::span<const int32_t>(&id, 1), {}};
      m.forward(std::span(&in, 1), logits);
    }
    m.free_sequence(s);
    return logits;
  }
  static std::vector<float> row(const std::vector<float>& all, int r, int vocab) {
    return {all.begin() + static_cast<size_t>(r) * vocab, all.begin() + static_cast<size_t>(r + 1) * vocab};
  }
  static std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

  static inline std::filesystem::path dir_;
};

const test::Tolerance kTol{1e-5, 1e-4};

TEST_F(CpuBackend, ConfigFromMetadata) {
  auto m = load_model(path());
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.vocab_size, 320);
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ(m->max_tokens(), 64);
  EXPECT_EQ(m->backend_name(), "cpu");
  EXPECT_EQ(load_model(path(), {.max_layers = 1})->config().num_layers, 1);
}

// Greedy speculative decoding is bit-identical to plain decoding only if a token's logits do
// not depend on how many tokens share its forward: the CPU backend guarantees this exactly.
// weight_bytes() (what `spillway step` divides by for its GB/s) is every tensor's bytes as
// stored in the file: quantised matrices as they are, norms and biases as fp32; a tied model
// counts its embedding once.
TEST_F(CpuBackend, WeightBytesAreTheTensorsOfTheFile) {
  for (const auto& [type, arch, tied] : {std::tuple{TensorType::F32, "llama", true}, {TensorType::Q8_0, "llama", false},
                                         {TensorType::Q4_0, "qwen2", false}, {TensorType::F16, "qwen2", true}}) {
    SCOPED_TRACE(std::string(tensor_type_name(static_cast<uint32_t>(type))) + " " + arch);
    TinyLlamaSpec spec;
    spec.type = static_cast<uint32_t>(type);
    spec.arch = arch;
    spec.tied = tied;
    const std::string file = (dir_ / "bytes.gguf").string();
    write_tiny_llama(file, spec);
    size_t want = 0;
    int biases = 0;
    const GgufFile gguf = GgufFile::open(file);
    for (const GgufTensorInfo& t : gguf.tensors()) {
      want += t.bytes;
      biases += t.name.find(".bias") != std::string::npos;
    }
    EXPECT_EQ(biases, std::string(arch) == "qwen2" ? 3 * spec.layers : 0);
    EXPECT_EQ(load_model(file)->weight_bytes(), want);
  }
}

TEST_F(CpuBackend, ChainAndTreeLogitsAreBitIdenticalToSingleTokenSteps) {
  auto m = load_model(path());
  const int V = m->config().vocab_size;
  const std::vector<int32_t> ids{256, 72, 101, 5, 6, 8, 42, 300, 11};
  const int s = m->create_sequence();
  std::vector<float> chain;
  SeqInput in{s, ids, {}};
  m->forward(std::span(&in, 1), chain);
  for (size_t n = 1; n <= ids.size(); ++n) {
    const auto single = run_single(*m, {ids.begin(), ids.begin() + n});
    ASSERT_EQ(std::memcmp(single.data(), &chain[(n - 1) * V], V * sizeof(float)), 0) << "token " << n - 1;
  }
  // A tree after a cached prefix: node 3 = prefix + ids[0], ids[1], ids[3].
  const std::vector<int32_t> tree{7, 8, 9, 10}, parents{-1, 0, 0, 1};
  std::vector<float> logits;
  SeqInput t{s, tree, parents};
  m->forward(std::span(&t, 1), logits);
  std::vector<int32_t> path = ids;
  path.insert(path.end(), {7, 8, 10});
  const auto single = run_single(*m, path);
  EXPECT_EQ(std::memcmp(single.data(), &logits[3 * size_t(V)], V * sizeof(float)), 0);
}

// The attention splits a forward's work into items of one KV head, some of its query heads
// and a tile of tokens: the whole group and up to 8 tokens, or less of both when that gives too
// few items for the threads (attention_items). Whatever the split, every logit is the same bits:
// MHA, GQA with groups of 3 (split unevenly, 2 + 1) and 8, and 1, 2, 3 and 7 threads (tiles of
// 8 down to 1 token), for a chain and a tree over a cached prefix, against single-token steps
// on one thread.
TEST_F(CpuBackend, AttentionWorkSplitLeavesEveryLogitUnchanged) {
  struct Shape {
    int hidden, heads, kv_heads;
  };
  for (const Shape sh : {Shape{64, 4, 4}, Shape{96, 6, 2}, Shape{64, 8, 1}}) {
    TinyLlamaSpec spec;
    spec.hidden = sh.hidden;
    spec.heads = sh.heads;
    spec.kv_heads = sh.kv_heads;
    spec.context = 64;
    const std::string name = "split_" + std::to_string(sh.heads) + "_" + std::to_string(sh.kv_heads) + ".gguf";
    const std::string file = (dir_ / name).string();
    write_tiny_llama(file, spec);
    auto one = load_model(file, {.threads = 1});
    const int V = one->config().vocab_size;
    const std::vector<int32_t> ids{256, 72, 101, 5, 6, 8, 42}, tree{7, 8, 9, 10, 11}, parents{-1, 0, 0, 1, -1};
    std::vector<std::vector<float>> want;  // after ids[0 .. n], then after ids + each tree node's path
    for (size_t n = 1; n <= ids.size(); ++n) want.push_back(run_single(*one, {ids.begin(), ids.begin() + n}));
    for (int node = 0; node < int(tree.size()); ++node) {
      std::vector<int32_t> path;
      for (int a = node; a >= 0; a = parents[a]) path.insert(path.begin(), tree[a]);
      path.insert(path.begin(), ids.begin(), ids.end());
      want.push_back(run_single(*one, path));
    }
    for (int threads : {1, 2, 3, 7}) {
      auto m = load_model(file, {.threads = threads});
      const int s = m->create_sequence();
      std::vector<float> chain, trees;
      SeqInput in{s, ids, {}};
      m->forward(std::span(&in, 1), chain);
      SeqInput t{s, tree, parents};
      m->forward(std::span(&t, 1), trees);
      for (size_t r = 0; r < want.size(); ++r) {
        const float* got = r < ids.size() ? &chain[r * V] : &trees[(r - ids.size()) * V];
        ASSERT_EQ(std::memcmp(got, want[r].data(), V * sizeof(float)), 0)
            << sh.heads << " heads / " << sh.kv_heads << " kv heads, " << threads << " threads, row " << r;
      }
    }
  }
}

// Attention walks a KV head's keys in chunks (16 KB of rows: 256 keys at head_dim 16) for a
// tile of up to 8 tokens, and the cache grows by moving each head's rows. A 600-token prompt
// in one forward (75 tiles, 3 chunks for its last tokens), then a chain, then a tree and its
// compaction (keep_tokens): every row is the same bits as single-token steps on one thread
// (rollback to the prompt for each tree path).
TEST_F(CpuBackend, LongPrefixAcrossKeyChunksIsBitIdenticalToSingleTokenSteps) {
  TinyLlamaSpec spec;
  spec.context = 1024;
  const std::string file = (dir_ / "long.gguf").string();
  write_tiny_llama(file, spec);
  auto one = load_model(file, {.threads = 1});
  auto m = load_model(file, {.threads = 2});
  const int V = one->config().vocab_size;
  std::vector<int32_t> prompt(600);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % 300);
  const std::vector<int32_t> chain{5, 6, 7, 8, 9, 10, 11, 12, 13}, tree{20, 21, 22, 23, 24}, parents{-1, 0, 0, 1, -1};
  // The reference: one token a forward.
  const int r = one->create_sequence();
  std::vector<std::vector<float>> want;  // after each prompt + chain token
  std::vector<float> step;
  for (int32_t id : prompt) {
    SeqInput in{r, std::span<const int32_t>(&id, 1), {}};
    one->forward(std::span(&in, 1), step);
    want.push_back(step);
  }
  for (int32_t id : chain) {
    SeqInput in{r, std::span<const int32_t>(&id, 1), {}};
    one->forward(std::span(&in, 1), step);
    want.push_back(step);
  }
  std::vector<std::vector<float>> want_tree;  // prompt + chain + each node's path
  const int cached = static_cast<int>(prompt.size() + chain.size());
  for (int node = 0; node < int(tree.size()); ++node) {
    std::vector<int32_t> path;
    for (int a = node; a >= 0; a = parents[a]) path.insert(path.begin(), tree[a]);
    one->rollback(r, cached);
    for (int32_t id : path) {
      SeqInput in{r, std::span<const int32_t>(&id, 1), {}};
      one->forward(std::span(&in, 1), step);
    }
    want_tree.push_back(step);
  }
  // The same tokens in three forwards on two threads.
  const int s = m->create_sequence();
  std::vector<float> got;
  SeqInput p{s, prompt, {}};
  m->forward(std::span(&p, 1), got);
  for (int row : {0, 1, 255, 256, 257, 511, 512, 599})
    ASSERT_EQ(std::memcmp(&got[size_t(row) * V], want[row].data(), V * sizeof(float)), 0) << "prompt row " << row;
  SeqInput c{s, chain, {}};
  m->forward(std::span(&c, 1), got);
  for (size_t i = 0; i < chain.size(); ++i)
    ASSERT_EQ(std::memcmp(&got[i * V], want[prompt.size() + i].data(), V * sizeof(float)), 0) << "chain row " << i;
  SeqInput t{s, tree, parents};
  m->forward(std::span(&t, 1), got);
  for (size_t i = 0; i < tree.size(); ++i)
    ASSERT_EQ(std::memcmp(&got[i * V], want_tree[i].data(), V * sizeof(float)), 0) << "tree node " << i;
  // Keep the path to node 3 (tree tokens 0, 1, 3), then one more token: as if only it was fed.
  const std::vector<int32_t> keep{0, 1, 3};
  m->keep_tokens(s, cached, keep);
  const int32_t next = 42;
  SeqInput n{s, std::span<const int32_t>(&next, 1), {}};
  m->forward(std::span(&n, 1), got);
  one->rollback(r, cached);
  for (int32_t id : {tree[0], tree[1], tree[3], next}) {
    SeqInput in{r, std::span<const int32_t>(&id, 1), {}};
    one->forward(std::span(&in, 1), step);
  }
  EXPECT_EQ(std::memcmp(got.data(), step.data(), V * sizeof(float)), 0);
}

// SeqInput::logits_rows: each entry's last rows only, packed in batch order, bit-identical to
// the same rows of a full forward; 0 rows still fills the cache. forward_argmax returns the
// greedy token of exactly those rows.
TEST_F(CpuBackend, WantedRowsAndArgmaxMatchTheFullForward) {
  auto m = load_model(path());
  const int V = m->config().vocab_size;
  const std::vector<int32_t> a{256, 72, 101, 5, 6}, b{256, 8, 42}, c{256, 300, 11, 9};
  auto fresh = [&] { return std::vector<int>{m->create_sequence(), m->create_sequence(), m->create_sequence()}; };
  const auto s0 = fresh();
  std::vector<float> full;
  std::vector<SeqInput> all{{s0[0], a, {}}, {s0[1], b, {}}, {s0[2], c, {}}};
  m->forward(all, full);
  const auto s1 = fresh();
  std::vector<float> some;
  std::vector<SeqInput> wanted{{s1[0], a, {}, 2}, {s1[1], b, {}, 0}, {s1[2], c, {}, 4}};
  m->forward(wanted, some);
  ASSERT_EQ(some.size(), size_t(2 + 0 + 4) * V);
  const int rows_of_full[] = {3, 4, 8, 9, 10, 11};  // a's last 2, none of b, all of c
  for (int r = 0; r < 6; ++r)
    EXPECT_EQ(std::memcmp(&some[size_t(r) * V], &full[size_t(rows_of_full[r]) * V], V * sizeof(float)), 0) << r;
  EXPECT_EQ(m->cached_tokens(s1[1]), 3) << "no rows wanted, cache still filled";
  // The next token after b sees the cache that the 0-row forward filled.
  const int32_t next = 17;
  std::vector<float> after0, after1;
  m->forward(std::vector<SeqInput>{{s0[1], std::span(&next, 1), {}}}, after0);
  m->forward(std::vector<SeqInput>{{s1[1], std::span(&next, 1), {}}}, after1);
  EXPECT_EQ(after0, after1);
  const auto s2 = fresh();
  std::vector<int32_t> tokens;
  m->forward_argmax(std::vector<SeqInput>{{s2[0], a, {}, 2}, {s2[1], b, {}, 0}, {s2[2], c, {}, 4}}, tokens);
  ASSERT_EQ(tokens.size(), 6u);
  for (int r = 0; r < 6; ++r)
    EXPECT_EQ(tokens[r], greedy_token(std::span<const float>(&full[size_t(rows_of_full[r]) * V], V))) << r;
  std::vector<float> none;
  const auto s3 = fresh();
  EXPECT_THROW_MSG(m->forward(std::vector<SeqInput>{{s3[0], a, {}, 6}}, none),
                   "Model::forward: batch[0].logits_rows = 6: must be -1 (all) or in 0..5");
  // forward_view (the default: forward into a vector the model keeps) gives the same rows.
  const auto s4 = fresh();
  const std::span<const float> view =
      m->forward_view(std::vector<SeqInput>{{s4[0], a, {}, 2}, {s4[1], b, {}, 0}, {s4[2], c, {}, 4}});
  ASSERT_EQ(view.size(), some.size());
  EXPECT_EQ(std::memcmp(view.data(), some.data(), some.size() * sizeof(float)), 0);
  EXPECT_TRUE(m->forward_view(std::vector<SeqInput>{{s4[1], std::span(&next, 1), {}, 0}}).empty());
}

TEST_F(CpuBackend, TopKOfEveryRowMatchesRankingTheFullForward) {
  // forward_topk / forward_view_topk on the CPU backend: the same top k as spw::top_tokens on
  // each row of forward(), for a batch with wanted rows and a token tree, and the same logits.
  auto m = load_model(path());
  const int V = m->config().vocab_size;
  const std::vector<int32_t> a{256, 72, 101, 5, 6, 9, 12}, tree{256, 40, 41, 42, 43}, parents{-1, 0, 0, 1, 1};
  auto fresh = [&] { return std::vector<int>{m->create_sequence(), m->create_sequence()}; };
  const auto s0 = fresh();
  std::vector<float> full;
  m->forward(std::vector<SeqInput>{{s0[0], a, {}, 5}, {s0[1], tree, parents}}, full);
  const size_t rows = full.size() / V;
  ASSERT_EQ(rows, 10u);
  for (int k : {1, 3, kMaxTopK}) {
    std::vector<TopToken> want(rows * k), top(3, TopToken{-7, -1.f});  // (resized by the call)
    for (size_t r = 0; r < rows; ++r) top_tokens(&full[r * V], V, k, &want[r * k]);
    const auto s1 = fresh();
    m->forward_topk(std::vector<SeqInput>{{s1[0], a, {}, 5}, {s1[1], tree, parents}}, k, top);
    ASSERT_EQ(top.size(), want.size()) << k;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(top[i].token, want[i].token) << "k " << k << " entry " << i;
      EXPECT_EQ(top[i].prob, want[i].prob) << "k " << k << " entry " << i;
    }
    for (size_t r = 0; r < rows; ++r)
      EXPECT_EQ(top[r * k].token, greedy_token(std::span<const float>(&full[r * V], V))) << r;
    const auto s2 = fresh();
    std::vector<TopToken> top_view;
    const auto view = m->forward_view_topk(std::vector<SeqInput>{{s2[0], a, {}, 5}, {s2[1], tree, parents}}, k, top_view);
    ASSERT_EQ(view.size(), full.size());
    EXPECT_EQ(std::memcmp(view.data(), full.data(), full.size() * sizeof(float)), 0);
    EXPECT_EQ(top_view.size(), want.size());
    EXPECT_TRUE(std::equal(top_view.begin(), top_view.end(), top.begin(),
                           [](const TopToken& x, const TopToken& y) { return x.token == y.token && x.prob == y.prob; }));
  }
  std::vector<TopToken> top;
  const auto s3 = fresh();
  EXPECT_THROW_MSG(m->forward_topk(std::vector<SeqInput>{{s3[0], a, {}}}, kMaxTopK + 1, top),
                   fmt::format("Model::forward_topk: k = {}: must be in [1, {}]", kMaxTopK + 1, kMaxTopK));
  EXPECT_THROW_MSG(m->forward_view_topk(std::vector<SeqInput>{{s3[0], a, {}}}, 0, top),
                   "Model::forward_view_topk: k = 0: must be in [1, ");
}

TEST(GreedyToken, LowestIndexOfTheMaximumAndNaNRules) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(greedy_token(std::vector<float>{1, 3, 2, 3}), 1);
  EXPECT_EQ(greedy_token(std::vector<float>{-inf, -inf}), 0);
  EXPECT_EQ(greedy_token(std::vector<float>{1, nan, 5, nan}), 2) << "NaN never wins";
  EXPECT_EQ(greedy_token(std::vector<float>{nan, 9, 10}), 0) << "except at index 0: nothing compares greater";
  EXPECT_THROW_MSG(greedy_token(std::vector<float>{}), "greedy_token: empty logits");
}

// The vectorised greedy_token against the plain scan it replaces, on rows of every length
// around the 8-lane blocks and a vocabulary-sized one, with ties, NaNs, infinities and
// signed zeros placed at random (both before and after the maximum).
TEST(GreedyToken, EqualsTheScalarScanOnRandomRows) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  auto scan = [](const std::vector<float>& x) {
    int32_t best = 0;
    for (size_t i = 1; i < x.size(); ++i)
      if (x[i] > x[best]) best = static_cast<int32_t>(i);
    return best;
  };
  auto rng = test::make_rng(11);
  std::uniform_int_distribution<int> small(-3, 3);  // few distinct values: many ties
  std::uniform_int_distribution<int> kind(0, 19);
  std::vector<size_t> sizes;
  for (size_t n = 1; n <= 40; ++n) sizes.push_back(n);
  sizes.push_back(49152);
  sizes.push_back(49157);
  int checked = 0;
  for (size_t n : sizes)
    for (int trial = 0; trial < (n > 1000 ? 20 : 200); ++trial) {
      std::vector<float> x(n);
      for (auto& v : x) {
        const int k = kind(rng);
        v = k == 0 ? nan : k == 1 ? -inf : k == 2 ? (trial % 7 == 0 ? inf : -0.f) : float(small(rng));
      }
      ASSERT_EQ(greedy_token(x), scan(x)) << "n = " << n << ", trial " << trial;
      ++checked;
    }
  EXPECT_GT(checked, 8000);
}

TEST_F(CpuBackend, ChainEqualsSingleTokenSteps) {
  auto m = load_model(path());
  const int V = m->config().vocab_size;
  std::vector<int32_t> ids = {256, 10, 200, 33, 7, 99, 150};
  const int s = m->create_sequence();
  std::vector<float> logits;
  SeqInput in{s, ids, {}};
  m->forward(std::span(&in, 1), logits);
  ASSERT_EQ(logits.size(), ids.size() * V);
  EXPECT_EQ(m->cached_tokens(s), 7);
  for (size_t n = 1; n <= ids.size(); ++n) {
    auto single = run_single(*m, {ids.begin(), ids.begin() + n});
    EXPECT_TRUE(test::close_to(row(logits, int(n) - 1, V), as_double(single), kTol)) << n;
  }
}

TEST_F(CpuBackend, TreeEqualsEachPathAlone) {
  auto m = load_model(path());
  const int V = m->config().vocab_size;
  const std::vector<int32_t> prefix = {256, 72, 101};
  //        0(5) - 1(6) - 3(8)
  //     /        \ 2(7)
  //  4(9) - 5(10)
  const std::vector<int32_t> tokens = {5, 6, 7, 8, 9, 10};
  const std::vector<int32_t> parents = {-1, 0, 1, 1, -1, 4};
  const int s = m->create_sequence();
  std::vector<float> logits;
  SeqInput pre{s, prefix, {}};
  m->forward(std::span(&pre, 1), logits);
  SeqInput tree{s, tokens, parents};
  m->forward(std::span(&tree, 1), logits);
  EXPECT_EQ(m->cached_tokens(s), 9);
  for (int node = 0; node < 6; ++node) {
    std::vector<int32_t> path;
    for (int a = node; a >= 0; a = parents[a]) path.insert(path.begin(), tokens[a]);
    path.insert(path.begin(), prefix.begin(), prefix.end());
    EXPECT_TRUE(test::close_to(row(logits, node, V), as_double(run_single(*m, path)), kTol)) << node;
  }
  // Keep the path 0 -> 1 -> 3, then continue: same as a fresh run of that path.
  const std::vector<int32_t> keep = {0, 1, 3};
  m->keep_tokens(s, 3, keep);
  EXPECT_EQ(m->cached_tokens(s), 6);
  int32_t next = 42;
  SeqInput cont{s, std::span<const int32_t>(&next, 1), {}};
  m->forward(std::span(&cont, 1), logits);
  EXPECT_TRUE(test::close_to(logits, as_double(run_single(*m, {256, 72, 101, 5, 6, 8, 42})), kTol));
}

TEST_F(CpuBackend, RollbackThenContinueEqualsFreshRun) {
  auto m = load_model(path());
  const int s = m->create_sequence();
  std::vector<float> logits;
  std::vector<int32_t> ids = {256, 1, 2, 3, 4, 5};
  SeqInput in{s, ids, {}};
  m->forward(std::span(&in, 1), logits);
  m->rollback(s, 3);
  EXPECT_EQ(m->cached_tokens(s), 3);
  std::vector<int32_t> more = {77, 78};
  SeqInput in2{s, more, {}};
  m->forward(std::span(&in2, 1), logits);
  const int V = m->config().vocab_size;
  EXPECT_TRUE(test::close_to(row(logits, 1, V), as_double(run_single(*m, {256, 1, 2, 77, 78})), kTol));
  m->rollback(s, 0);  // the whole sequence: as if fresh
  EXPECT_EQ(m->cached_tokens(s), 0);
  m->forward(std::span(&in2, 1), logits);
  EXPECT_TRUE(test::close_to(row(logits, 1, V), as_double(run_single(*m, {77, 78})), kTol));
}

TEST_F(CpuBackend, BatchEqualsSeparateRuns) {
  auto m = load_model(path());
  const int V = m->config().vocab_size;
  const int a = m->create_sequence(), b = m->create_sequence();
  std::vector<int32_t> ta = {256, 3, 4}, tb = {256, 9};
  std::vector<int32_t> pb = {-1, 0};
  std::vector<SeqInput> batch = {{a, ta, {}}, {b, tb, pb}};
  std::vector<float> logits;
  m->forward(batch, logits);
  ASSERT_EQ(logits.size(), 5u * V);
  EXPECT_TRUE(test::close_to(row(logits, 2, V), as_double(run_single(*m, ta)), kTol));
  EXPECT_TRUE(test::close_to(row(logits, 4, V), as_double(run_single(*m, tb)), kTol));
}

TEST_F(CpuBackend, BadInputRejectedByName) {
  auto m = load_model(path());
  std::vector<float> logits;
  std::vector<int32_t> ok = {1, 2};
  SeqInput ghost{99, ok, {}};
  EXPECT_THROW_MSG(m->forward(std::span(&ghost, 1), logits), "seq_id = 99: no such sequence");
  const int s = m->create_sequence();
  std::vector<int32_t> bad = {1, 320};
  SeqInput in{s, bad, {}};
  EXPECT_THROW_MSG(m->forward(std::span(&in, 1), logits), "batch[0].tokens[1] = 320: must be in 0..319");
  std::vector<int32_t> parents = {-1, 1};
  SeqInput tree{s, ok, parents};
  EXPECT_THROW_MSG(m->forward(std::span(&tree, 1), logits), "batch[0].parents[1] = 1");
  std::vector<int32_t> short_parents = {-1};
  SeqInput tree2{s, ok, short_parents};
  EXPECT_THROW_MSG(m->forward(std::span(&tree2, 1), logits), "parents.size()");
  std::vector<int32_t> none;
  SeqInput empty{s, none, {}};
  EXPECT_THROW_MSG(m->forward(std::span(&empty, 1), logits), "tokens.size() = 0");
  std::vector<int32_t> many(65, 1);
  SeqInput too_long{s, many, {}};
  EXPECT_THROW_MSG(m->forward(std::span(&too_long, 1), logits), "exceed the context limit 64");
  EXPECT_EQ(m->cached_tokens(s), 0);  // nothing was appended by the failed calls
  std::vector<SeqInput> twice = {{s, ok, {}}, {s, ok, {}}};
  EXPECT_THROW_MSG(m->forward(twice, logits), "appears twice");
  EXPECT_THROW_MSG(m->rollback(s, 1), "new_len = 1: must be in 0..0");
  SeqInput two{s, ok, {}};
  m->forward(std::span(&two, 1), logits);
  std::vector<int32_t> unsorted = {1, 0};
  EXPECT_THROW_MSG(m->keep_tokens(s, 0, unsorted), "strictly increasing");
  std::vector<int32_t> past = {5};
  EXPECT_THROW_MSG(m->keep_tokens(s, 0, past), "offsets[0] = 5");
  EXPECT_THROW_MSG(load_model(path(), {.backend = "tpu"}), "backend = tpu");
  EXPECT_THROW_MSG(load_model(path(), {.max_layers = 3}), "max_layers = 3: must be in 1..2");
  EXPECT_THROW_MSG(load_model(path(), {.max_tokens = -1}), "max_tokens = -1: must be >= 0");
  EXPECT_THROW_MSG(load_model(path(), {.threads = -2}), "threads = -2: must be >= 0 (0: all hardware threads)");
  EXPECT_THROW_MSG(load_model((dir_ / "absent.gguf").string()), "cannot open");
}

TEST(CpuBackendSmolLM2, GreedyContinuationIsFluent) {
  const std::string model = std::string(SPW_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " is absent (tools/fetch_model.sh fetches it)";
  auto m = load_model(model);
  // "The capital of France is": tokens 'The', 'Ġcapital', 'Ġof', 'ĠFrance', 'Ġis' of the
  // model's own vocabulary (tokenizer.ggml.tokens).
  std::vector<int32_t> ids = {504, 3575, 282, 4649, 314};
  const int s = m->create_sequence();
  std::vector<float> logits;
  const int V = m->config().vocab_size;
  std::vector<int32_t> generated;
  for (int step = 0; step < 3; ++step) {
    SeqInput in{s, ids, {}};
    m->forward(std::span(&in, 1), logits);
    const float* last = logits.data() + logits.size() - V;
    generated.push_back(static_cast<int32_t>(std::max_element(last, last + V) - last));
    ids = {generated.back()};
  }
  // " Paris", ".", "\n" (ids 7042, 30, 198); the NumPy reference agrees on these logits.
  EXPECT_EQ(generated, (std::vector<int32_t>{7042, 30, 198}));
}

}  // namespace

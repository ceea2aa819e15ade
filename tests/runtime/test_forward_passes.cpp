// Host half of the CUDA backend, on the CPU: the forward-batch validation (same checks and
// messages as the CPU backend), the split of a batch into passes (pass / piece limits, long
// chains over several passes, trees whole), positions and parents of the pieces, and the
// CUDA backend's option / shape / weight checks and its "no GPU" / "no CUDA" errors.
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "runtime/cuda_backend.h"
#include "runtime/forward_passes.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/model_loader.h"
#include "tests/common/helpers.h"

using namespace spw;
using namespace spw::rt;

namespace {

// Sequences 0..3 exist with the given cached lengths; any other id is unknown.
std::function<int(int)> cache_of(std::map<int, int> lens) {
  return [lens](int id) {
    auto it = lens.find(id);
    SPW_CHECK(it != lens.end(), "Model::forward: seq_id = {}: no such sequence", id);
    return it->second;
  };
}

const ForwardLimits kLimits{320, 64, 256, 128};

TEST(ForwardPasses, RejectsBadBatchesLikeTheCpuBackend) {
  auto cached = cache_of({{0, 0}, {1, 60}});
  std::vector<int32_t> ok = {1, 2};
  auto check = [&](std::vector<SeqInput> batch, const std::string& msg) {
    EXPECT_THROW_MSG(plan_forward_passes(batch, cached, kLimits), msg);
  };
  check({}, "Model::forward: batch is empty");
  check({{0, ok, {}, 3}}, "Model::forward: batch[0].logits_rows = 3: must be -1 (all) or in 0..2");
  check({{0, ok, {}, -2}}, "batch[0].logits_rows = -2");
  check({{99, ok, {}}}, "seq_id = 99: no such sequence");
  std::vector<int32_t> bad = {1, 320};
  check({{0, bad, {}}}, "Model::forward: batch[0].tokens[1] = 320: must be in 0..319");
  std::vector<int32_t> negative = {-5};
  check({{0, negative, {}}}, "batch[0].tokens[0] = -5");
  std::vector<int32_t> parents = {-1, 1};
  check({{0, ok, parents}}, "Model::forward: batch[0].parents[1] = 1: must be -1 or the index of an earlier token");
  std::vector<int32_t> low = {-2, 0};
  check({{0, ok, low}}, "batch[0].parents[0] = -2");
  std::vector<int32_t> short_parents = {-1};
  check({{0, ok, short_parents}}, "Model::forward: batch[0].parents.size() = 1: must be 0 or 2");
  std::vector<int32_t> none;
  check({{0, none, {}}}, "Model::forward: batch[0].tokens.size() = 0: must be >= 1");
  std::vector<int32_t> five(5, 1);
  check({{1, five, {}}}, "Model::forward: sequence 1 holds 60 tokens; 5 more exceed the context limit 64");
  check({{0, ok, {}}, {0, ok, {}}}, "Model::forward: seq_id 0 appears twice in one batch");
  check({{0, ok, {}}, {1, bad, {}}}, "batch[1].tokens[1] = 320");
  // The CUDA backend's own limit: a tree must fit one pass and tree_attention's 128 tokens.
  ForwardLimits big = kLimits;
  big.max_tokens = 1000;
  std::vector<int32_t> tree_tokens(129, 3), tree_parents(129);
  for (int i = 0; i < 129; ++i) tree_parents[i] = i - 1;
  std::vector<SeqInput> tree = {{0, tree_tokens, tree_parents}};
  EXPECT_THROW_MSG(plan_forward_passes(tree, cached, big),
                   "Model::forward: batch[0].parents.size() = 129: a token tree may have at most 128 tokens");
  big.max_pass_tokens = 16;
  std::vector<int32_t> t17(17, 3), p17(17, -1);
  std::vector<SeqInput> tree17 = {{0, t17, p17}};
  EXPECT_THROW_MSG(plan_forward_passes(tree17, cached, big), "at most 16 tokens");
  // ... while a chain of any length is split.
  std::vector<SeqInput> chain = {{0, tree_tokens, {}}};
  EXPECT_NO_THROW(plan_forward_passes(chain, cached, big));
}

// Every token of every entry is covered once, in order, each pass within its limits, each
// sequence at most once per pass, and a later piece of a chain sees the earlier ones as prefix.
// Output rows: exactly the wanted tokens (each entry's last logits_rows) have rows, packed in
// batch order.
void expect_valid(const ForwardPasses& fp, std::span<const SeqInput> batch, const ForwardLimits& lim) {
  std::vector<int> next(batch.size(), 0), row(batch.size());
  int total = 0, rows = 0, covered = 0;
  for (size_t b = 0; b < batch.size(); ++b) {
    row[b] = rows;
    total += static_cast<int>(batch[b].tokens.size());
    rows += wanted_rows(batch[b]);
  }
  ASSERT_EQ(fp.total_tokens, total);
  ASSERT_EQ(fp.total_rows, rows);
  for (const auto& pass : fp.passes) {
    ASSERT_FALSE(pass.empty());
    int tokens = 0;
    std::set<int> seen;
    for (const PassPiece& p : pass) {
      tokens += p.count;
      EXPECT_TRUE(seen.insert(p.seq_id).second) << "sequence twice in a pass";
      EXPECT_EQ(p.seq_id, batch[p.batch_index].seq_id);
      EXPECT_EQ(p.first, next[p.batch_index]);
      EXPECT_EQ(p.prefix, fp.cached[p.batch_index] + p.first);
      const int n = static_cast<int>(batch[p.batch_index].tokens.size());
      const int from = n - wanted_rows(batch[p.batch_index]);
      for (int j = p.first; j < p.first + p.count; ++j)
        EXPECT_EQ(j >= from, j - p.first >= p.out_first && j - p.first < p.out_first + p.out_count)
            << "token " << j << " of entry " << p.batch_index;
      if (p.out_count > 0) {
        EXPECT_EQ(p.out_row, row[p.batch_index] + p.first + p.out_first - from);
      }
      covered += p.out_count;
      EXPECT_EQ(p.tree, !batch[p.batch_index].parents.empty());
      if (p.tree) {
        EXPECT_EQ(p.count, static_cast<int>(batch[p.batch_index].tokens.size()));
      }
      EXPECT_LE(p.count, lim.max_piece_tokens);
      next[p.batch_index] += p.count;
    }
    EXPECT_LE(tokens, lim.max_pass_tokens);
  }
  EXPECT_EQ(covered, rows);
  for (size_t b = 0; b < batch.size(); ++b) EXPECT_EQ(next[b], static_cast<int>(batch[b].tokens.size()));
}

TEST(ForwardPasses, LongChainTakesSeveralPasses) {
  std::vector<int32_t> prompt(300, 7);
  std::vector<SeqInput> batch = {{2, prompt, {}}};
  ForwardLimits lim{320, 4096, 256, 128};
  auto fp = plan_forward_passes(batch, cache_of({{2, 10}}), lim);
  ASSERT_EQ(fp.passes.size(), 3u);
  EXPECT_EQ(fp.passes[0][0].count, 128);
  EXPECT_EQ(fp.passes[1][0].count, 128);
  EXPECT_EQ(fp.passes[2][0].count, 44);
  EXPECT_EQ(fp.passes[2][0].prefix, 10 + 256);
  EXPECT_EQ(fp.cached, std::vector<int>{10});
  expect_valid(fp, batch, lim);
  lim.max_pass_tokens = 32;
  fp = plan_forward_passes(batch, cache_of({{2, 10}}), lim);
  EXPECT_EQ(fp.passes.size(), 10u);
  expect_valid(fp, batch, lim);
}

TEST(ForwardPasses, DecodeBatchIsOnePassAndTreesWaitForRoom) {
  std::vector<int32_t> one = {5};
  std::vector<SeqInput> decode = {{0, one, {}}, {1, one, {}}, {2, one, {}}};
  auto cached = cache_of({{0, 3}, {1, 0}, {2, 17}});
  auto fp = plan_forward_passes(decode, cached, kLimits);
  ASSERT_EQ(fp.passes.size(), 1u);
  EXPECT_EQ(fp.passes[0].size(), 3u);
  expect_valid(fp, decode, kLimits);

  std::vector<int32_t> chain(5, 1), tree(6, 2), tree_parents = {-1, 0, 1, 1, -1, 4};
  std::vector<SeqInput> mixed = {{0, chain, {}}, {1, tree, tree_parents}, {2, one, {}}};
  ForwardLimits lim{320, 64, 8, 128};
  fp = plan_forward_passes(mixed, cached, lim);
  // Pass 1: the chain's 5 tokens and the single token (the tree does not fit the 2 left);
  // pass 2: the tree.
  ASSERT_EQ(fp.passes.size(), 2u);
  ASSERT_EQ(fp.passes[0].size(), 2u);
  EXPECT_EQ(fp.passes[0][0].batch_index, 0);
  EXPECT_EQ(fp.passes[0][1].batch_index, 2);
  EXPECT_EQ(fp.passes[0][1].out_row, 11);
  ASSERT_EQ(fp.passes[1].size(), 1u);
  EXPECT_TRUE(fp.passes[1][0].tree);
  expect_valid(fp, mixed, lim);
}

TEST(ForwardPasses, RandomBatchesAreCoveredWithinLimits) {
  std::mt19937 rng(3);
  for (int round = 0; round < 300; ++round) {
    const int n = 1 + rng() % 6;
    std::vector<std::vector<int32_t>> toks(n), pars(n);
    std::map<int, int> lens;
    std::vector<SeqInput> batch;
    ForwardLimits lim{320, 4096, 1 + static_cast<int>(rng() % 300), 1 + static_cast<int>(rng() % 128)};
    for (int b = 0; b < n; ++b) {
      const bool tree = rng() % 3 == 0;
      const int max_len = tree ? std::min(lim.max_pass_tokens, lim.max_piece_tokens) : 400;
      const int len = 1 + rng() % max_len;
      toks[b].assign(len, static_cast<int32_t>(rng() % 320));
      if (tree)
        for (int i = 0; i < len; ++i) pars[b].push_back(static_cast<int32_t>(rng() % (i + 1)) - 1);
      lens[10 + b] = rng() % 100;
      // logits rows: all (-1), none, or the last few
      const int mode = static_cast<int>(rng() % 3);
      const int want = mode == 0 ? -1 : mode == 1 ? 0 : static_cast<int>(rng() % (len + 1));
      batch.push_back({10 + b, toks[b], pars[b], want});
    }
    auto fp = plan_forward_passes(batch, cache_of(lens), lim);
    expect_valid(fp, batch, lim);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(ForwardPasses, PiecePositionsAndParents) {
  std::vector<int32_t> tokens(6, 1), parents = {-1, 0, 1, 1, -1, 4};
  SeqInput tree{0, tokens, parents};
  PassPiece p;
  p.count = 6;
  p.prefix = 3;
  p.tree = true;
  std::vector<int32_t> pos, par;
  piece_positions(p, tree, pos, par);
  EXPECT_EQ(pos, (std::vector<int32_t>{3, 4, 5, 5, 3, 4}));
  EXPECT_EQ(par, parents);
  SeqInput chain{0, tokens, {}};
  PassPiece c;
  c.first = 2;
  c.count = 3;
  c.prefix = 12;
  piece_positions(c, chain, pos, par);  // appends
  EXPECT_EQ(pos, (std::vector<int32_t>{3, 4, 5, 5, 3, 4, 12, 13, 14}));
  EXPECT_EQ(std::vector<int32_t>(par.begin() + 6, par.end()), (std::vector<int32_t>{-1, 0, 1}));
}

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 320;
  c.hidden = 256;
  c.intermediate = 512;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_context = 512;
  return c;
}

// token_attention_table: each token's list, expanded to pool rows, must be exactly the rows of
// the KV it sees in position order (its sequence's prefix, its ancestors, itself), whichever
// granularity the pass uses.
namespace {
struct TableCase {
  std::vector<PassPiece> pass;
  std::vector<int32_t> parents;
};
// Expected rows of every token, built from book.row() and the parents (independent of the code).
std::vector<std::vector<int64_t>> expected_rows(const TableCase& c, const PagedKvBook& book) {
  std::vector<std::vector<int64_t>> out;
  size_t t0 = 0;
  for (const PassPiece& p : c.pass) {
    for (int j = 0; j < p.count; ++j) {
      std::vector<int64_t> rows;
      for (int i = 0; i < p.prefix; ++i) rows.push_back(book.row(p.seq_id, i));
      std::vector<int64_t> path;
      for (int a = j; a >= 0; a = c.parents[t0 + a]) path.push_back(book.row(p.seq_id, p.prefix + a));
      rows.insert(rows.end(), path.rbegin(), path.rend());
      out.push_back(rows);
    }
    t0 += p.count;
  }
  return out;
}
void expect_table(const TableCase& c, const PagedKvBook& book, int want_page_size, const std::string& what) {
  TokenAttentionTable t;
  t.table.indices.assign(5, -7);  // stale content from an earlier pass must not leak
  token_attention_table(c.pass, c.parents, book, t);
  EXPECT_EQ(t.page_size, want_page_size) << what;
  const auto want = expected_rows(c, book);
  ASSERT_EQ(t.kv_lens.size(), want.size()) << what;
  ASSERT_EQ(t.table.indptr.size(), want.size() + 1) << what;
  ASSERT_EQ(t.table.last_page_len.size(), want.size()) << what;
  ASSERT_EQ(t.extends_previous.size(), want.size()) << what;
  EXPECT_EQ(t.table.indptr.front(), 0) << what;
  EXPECT_EQ(static_cast<size_t>(t.table.indptr.back()), t.table.indices.size()) << what;
  const int P = t.page_size;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(t.kv_lens[i], static_cast<int>(want[i].size())) << what << " token " << i;
    const int pages = t.table.indptr[i + 1] - t.table.indptr[i];
    ASSERT_EQ(pages, (t.kv_lens[i] + P - 1) / P) << what << " token " << i;
    EXPECT_EQ(t.table.last_page_len[i], t.kv_lens[i] - (pages - 1) * P) << what << " token " << i;
    std::vector<int64_t> rows;
    for (int j = 0; j < t.kv_lens[i]; ++j) rows.push_back(int64_t(t.table.indices[t.table.indptr[i] + j / P]) * P + j % P);
    EXPECT_EQ(rows, want[i]) << what << " token " << i;
    // extends_previous exactly where the token's rows are its predecessor's plus one more
    std::vector<int64_t> grown = i > 0 ? want[i - 1] : std::vector<int64_t>{};
    if (!want[i].empty()) grown.push_back(want[i].back());
    EXPECT_EQ(t.extends_previous[i] != 0, i > 0 && grown == want[i] && want[i].size() == want[i - 1].size() + 1)
        << what << " token " << i;
  }
}
}  // namespace

TEST(ForwardPasses, TokenAttentionTableListsWhatEachTokenSees) {
  PagedKvBook book(64, 4, 100);
  const int s0 = book.create(), s1 = book.create(), s2 = book.create();
  // Interleaved appends so that the sequences' pages are not in order.
  for (int r = 0; r < 3; ++r) {
    book.append(s1, 3);
    book.append(s0, 5);
    book.append(s2, 2);
  }
  // s0: 10 cached + 5 new (chain); s1: 3 cached + 6 new; s2: 6 cached, no new tokens here.
  PassPiece a{0, s0, 0, 5, 10};
  PassPiece b{1, s1, 0, 6, 3};
  PassPiece d{2, s2, 0, 1, 5};  // a decode step: 5 cached + its own token
  expect_table({{a, d}, {-1, 0, 1, 2, 3, -1}}, book, 4, "chains");
  expect_table({{d}, {-1}}, book, 4, "one decode token");
  // s1's six new tokens as a tree: 0 - 1 - 3, 0 - 2, 4 - 5 (two roots).
  TableCase tree{{b}, {-1, 0, 0, 1, -1, 4}};
  tree.pass[0].tree = true;
  expect_table(tree, book, 1, "tree");
  // A tree beside a chain: the whole pass in rows.
  tree.pass.insert(tree.pass.begin(), a);
  tree.parents.insert(tree.parents.begin(), {-1, 0, 1, 2, 3});
  expect_table(tree, book, 1, "chain and tree");
  // A first piece with no prefix.
  PassPiece e{0, s2, 0, 6, 0};
  expect_table({{e}, {-1, 0, 1, 2, 3, 4}}, book, 4, "prefill from 0");
  TokenAttentionTable t;
  EXPECT_THROW_MSG(token_attention_table(std::vector<PassPiece>{a}, std::vector<int32_t>{-1, 0}, book, t),
                   "token_attention_table: parents.size() = 2: must equal the pass's tokens (5)");
}

TEST(CudaBackendHost, OptionAndShapeChecksNameTheArgument) {
  const ModelConfig c = small_config();
  EXPECT_NO_THROW(check_cuda_backend(c, {}, "t"));
  EXPECT_NO_THROW(check_cuda_backend(llama2_7b_config(), {}, "t"));
  auto bad_opt = [&](CudaBackendOptions o, const std::string& msg) {
    EXPECT_THROW_MSG(check_cuda_backend(c, o, "make_cuda_model"), msg);
  };
  bad_opt({.dtype = DType::f32}, "make_cuda_model: options.dtype = fp32: must be fp16 or bf16");
  bad_opt({.device = -1}, "options.device = -1");
  bad_opt({.max_tokens = -2}, "options.max_tokens = -2");
  bad_opt({.page_size = 0}, "options.page_size = 0: must be in 1..1024");
  bad_opt({.kv_cache_bytes = -1}, "options.kv_cache_bytes = -1");
  bad_opt({.max_forward_tokens = 0}, "options.max_forward_tokens = 0: must be >= 1");
  bad_opt({.cuda_graph_tokens = -1}, "options.cuda_graph_tokens = -1: must be >= 0 (0: no CUDA graphs)");
  EXPECT_NO_THROW(check_cuda_backend(c, {.cuda_graph_tokens = 0}, "t"));
  auto bad_shape = [&](auto edit, const std::string& msg) {
    ModelConfig x = c;
    edit(x);
    EXPECT_THROW_MSG(check_cuda_backend(x, {}, "make_cuda_model"), msg);
  };
  bad_shape([](ModelConfig& x) { x.head_dim = 16; }, "config.head_dim = 16: must be 64, 128 or 256");
  bad_shape([](ModelConfig& x) { x.hidden = 260; }, "config.hidden = 260");
  bad_shape([](ModelConfig& x) { x.intermediate = 100; }, "config.intermediate = 100");
  bad_shape([](ModelConfig& x) { x.num_kv_heads = 3; }, "config.num_kv_heads = 3: must divide num_heads = 4");
  bad_shape([](ModelConfig& x) { x.vocab_size = 0; }, "config.vocab_size = 0");
  bad_shape([](ModelConfig& x) { x.num_layers = 0; }, "config.num_layers = 0");
  const ModelConfig l = llama2_7b_config();
  EXPECT_EQ(l.hidden, 4096);
  EXPECT_EQ(l.intermediate, 11008);
  EXPECT_EQ(l.num_layers, 32);
  EXPECT_EQ(l.vocab_size, 32000);
  EXPECT_EQ(l.num_heads * l.head_dim, l.hidden);
}

class CudaBackendHostModels : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("spw_cuda_host_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    TinyLlamaSpec s;  // head_dim 16: outside the attention kernels
    write_tiny_llama((dir_ / "hd16.gguf").string(), s);
    s.hidden = 256;
    s.intermediate = 512;
    s.context = 128;  // head_dim 64
    write_tiny_llama((dir_ / "hd64.gguf").string(), s);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static inline std::filesystem::path dir_;
};

TEST_F(CudaBackendHostModels, WeightShapesAreChecked) {
  LlamaWeights w = load_llama_weights(GgufFile::open((dir_ / "hd64.gguf").string()));
  EXPECT_NO_THROW(check_cuda_weights(w, {}, "make_cuda_model"));
  LlamaWeights fewer = w;
  fewer.layers.pop_back();
  EXPECT_THROW_MSG(check_cuda_weights(fewer, {}, "make_cuda_model"),
                   "make_cuda_model: weights.layers.size() = 1: must equal config.num_layers = 2");
  LlamaWeights wrong = w;
  wrong.layers[1].wk.rows = 64;
  EXPECT_THROW_MSG(check_cuda_weights(wrong, {}, "make_cuda_model"), "weights.layers[1].wk = [64, 256]");
  LlamaWeights bias = w;
  bias.layers[0].wq.bias.assign(3, 0.f);
  EXPECT_THROW_MSG(check_cuda_weights(bias, {}, "make_cuda_model"), "weights.layers[0].wq.bias.size() = 3: must be 0 or 256");
  LlamaWeights embd = w;
  embd.token_embd.data.pop_back();
  EXPECT_THROW_MSG(check_cuda_weights(embd, {}, "make_cuda_model"),
                   fmt::format("weights.token_embd.data.size() = {}: must be {}", w.token_embd.data.size() - 1,
                               w.token_embd.data.size()));
  LlamaWeights type = w;
  type.layers[0].wq.type = 999;
  EXPECT_THROW_MSG(check_cuda_weights(type, {}, "make_cuda_model"), "weights.layers[0].wq.type = 999: must be a supported");
  LlamaWeights tied = w;
  tied.output = tied.token_embd;
  EXPECT_THROW_MSG(check_cuda_weights(tied, {}, "make_cuda_model"),
                   "weights.output.data.size() = " + std::to_string(w.token_embd.data.size()) + ": must be 0");
}

TEST_F(CudaBackendHostModels, CudaBackendWithoutGpuSaysWhy) {
  // Shape errors come first, GPU or not (the default tiny model has head_dim 16).
  EXPECT_THROW_MSG(load_model((dir_ / "hd16.gguf").string(), {.backend = "cuda"}),
                   "load_model: config.head_dim = 16: must be 64, 128 or 256");
  if (!gpu_unavailable_reason()) GTEST_SKIP() << "a GPU is present: the no-GPU errors cannot be observed here";
  const std::string why = SPW_HAVE_CUDA ? "the CUDA backend cannot run: no usable CUDA device" : "built without CUDA";
  EXPECT_THROW_MSG(load_model((dir_ / "hd64.gguf").string(), {.backend = "cuda"}), why);
  EXPECT_THROW_MSG(make_cuda_model_random(small_config(), 1), why);
  EXPECT_THROW_MSG(make_cuda_model_random(small_config(), 1, {.page_size = 0}), "options.page_size = 0");
}

}  // namespace

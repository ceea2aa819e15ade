// Tree-attention CPU tests: the fp64 reference against an independent naive softmax (prefix +
// ancestors found by walking the parent array) on random trees, deep chains, wide stars and
// T = 1 with prefixes of 0 and non-multiples of the page size; T = 1 equals the decode-attention
// reference; a chain equals causal attention; depths / positions / masks; bad arguments; C ABI
// error path.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "kernels/tree_attention/c_api.h"
#include "kernels/tree_attention/mma_shape.h"
#include "kernels/tree_attention/reference.h"
#include "kernels/tree_attention/tree_attention.h"
#include "tests/common/helpers.h"
#include "tests/tree_attention/tree_attention_cases.h"

using namespace spw;
using namespace spw::tree_attention;
using namespace spw::tree_attention::test_cases;

namespace {
// Independent naive attention: keys = prefix rows (through the page table) + the ancestors found
// by walking the parent array + self.
decode_attention::reference::Result naive(const Case& c) {
  const Problem& p = c.p;
  const int d = p.head_dim, g = p.qo_heads / p.kv_heads;
  const double scale = p.sm_scale > 0 ? p.sm_scale : 1.0 / std::sqrt(double(d));
  const int total = static_cast<int>(c.parents.size());
  decode_attention::reference::Result r{std::vector<double>(size_t(total) * p.qo_heads * d, 0.0),
                                        std::vector<double>(size_t(total) * p.qo_heads)};
  int base = 0;
  for (int b = 0; b < p.batch; ++b) {
    for (int i = 0; i < c.tree_sizes[b]; ++i) {
      const int t = base + i;
      for (int h = 0; h < p.qo_heads; ++h) {
        const int kh = h / g;
        std::vector<const float*> ks, vs;
        for (int j = 0; j < c.prefix_lens[b]; ++j) {
          const int page = c.indices[c.indptr[b] + j / p.page_size];
          const size_t off = ((size_t(page) * p.page_size + j % p.page_size) * p.kv_heads + kh) * d;
          ks.push_back(&c.k_pages[off]);
          vs.push_back(&c.v_pages[off]);
        }
        for (int a = i; a >= 0; a = c.parents[base + a]) {
          const size_t off = (size_t(base + a) * p.kv_heads + kh) * d;
          ks.push_back(&c.k_tree[off]);
          vs.push_back(&c.v_tree[off]);
        }
        std::vector<double> s(ks.size());
        double m = -INFINITY;
        for (size_t j = 0; j < ks.size(); ++j) {
          double dot = 0;
          for (int e = 0; e < d; ++e) dot += double(c.q[(size_t(t) * p.qo_heads + h) * d + e]) * ks[j][e];
          s[j] = p.soft_cap > 0 ? p.soft_cap * std::tanh(dot * scale / p.soft_cap) : dot * scale;
          m = std::max(m, s[j]);
        }
        double sum = 0;
        for (double x : s) sum += std::exp(x - m);
        for (size_t j = 0; j < ks.size(); ++j)
          for (int e = 0; e < d; ++e)
            r.o[(size_t(t) * p.qo_heads + h) * d + e] += std::exp(s[j] - m) / sum * vs[j][e];
        r.lse[size_t(t) * p.qo_heads + h] = m + std::log(sum);
      }
    }
    base += c.tree_sizes[b];
  }
  return r;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(a[i] - b[i]));
  return w;
}

}  // namespace

TEST(TreeAttentionReference, MatchesNaiveOnRandomTreesChainsStarsAndSingleTokens) {
  auto rng = test::make_rng();
  for (auto [qo, kv, d] : {std::tuple{4, 1, 64}, std::tuple{8, 2, 128}, std::tuple{2, 2, 64}}) {
    Problem p = small_problem(qo, kv, d, 16);
    p.batch = 5;
    Case c = make_case(rng, p, {0, 1, 37, 16, 133},
                       {random_tree(rng, 23), chain(17), star(12), {-1}, random_tree(rng, 128)});
    const Plan pl = plan_of(c);
    const auto ref = reference::attention(pl, inputs(c));
    const auto nv = naive(c);
    EXPECT_LT(max_diff(ref.o, nv.o), 1e-12) << "qo " << qo << " kv " << kv << " d " << d;
    EXPECT_LT(max_diff(ref.lse, nv.lse), 1e-12);
  }
}

TEST(TreeAttentionReference, SoftCapAndScale) {
  auto rng = test::make_rng();
  Problem p = small_problem(4, 2, 64, 8);
  p.batch = 2;
  p.sm_scale = 0.3f;
  p.soft_cap = 5.f;
  Case c = make_case(rng, p, {50, 3}, {random_tree(rng, 9), random_tree(rng, 4)});
  const auto ref = reference::attention(plan_of(c), inputs(c));
  const auto nv = naive(c);
  EXPECT_LT(max_diff(ref.o, nv.o), 1e-12);
  EXPECT_LT(max_diff(ref.lse, nv.lse), 1e-12);
}

TEST(TreeAttentionReference, SingleTokenEqualsDecodeAttention) {
  auto rng = test::make_rng();
  Problem p = small_problem(8, 2, 128, 16);
  p.batch = 3;
  Case c = make_case(rng, p, {0, 45, 300}, {{-1}, {-1}, {-1}});
  const auto ref = reference::attention(plan_of(c), inputs(c));
  // Decode attention over a contiguous cache holding the prefix followed by the token's own K/V.
  decode_attention::Problem dp = prefix_problem(p);
  dp.layout = decode_attention::Layout::contiguous;
  dp.kv_len_max = 301;
  const int d = p.head_dim;
  std::vector<float> k(size_t(p.batch) * dp.kv_len_max * p.kv_heads * d), v(k.size());
  std::vector<int32_t> lens;
  for (int b = 0; b < p.batch; ++b) {
    const int len = c.prefix_lens[b];
    for (int j = 0; j <= len; ++j)
      for (int h = 0; h < p.kv_heads; ++h) {
        const float *ks, *vs;
        if (j < len) {
          const int page = c.indices[c.indptr[b] + j / p.page_size];
          const size_t off = ((size_t(page) * p.page_size + j % p.page_size) * p.kv_heads + h) * d;
          ks = &c.k_pages[off];
          vs = &c.v_pages[off];
        } else {
          ks = &c.k_tree[(size_t(b) * p.kv_heads + h) * d];
          vs = &c.v_tree[(size_t(b) * p.kv_heads + h) * d];
        }
        const size_t dst = ((size_t(b) * dp.kv_len_max + j) * p.kv_heads + h) * d;
        std::copy(ks, ks + d, k.begin() + dst);
        std::copy(vs, vs + d, v.begin() + dst);
      }
    lens.push_back(len + 1);
  }
  decode_attention::reference::KvCache kvc;
  kvc.k = k;
  kvc.v = v;
  const auto dec = decode_attention::reference::attention(dp, lens, c.q, kvc, 64);
  EXPECT_LT(max_diff(ref.o, dec.o), 1e-12);
  EXPECT_LT(max_diff(ref.lse, dec.lse), 1e-12);
}

TEST(TreeAttentionReference, ChainEqualsCausalAttentionOverTheDraft) {
  auto rng = test::make_rng();
  Problem p = small_problem(4, 4, 64, 16);
  p.batch = 1;
  const int T = 33;
  Case c = make_case(rng, p, {0}, {chain(T)});
  const auto ref = reference::attention(plan_of(c), inputs(c));
  const int d = p.head_dim;
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < p.qo_heads; ++h) {
      std::vector<double> s(t + 1);
      double sum = 0;
      for (int j = 0; j <= t; ++j) {
        double dot = 0;
        for (int e = 0; e < d; ++e)
          dot += double(c.q[(size_t(t) * p.qo_heads + h) * d + e]) * c.k_tree[(size_t(j) * p.kv_heads + h) * d + e];
        s[j] = dot / std::sqrt(double(d));
        sum += std::exp(s[j]);
      }
      for (int e = 0; e < d; ++e) {
        double o = 0;
        for (int j = 0; j <= t; ++j) o += std::exp(s[j]) / sum * c.v_tree[(size_t(j) * p.kv_heads + h) * d + e];
        EXPECT_NEAR(ref.o[(size_t(t) * p.qo_heads + h) * d + e], o, 1e-12);
      }
      EXPECT_NEAR(ref.lse[size_t(t) * p.qo_heads + h], std::log(sum), 1e-12);
    }
}

TEST(TreeAttentionPlan, DepthsPositionsAndAncestorMasks) {
  Problem p = small_problem(8, 2, 128, 16);
  p.batch = 2;
  //   request 0: 0 -> {1, 2}, 1 -> 3, 2 -> 4; 5 root-level;   request 1: chain of 130? no: 128
  std::vector<int32_t> parents = {-1, 0, 0, 1, 2, -1};
  const auto c = chain(128);
  parents.insert(parents.end(), c.begin(), c.end());
  const std::vector<int32_t> prefix = {100, 7}, sizes = {6, 128};
  const Plan pl = plan(p, prefix, sizes, parents, kH100);
  EXPECT_EQ(pl.total_tokens, 134);
  EXPECT_EQ(pl.max_tree_tokens, 128);
  EXPECT_EQ(pl.tree_indptr, (std::vector<int32_t>{0, 6, 134}));
  EXPECT_EQ(std::vector<int32_t>(pl.depths.begin(), pl.depths.begin() + 6), (std::vector<int32_t>{0, 1, 1, 2, 2, 0}));
  EXPECT_EQ(pl.positions[3], 102);
  EXPECT_EQ(pl.positions[5], 100);
  EXPECT_EQ(pl.positions[6 + 127], 7 + 127);
  EXPECT_TRUE(pl.masks[4].test(4) && pl.masks[4].test(2) && pl.masks[4].test(0));
  EXPECT_FALSE(pl.masks[4].test(1) || pl.masks[4].test(3) || pl.masks[4].test(5));
  EXPECT_EQ(pl.masks[5].bits[0], 1ull << 5);
  EXPECT_EQ(pl.masks[5].bits[1], 0ull);
  EXPECT_EQ(pl.masks[6 + 127].bits[0], ~0ull);  // full chain
  EXPECT_EQ(pl.masks[6 + 127].bits[1], ~0ull);
  EXPECT_EQ(pl.masks[6 + 64].bits[0], ~0ull);
  EXPECT_EQ(pl.masks[6 + 64].bits[1], 1ull);
  EXPECT_GT(pl.workspace_bytes, 0u);
  EXPECT_GT(pl.prefix_chunk_tokens, 0);
}

TEST(TreeAttentionPlan, PrefixSplitAndWorkspace) {
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 1;
  const std::vector<int32_t> parents = chain(64);
  const Plan pl = plan(p, std::vector<int32_t>{32768}, std::vector<int32_t>{64}, parents, kH100);
  EXPECT_LT(pl.prefix_chunk_tokens, 32768);  // long prefix split across SMs
  EXPECT_EQ(pl.prefix_chunk_tokens % 64, 0);
  const long long chunks = (32768 + pl.prefix_chunk_tokens - 1) / pl.prefix_chunk_tokens;
  EXPECT_GE(pl.workspace_bytes, size_t((chunks + 1) * 64 * 32) * (128 + 1) * sizeof(float));
  const Plan none = plan(p, std::vector<int32_t>{0}, std::vector<int32_t>{64}, parents, kH100);
  EXPECT_EQ(none.prefix_chunk_tokens, 0);
}

TEST(TreeAttentionPlan, ArenaPlanEqualsFreshPlan) {
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 2;
  std::vector<int32_t> parents = {-1, 0, 0, 1, 2, -1};
  const auto c = chain(40);
  parents.insert(parents.end(), c.begin(), c.end());
  const std::vector<int32_t> prefix = {5000, 17}, sizes = {6, 40};
  PlanHostArena arena(256);  // too small for the metadata image: grows once, then holds
  for (int step = 0; step < 3; ++step) {
    arena.reset();
    const Plan a = plan(p, prefix, sizes, parents, kH100, &arena), f = plan(p, prefix, sizes, parents, kH100);
    ASSERT_EQ(a.meta_bytes, f.meta_bytes);
    EXPECT_EQ(std::memcmp(a.host_meta.get(), f.host_meta.get(), a.meta_bytes), 0);
    EXPECT_EQ(a.workspace_bytes, f.workspace_bytes);
  }
  EXPECT_EQ(arena.allocations(), 2);
}

TEST(TreeAttentionPlan, BadArgumentsNameArgumentAndValue) {
  Problem p = small_problem(8, 2, 128, 16);
  p.batch = 1;
  const std::vector<int32_t> pre = {10}, one = {1}, root = {-1};
  auto bad = [&](Problem q) { return plan(q, pre, one, root, kH100); };
  Problem x = p;
  x.head_dim = 96;
  EXPECT_THROW_MSG(bad(x), "tree_attention::plan: head_dim = 96: must be 64, 128 or 256");
  x = p;
  x.qo_heads = 6;
  x.kv_heads = 4;
  EXPECT_THROW_MSG(bad(x), "qo_heads = 6: must be divisible by kv_heads = 4");
  x = p;
  x.dtype = DType::f32;
  EXPECT_THROW_MSG(bad(x), "dtype = fp32: must be fp16 or bf16");
  x = p;
  x.page_size = 0;
  EXPECT_THROW_MSG(bad(x), "page_size = 0");
  for (float scale : {-1.f, INFINITY, NAN}) {
    x = p;
    x.sm_scale = scale;
    EXPECT_THROW_MSG(bad(x), "sm_scale = ");
  }
  x = p;
  x.sm_scale = 0.f;  // 0: 1/sqrt(head_dim)
  EXPECT_FLOAT_EQ(bad(x).sm_scale, 1.f / std::sqrt(128.f));
  x.sm_scale = 0.3f;
  EXPECT_FLOAT_EQ(bad(x).sm_scale, 0.3f);
  x = p;
  x.batch = 0;
  EXPECT_THROW_MSG(bad(x), "batch = 0");
  EXPECT_THROW_MSG(plan(p, std::vector<int32_t>{-3}, one, root, kH100), "prefix_lens[0] = -3: must be >= 0");
  EXPECT_THROW_MSG(plan(p, pre, std::vector<int32_t>{0}, std::vector<int32_t>{}, kH100), "tree_sizes[0] = 0");
  const auto long_chain = chain(129);
  EXPECT_THROW_MSG(plan(p, pre, std::vector<int32_t>{129}, long_chain, kH100),
                   "tree_sizes[0] = 129: must be in [1, 128]");
  EXPECT_THROW_MSG(plan(p, pre, std::vector<int32_t>{2}, root, kH100), "parents.size() = 1: must equal the sum");
  EXPECT_THROW_MSG(plan(p, pre, std::vector<int32_t>{2}, std::vector<int32_t>{-1, 1}, kH100),
                   "parents[1] (request 0, token 1) = 1: must be -1");
  EXPECT_THROW_MSG(plan(p, pre, std::vector<int32_t>{3}, std::vector<int32_t>{-1, 2, 1}, kH100),
                   "parents[1] (request 0, token 1) = 2");  // a cycle 1 <-> 2 is rejected at its first back edge
  EXPECT_THROW_MSG(plan(p, pre, std::vector<int32_t>{2}, std::vector<int32_t>{-1, -2}, kH100), "= -2");
  EXPECT_THROW_MSG(plan(p, std::vector<int32_t>{1, 2}, one, root, kH100), "prefix_lens.size() = 2: must equal batch = 1");
  EXPECT_THROW_MSG(plan(p, pre, one, root, DeviceInfo::synthetic(0)), "device.sm_count = 0");
}

// run() checks every pointer (null, alignment) and the workspace size on the host, naming
// the argument, before it launches anything; a batch without prefix needs no page table.
TEST(TreeAttentionRun, BadRunArgumentsAreRejected) {
  Problem p = small_problem(8, 2, 128, 16);
  p.batch = 2;
  const std::vector<int32_t> pre = {10, 0}, sizes = {3, 1}, parents = {-1, 0, 0, -1};
  Plan pl = plan(p, pre, sizes, parents, kH100);
  alignas(16) static char buf[4096];
  auto dev = [](int off) { return static_cast<void*>(buf + off); };
  Args a;
  a.q = dev(0); a.k_tree = dev(16); a.v_tree = dev(32); a.o = dev(48);
  a.k_pages = dev(64); a.v_pages = dev(80);
  a.indptr = reinterpret_cast<const int32_t*>(dev(96));
  a.indices = reinterpret_cast<const int32_t*>(dev(112));
  std::vector<char> ws_storage(pl.workspace_bytes + 32);
  void* ws = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(ws_storage.data()) + 15) & ~uintptr_t(15));
  const size_t n = pl.workspace_bytes;
  auto expect = [&](Args x, void* w, size_t bytes, const std::string& msg) {
    EXPECT_THROW_MSG(run(pl, x, w, bytes, nullptr), msg.c_str());
  };
  { Args x = a; x.q = nullptr; expect(x, ws, n, "tree_attention::run: q = null: must be a device pointer"); }
  { Args x = a; x.k_tree = dev(2); expect(x, ws, n, "k_tree = "); }
  { Args x = a; x.k_tree = dev(2); expect(x, ws, n, "must be 16-byte aligned"); }
  { Args x = a; x.v_tree = nullptr; expect(x, ws, n, "v_tree = null"); }
  { Args x = a; x.o = dev(8); expect(x, ws, n, "o = "); }
  { Args x = a; x.lse = reinterpret_cast<float*>(dev(1)); expect(x, ws, n, "must be 4-byte aligned"); }
  { Args x = a; x.k_pages = nullptr; expect(x, ws, n, "k_pages = null"); }
  { Args x = a; x.v_pages = dev(4); expect(x, ws, n, "v_pages = "); }
  { Args x = a; x.indptr = nullptr; expect(x, ws, n, "indptr = null"); }
  { Args x = a; x.indices = reinterpret_cast<const int32_t*>(dev(2)); expect(x, ws, n, "indices = "); }
  expect(a, ws, n - 1, fmt::format("workspace_bytes = {}: is too small: the plan needs {} bytes", n - 1, n));
  expect(a, nullptr, n, "workspace = null");
  expect(a, static_cast<char*>(ws) + 4, n, "workspace = ");
  EXPECT_THROW_MSG(run(Plan{}, a, ws, n, nullptr), "tree_attention::run: plan = empty");
  // No request has a prefix: the page table is not read, so it may be absent.
  const std::vector<int32_t> no_prefix = {0, 0};
  Plan pz = plan(p, no_prefix, sizes, parents, kH100);
  Args z = a;
  z.k_pages = z.v_pages = nullptr;
  z.indptr = z.indices = nullptr;
  std::vector<char> wz(pz.workspace_bytes + 32);
  void* wsz = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(wz.data()) + 15) & ~uintptr_t(15));
  EXPECT_NO_THROW(check_args(pz, z, wsz, pz.workspace_bytes));
  EXPECT_THROW_MSG(check_args(pl, z, ws, n), "k_pages = null");
}

TEST(TreeAttentionPlan, PrefixPageTableValidation) {
  auto rng = test::make_rng();
  Problem p = small_problem(4, 2, 64, 16);
  p.batch = 2;
  Case c = make_case(rng, p, {37, 0}, {chain(3), {-1}});
  const Plan pl = plan_of(c);
  validate_page_table(pl, c.indptr, c.indices, c.last_page_len, c.num_pages);
  auto bad = c.indices;
  bad[1] = c.num_pages;
  EXPECT_THROW_MSG(validate_page_table(pl, c.indptr, bad, c.last_page_len, c.num_pages), "indices[1] = ");
  auto last = c.last_page_len;
  last[0] = 4;
  EXPECT_THROW_MSG(validate_page_table(pl, c.indptr, c.indices, last, c.num_pages),
                   "kv_lens[0] = 37: differs from the page table's length 36");
}

TEST(TreeAttentionCApi, PlanPositionsAndErrorPath) {
  spw_tree_attention_problem cp{1, 8, 2, 128, SPW_FP16, 16, 0.f, 0.f};
  const int32_t pre[] = {20}, sizes[] = {3}, parents[] = {-1, 0, 0};
  spw_tree_attention_handle* h = nullptr;
  ASSERT_EQ(spw_tree_attention_plan(&cp, pre, sizes, parents, 132, &h), SPW_OK) << spw_last_error();
  size_t ws = 0;
  EXPECT_EQ(spw_tree_attention_workspace_size(h, &ws), SPW_OK);
  EXPECT_GT(ws, 0u);
  int32_t pos[3] = {};
  EXPECT_EQ(spw_tree_attention_positions(h, pos, 3), SPW_OK);
  EXPECT_EQ(pos[0], 20);
  EXPECT_EQ(pos[2], 21);
  EXPECT_EQ(spw_tree_attention_positions(h, pos, 2), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("capacity = 2"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_tree_attention_run(h, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr, nullptr, nullptr, 0, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("tree_attention::run: q = null"), std::string::npos)
      << spw_last_error();
  spw_tree_attention_destroy(h);

  const int32_t bad_parents[] = {-1, 1, 0};
  h = reinterpret_cast<spw_tree_attention_handle*>(1);
  EXPECT_EQ(spw_tree_attention_plan(&cp, pre, sizes, bad_parents, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(std::string(spw_last_error()).find("parents[1]"), std::string::npos) << spw_last_error();
  cp.head_dim = 80;
  EXPECT_EQ(spw_tree_attention_plan(&cp, pre, sizes, parents, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("head_dim = 80"), std::string::npos) << spw_last_error();
  cp.head_dim = 128;
  EXPECT_EQ(spw_tree_attention_plan(&cp, pre, sizes, nullptr, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(spw_tree_attention_plan(nullptr, pre, sizes, parents, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(spw_tree_attention_workspace_size(nullptr, &ws), SPW_ERROR_INVALID_ARGUMENT);
}

// ---- kernel selection and the mma launch shape (plan only; the kernels run in the GPU tests) ----

TEST(TreeAttentionPlan, ImplSelectionAndMmaLaunchShape) {
  auto shape = [](int qo, int kv, int d, int T, Impl impl = Impl::automatic, int max_rows = 0) {
    Problem p = small_problem(qo, kv, d, 16);
    p.batch = 1;
    p.impl = impl;
    p.max_rows_per_cta = max_rows;
    return plan(p, std::vector<int32_t>{100}, std::vector<int32_t>{T}, chain(T), kH100);
  };
  // automatic = mma; T = 64 x group 4 = 256 rows: one CTA of 8 warps holds every row of a KV head.
  Plan a = shape(32, 8, 128, 64);
  EXPECT_EQ(a.impl, Impl::mma);
  EXPECT_EQ(a.rows_per_cta, 256);
  EXPECT_EQ(a.row_blocks, 1);
  EXPECT_EQ(a.warps, 8);
  EXPECT_EQ(a.smem_bytes, 256 * 136 * 2 * 2);  // Q 256 x (128 + 8) + K/V 2 stages x 2 x 64 x 136, 2 bytes
  EXPECT_EQ(shape(32, 8, 128, 64, Impl::mma).rows_per_cta, 256);
  // T = 128 x group 8 = 1024 rows: 4 row blocks of 256; head_dim 256 holds 128 rows per CTA.
  Plan b = shape(16, 2, 128, 128);
  EXPECT_EQ(b.row_blocks, 4);
  EXPECT_EQ(b.rows_per_cta, 256);
  Plan c = shape(8, 2, 256, 128);
  EXPECT_EQ(c.row_blocks, 4);
  EXPECT_EQ(c.rows_per_cta, 128);
  EXPECT_EQ(c.warps, 8);
  // Few rows: 16-row tile, 4 warps (the minimum: loaders); 5 x 3 = 15 rows -> 16.
  Plan d = shape(8, 2, 128, 1);
  EXPECT_EQ(d.rows_per_cta, 16);
  EXPECT_EQ(d.warps, 4);
  EXPECT_EQ(shape(6, 2, 64, 5).rows_per_cta, 16);
  // 17 x 8 = 136 rows -> 144 (9 m-tiles over 5 warps); 66 x 4 = 264 rows -> 2 balanced blocks of 144.
  Plan e = shape(16, 2, 128, 17);
  EXPECT_EQ(e.rows_per_cta, 144);
  EXPECT_EQ(e.warps, 5);
  Plan f = shape(32, 8, 128, 66);
  EXPECT_EQ(f.row_blocks, 2);
  EXPECT_EQ(f.rows_per_cta, 144);
  // max_rows_per_cta caps the rows: 256 rows in blocks of 64.
  Plan g = shape(32, 8, 128, 64, Impl::mma, 64);
  EXPECT_EQ(g.row_blocks, 4);
  EXPECT_EQ(g.rows_per_cta, 64);
  EXPECT_EQ(g.warps, 4);
  // v0 keeps its own shape and chunking: 16-row blocks, chunks of >= 256 tokens.
  Plan v = shape(32, 8, 128, 64, Impl::v0);
  EXPECT_EQ(v.impl, Impl::v0);
  EXPECT_EQ(v.rows_per_cta, 16);
  EXPECT_EQ(v.row_blocks, 16);
  EXPECT_EQ(v.smem_bytes, 0);
  EXPECT_EQ(v.prefix_chunk_tokens, 100);  // min(max(ceil(100 * 8 / 264), 256) rounded to 64, prefix)
  // Same workspace layout for both kernels when the split is the same.
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 1;
  p.chunk_tokens = 512;
  const auto par = chain(40);
  p.impl = Impl::v0;
  const Plan pv = plan(p, std::vector<int32_t>{3000}, std::vector<int32_t>{40}, par, kH100);
  p.impl = Impl::mma;
  const Plan pm = plan(p, std::vector<int32_t>{3000}, std::vector<int32_t>{40}, par, kH100);
  EXPECT_EQ(pv.num_states, 7);  // ceil(3000 / 512) + 1
  EXPECT_EQ(pm.num_states, 7);
  EXPECT_EQ(pv.workspace_bytes, pm.workspace_bytes);
  EXPECT_EQ(pv.partial_o_offset, pm.partial_o_offset);
  EXPECT_EQ(pv.partial_lse_offset, pm.partial_lse_offset);
}

TEST(TreeAttentionPlan, MmaRowCapFollowsSharedMemoryAndComputeCapability) {
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 1;
  const auto par = chain(64);
  const std::vector<int32_t> pre = {10}, sz = {64};
  // A 99 KB opt-in device (sm_86/89): K/V ring 68 KB, Q <= 31 KB -> 112 rows -> 3 blocks of 96.
  DeviceInfo small = DeviceInfo::synthetic(84, 8, 6);
  small.max_smem_per_block = 99 * 1024;
  const Plan pl = plan(p, pre, sz, par, small);
  EXPECT_EQ(pl.row_blocks, 3);
  EXPECT_EQ(pl.rows_per_cta, 96);
  EXPECT_LE(pl.smem_bytes, small.max_smem_per_block);
  // A limit between 32 rows of bare head_dim (2 * 256 bytes) and 32 padded rows (2 * 264 bytes)
  // above the d256 ring: the cap must count the padded row stride (16 rows fit, 32 do not).
  DeviceInfo odd = DeviceInfo::synthetic(84, 8, 6);
  odd.max_smem_per_block = spw::tree_attention::mma::kv_smem_bytes(256) + 32 * 2 * 256;
  p.head_dim = 256;
  const Plan o = plan(p, pre, sz, par, odd);
  EXPECT_EQ(o.rows_per_cta, 16);
  EXPECT_LE(o.smem_bytes, odd.max_smem_per_block);
  DeviceInfo tiny = DeviceInfo::synthetic(84, 8, 6);
  tiny.max_smem_per_block = 48 * 1024;
  EXPECT_THROW_MSG(plan(p, pre, sz, par, tiny), "device.max_smem_per_block = 49152: the mma kernel needs at least");
  p.head_dim = 128;
  const DeviceInfo turing = DeviceInfo::synthetic(40, 7, 5);
  EXPECT_THROW_MSG(plan(p, pre, sz, par, turing), "device compute capability = 7.5: the mma kernel needs sm_80");
  p.impl = Impl::v0;
  EXPECT_NO_THROW(plan(p, pre, sz, par, turing));
  // v0's grid puts (request, kv head) on y: at most 65535 of them.
  p.batch = 8200;
  const std::vector<int32_t> pre8(8200, 3), sz8(8200, 1), par8(8200, -1);
  EXPECT_THROW_MSG(plan(p, pre8, sz8, par8, kH100), "batch * kv_heads = 65600: must be <= 65535 for the v0 kernel");
  p.impl = Impl::mma;
  EXPECT_NO_THROW(plan(p, pre8, sz8, par8, kH100));
}

TEST(TreeAttentionPlan, MmaPrefixSplit) {
  auto chunk_of = [](int batch, int qo, int kv, int T, int prefix) {
    Problem p = small_problem(qo, kv, 128, 16);
    p.batch = batch;
    std::vector<int32_t> par;
    for (int b = 0; b < batch; ++b) {
      const auto t = chain(T);
      par.insert(par.end(), t.begin(), t.end());
    }
    return plan(p, std::vector<int32_t>(batch, prefix), std::vector<int32_t>(batch, T), par, kH100);
  };
  for (int T : {1, 4, 16, 64, 128})
    for (int prefix : {512, 4096, 32768})
      for (int batch : {1, 8, 32}) {
        const Plan pl = chunk_of(batch, 32, 8, T, prefix);
        SCOPED_TRACE(fmt::format("T {} prefix {} batch {}: chunk {}", T, prefix, batch, pl.prefix_chunk_tokens));
        EXPECT_EQ(pl.prefix_chunk_tokens % 64, 0);
        EXPECT_GE(pl.prefix_chunk_tokens, 64);
        const long long ctas = (pl.num_states - 1) * 8LL * batch * pl.row_blocks;
        // Never more than ~4 waves of prefix CTAs; a batch that alone fills the GPU is not split
        // further than it pays.
        EXPECT_LE(ctas, 4 * 132 + 8LL * batch * pl.row_blocks);
        if (batch == 1 && prefix >= 4096) {
          EXPECT_GE(ctas, 64) << "a long prefix of one request fills the GPU";
        }
      }
  // The yardstick case (T = 1) splits like Flash-Decoding; 32 long requests need no split.
  EXPECT_EQ(chunk_of(1, 32, 8, 1, 4096).prefix_chunk_tokens, 256);
  EXPECT_EQ(chunk_of(32, 32, 8, 64, 4096).num_states, 2);
  // A chunk override wins.
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 1;
  p.chunk_tokens = 100;
  const Plan o = plan(p, std::vector<int32_t>{1000}, std::vector<int32_t>{1}, std::vector<int32_t>{-1}, kH100);
  EXPECT_EQ(o.prefix_chunk_tokens, 100);
  EXPECT_EQ(o.num_states, 11);
}

TEST(TreeAttentionPlan, BadKernelOptions) {
  Problem p = small_problem(8, 2, 128, 16);
  p.batch = 1;
  const std::vector<int32_t> pre = {10}, one = {1}, root = {-1};
  Problem x = p;
  x.impl = static_cast<Impl>(7);
  EXPECT_THROW_MSG(plan(x, pre, one, root, kH100), "tree_attention::plan: impl = 7: must be automatic (0), v0 (1) or mma (2)");
  x = p;
  x.chunk_tokens = 5;
  EXPECT_THROW_MSG(plan(x, pre, one, root, kH100), "chunk_tokens = 5: must be 0 (planner's choice) or >= 16");
  x = p;
  x.max_rows_per_cta = 40;
  EXPECT_THROW_MSG(plan(x, pre, one, root, kH100), "max_rows_per_cta = 40: must be 0 (kernel limit) or a positive multiple of 16");
  x.max_rows_per_cta = -16;
  EXPECT_THROW_MSG(plan(x, pre, one, root, kH100), "max_rows_per_cta = -16");
}

TEST(TreeAttentionCApi, PlanExOptionsAndPlanInfo) {
  spw_tree_attention_problem cp{1, 32, 8, 128, SPW_FP16, 16, 0.f, 0.f};
  const int32_t pre[] = {4096}, sizes[] = {64};
  std::vector<int32_t> parents = chain(64);
  spw_tree_attention_handle* h = nullptr;
  spw_tree_attention_plan_info info{};
  ASSERT_EQ(spw_tree_attention_plan(&cp, pre, sizes, parents.data(), 132, &h), SPW_OK) << spw_last_error();
  ASSERT_EQ(spw_tree_attention_plan_info_get(h, &info), SPW_OK) << spw_last_error();
  EXPECT_EQ(info.impl, SPW_TREE_ATTENTION_MMA);
  EXPECT_EQ(info.rows_per_cta, 256);
  EXPECT_EQ(info.warps, 8);
  EXPECT_EQ(info.num_states, (4096 + info.prefix_chunk_tokens - 1) / info.prefix_chunk_tokens + 1);
  spw_tree_attention_destroy(h);
  spw_tree_attention_options opt{SPW_TREE_ATTENTION_V0, 512, 0};
  ASSERT_EQ(spw_tree_attention_plan_ex(&cp, pre, sizes, parents.data(), 132, &opt, &h), SPW_OK) << spw_last_error();
  ASSERT_EQ(spw_tree_attention_plan_info_get(h, &info), SPW_OK);
  EXPECT_EQ(info.impl, SPW_TREE_ATTENTION_V0);
  EXPECT_EQ(info.prefix_chunk_tokens, 512);
  EXPECT_EQ(info.num_states, 9);
  EXPECT_EQ(spw_tree_attention_plan_info_get(h, nullptr), SPW_ERROR_INVALID_ARGUMENT);
  spw_tree_attention_destroy(h);
  opt = {SPW_TREE_ATTENTION_MMA, 0, 64};
  ASSERT_EQ(spw_tree_attention_plan_ex(&cp, pre, sizes, parents.data(), 132, &opt, &h), SPW_OK) << spw_last_error();
  ASSERT_EQ(spw_tree_attention_plan_info_get(h, &info), SPW_OK);
  EXPECT_EQ(info.rows_per_cta, 64);
  EXPECT_EQ(info.row_blocks, 4);
  spw_tree_attention_destroy(h);
  ASSERT_EQ(spw_tree_attention_plan_ex(&cp, pre, sizes, parents.data(), 132, nullptr, &h), SPW_OK);
  spw_tree_attention_destroy(h);
  opt = {9, 0, 0};
  EXPECT_EQ(spw_tree_attention_plan_ex(&cp, pre, sizes, parents.data(), 132, &opt, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(std::string(spw_last_error()).find("impl = 9"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_tree_attention_plan_info_get(nullptr, &info), SPW_ERROR_INVALID_ARGUMENT);
}

// Tree-attention GPU tests against the fp64 reference (skipped without a usable GPU), every case
// with both kernels (v0 and mma): group sizes 1/2/3/4/8, head dims 64/128/256, fp16/bf16, random
// trees / chain / star / T = 1, prefix 0, non-multiples of the page size and of the K/V tile, a
// long (split) prefix, LSE, poisoned outputs and workspace, bitwise repeat determinism, CUDA-graph
// capture + replay. Aimed at the mma kernel: T x group not a multiple of 16, T = 128 x group 8
// (row blocks), head_dim 256 with 512 rows, a mixed batch of 12 requests, forced small chunks and
// row blocks, T = 1 equal to decode_attention::run. (Not run in the session that wrote them: no GPU.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>

#include <gtest/gtest.h>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/decode_attention/decode_attention.h"
#include "tests/common/device_upload.h"
#include "tests/common/graph_capture.h"
#include "tests/tree_attention/tree_attention_cases.h"

using namespace spw;
using namespace spw::tree_attention;
using namespace spw::tree_attention::test_cases;

namespace {
using test::upload_ints;
using test::upload_nonempty;

struct Out {
  std::vector<float> o, lse;
  std::vector<unsigned char> o_bits;
};

// Poisons O, LSE and the workspace, runs `pl`, downloads. rerun_from_workspace: then scrambles the
// plan's host metadata, poisons O again and runs with metadata_in_workspace (the copy skipped):
// the result returned is that second run's.
template <typename T>
Out run_case(const Case& c, const Plan& pl, bool rerun_from_workspace = false) {
  auto q = upload_nonempty<T>(c.q), kt = upload_nonempty<T>(c.k_tree), vt = upload_nonempty<T>(c.v_tree);
  auto kp = upload_nonempty<T>(c.k_pages), vp = upload_nonempty<T>(c.v_pages);
  auto indptr = upload_ints(c.indptr), indices = upload_ints(c.indices), last = upload_ints(c.last_page_len);
  DeviceBuffer<T> o(c.q.size());
  DeviceBuffer<float> lse(static_cast<size_t>(pl.total_tokens) * c.p.qo_heads);
  DeviceBuffer<unsigned char> ws(pl.workspace_bytes);
  SPW_CUDA_CHECK(cudaMemset(o.get(), test::kPoisonByte, o.size() * sizeof(T)));
  SPW_CUDA_CHECK(cudaMemset(lse.get(), test::kPoisonByte, lse.size() * sizeof(float)));
  SPW_CUDA_CHECK(cudaMemset(ws.get(), test::kPoisonByte, ws.size()));
  Args a{q.get(), kt.get(), vt.get(), kp.get(), vp.get(), indptr.get(), indices.get(), last.get(), o.get(), lse.get()};
  run(pl, a, ws.get(), pl.workspace_bytes, nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  if (rerun_from_workspace) {
    std::memset(pl.host_meta.get(), 0x7f, pl.meta_bytes);  // a copy now would break the run
    SPW_CUDA_CHECK(cudaMemset(o.get(), test::kPoisonByte, o.size() * sizeof(T)));
    a.metadata_in_workspace = true;
    run(pl, a, ws.get(), pl.workspace_bytes, nullptr);
    SPW_CUDA_CHECK(cudaDeviceSynchronize());
  }
  Out out;
  auto oh = o.download();
  out.o = test::to_floats(oh);
  out.o_bits.resize(oh.size() * sizeof(T));
  std::memcpy(out.o_bits.data(), oh.data(), out.o_bits.size());
  out.lse = lse.download();
  return out;
}

constexpr Impl kImpls[] = {Impl::v0, Impl::mma};

Plan plan_for(const Case& c, Impl impl) {
  Problem p = c.p;
  p.impl = impl;
  return plan(p, c.prefix_lens, c.tree_sizes, c.parents, query_device(0));
}

// Every kernel against one fp64 reference (the reference depends on the trees, not the kernel).
template <typename T>
void check_against_reference(const Case& c, const std::string& what) {
  const auto ref = reference::attention(plan_for(c, Impl::v0), inputs(c));
  for (Impl impl : kImpls) {
    const Plan pl = plan_for(c, impl);
    const std::string label = fmt::format("{} [{}: chunk {}, states {}, rows/cta {}, row blocks {}]", what,
                                          impl_name(impl), pl.prefix_chunk_tokens, pl.num_states, pl.rows_per_cta,
                                          pl.row_blocks);
    const Out out = run_case<T>(c, pl);
    EXPECT_TRUE(test::close_to(out.o, ref.o, test::tolerance_for(c.p.dtype))) << label;
    int bad = 0;
    for (size_t i = 0; i < ref.lse.size() && bad < 5; ++i)
      if (!std::isfinite(out.lse[i]) || std::fabs(out.lse[i] - ref.lse[i]) > 2e-3 * std::max(1.0, std::fabs(ref.lse[i]))) {
        ADD_FAILURE() << label << " lse row " << i << ": " << out.lse[i] << " vs " << ref.lse[i];
        ++bad;
      }
  }
}

void check_dtype(const Case& c, const std::string& what) {
  if (c.p.dtype == DType::f16) check_against_reference<spw::half>(c, what);
  else check_against_reference<spw::bfloat16>(c, what);
}
}  // namespace

TEST(TreeAttentionGpu, MatchesReferenceEveryGroupHeadDimDtype) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (DType dt : {DType::f16, DType::bf16})
    for (int d : {64, 128, 256})
      for (int g : {1, 4, 8}) {
        Problem p = small_problem(2 * g, 2, d, 16);
        p.dtype = dt;
        p.batch = 4;
        Case c = make_case(rng, p, {0, 37, 16, 700}, {random_tree(rng, 19), chain(8), star(11), {-1}});
        check_dtype(c, fmt::format("{} d{} g{}", dtype_name(dt), d, g));
      }
}

TEST(TreeAttentionGpu, FullTreesLongSplitPrefixAndSoftCap) {
  SPW_REQUIRE_GPU();
  SPW_SKIP_ON_SIMULATOR("two T=128 trees over an 8191-token prefix take minutes there");
  auto rng = test::make_rng();
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 2;
  Case c = make_case(rng, p, {8191, 3}, {random_tree(rng, 128), chain(128)});
  ASSERT_GT(plan_for(c, Impl::v0).num_states, 2);  // the long prefix is split
  ASSERT_GT(plan_for(c, Impl::mma).num_states, 2);
  check_dtype(c, "T128 prefix 8191");
  p.batch = 1;
  p.soft_cap = 4.f;
  p.sm_scale = 0.2f;
  Case s = make_case(rng, p, {300}, {random_tree(rng, 40)});
  check_dtype(s, "soft cap");
}

TEST(TreeAttentionGpu, RepeatRunsAreBitwiseIdentical) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 3;
  // (a shorter prefix on the CPU simulator, where the long one takes minutes)
  Case c = make_case(rng, p, {test::kSimulated ? 900 : 5000, 0, 77}, {random_tree(rng, 64), star(9), chain(5)});
  for (Impl impl : kImpls) {
    const Plan pl = plan_for(c, impl);
    const Out a = run_case<spw::half>(c, pl), b = run_case<spw::half>(c, pl);
    EXPECT_EQ(a.o_bits, b.o_bits) << impl_name(impl);
    EXPECT_EQ(0, std::memcmp(a.lse.data(), b.lse.data(), a.lse.size() * sizeof(float))) << impl_name(impl);
    // metadata_in_workspace: a rerun from the metadata already in the workspace (the host copy
    // scrambled first) gives the same bits: the runtime copies once per pass, not per layer
    const Out from_ws = run_case<spw::half>(c, pl, true);
    EXPECT_EQ(a.o_bits, from_ws.o_bits) << impl_name(impl) << " (metadata_in_workspace)";
  }
}

TEST(TreeAttentionGpu, CudaGraphCaptureAndReplayMatchesDirectRun) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 2;
  // (a shorter prefix on the CPU simulator, where the long one takes minutes)
  Case c = make_case(rng, p, {test::kSimulated ? 700 : 3000, 50}, {random_tree(rng, 32), chain(16)});
  for (Impl impl : kImpls) {
    const Plan pl = plan_for(c, impl);
    const Out direct = run_case<spw::half>(c, pl);
    auto q = upload_nonempty<spw::half>(c.q);
    auto kt = upload_nonempty<spw::half>(c.k_tree), vt = upload_nonempty<spw::half>(c.v_tree);
    auto kp = upload_nonempty<spw::half>(c.k_pages), vp = upload_nonempty<spw::half>(c.v_pages);
    auto indptr = upload_ints(c.indptr), indices = upload_ints(c.indices), last = upload_ints(c.last_page_len);
    DeviceBuffer<spw::half> o(c.q.size());
    DeviceBuffer<float> lse(static_cast<size_t>(pl.total_tokens) * c.p.qo_heads);
    DeviceBuffer<unsigned char> ws(pl.workspace_bytes);
    SPW_CUDA_CHECK(cudaMemset(o.get(), test::kPoisonByte, o.size() * sizeof(spw::half)));
    SPW_CUDA_CHECK(cudaMemset(ws.get(), test::kPoisonByte, ws.size()));
    Args a{q.get(), kt.get(), vt.get(), kp.get(), vp.get(), indptr.get(), indices.get(), last.get(), o.get(), lse.get()};
    test::CapturedGraph graph([&](cudaStream_t s) { run(pl, a, ws.get(), pl.workspace_bytes, s); });
    graph.replay(3);
    auto oh = o.download();
    std::vector<unsigned char> bits(oh.size() * sizeof(spw::half));
    std::memcpy(bits.data(), oh.data(), bits.size());
    EXPECT_EQ(bits, direct.o_bits) << impl_name(impl);
    EXPECT_EQ(lse.download(), direct.lse) << impl_name(impl);
  }
}

// ---- aimed at the mma kernel's edges (both kernels still checked) ----

TEST(TreeAttentionGpu, RowCountsNotMultipleOf16AndOddGroups) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (auto [qo, kv, d] : {std::tuple{6, 2, 128}, std::tuple{4, 2, 64}, std::tuple{3, 3, 256}, std::tuple{16, 2, 128}})
    for (DType dt : {DType::f16, DType::bf16}) {
      Problem p = small_problem(qo, kv, d, 16);
      p.dtype = dt;
      p.batch = 4;
      // rows = T x group: 5 x 3, 13 x 2, 7 x 1, 31 x 8 ... never a multiple of 16 for these T
      Case c = make_case(rng, p, {65, 1, 129, 63}, {random_tree(rng, 5), chain(13), star(7), random_tree(rng, 31)});
      check_dtype(c, fmt::format("qo {} kv {} d {} {}", qo, kv, d, dtype_name(dt)));
    }
}

TEST(TreeAttentionGpu, Tree128Group8RowBlocksAndHeadDim256) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Problem p = small_problem(16, 2, 128, 16);  // group 8: 1024 rows per KV head -> 4 row blocks
  p.batch = 2;
  Case c = make_case(rng, p, {1001, 0}, {random_tree(rng, 128), chain(128)});
  ASSERT_EQ(plan_for(c, Impl::mma).row_blocks, 4);
  check_dtype(c, "T128 g8 d128");
  Problem q = small_problem(8, 2, 256, 16);  // head_dim 256, group 4: 512 rows -> 4 blocks of 128
  q.batch = 2;
  q.dtype = DType::bf16;
  Case e = make_case(rng, q, {333, 47}, {random_tree(rng, 128), star(100)});
  ASSERT_EQ(plan_for(e, Impl::mma).rows_per_cta, 128);
  check_dtype(e, "T128 g4 d256 bf16");
}

TEST(TreeAttentionGpu, PrefixLengthsAndPageSizesOffTheTileGrid) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (int page : {1, 7, 16, 64})
    for (int d : {64, 256}) {
      Problem p = small_problem(8, 2, d, page);
      p.batch = 5;
      Case c = make_case(rng, p, {1, 31, 65, 97, 650}, {chain(3), random_tree(rng, 40), {-1}, star(17), random_tree(rng, 70)});
      check_dtype(c, fmt::format("page {} d {}", page, d));
    }
}

TEST(TreeAttentionGpu, NoPrefixAtAll) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 3;
  Case c = make_case(rng, p, {0, 0, 0}, {random_tree(rng, 128), chain(64), {-1}});
  ASSERT_EQ(plan_for(c, Impl::mma).num_states, 1);
  check_dtype(c, "prefix 0");
}

TEST(TreeAttentionGpu, MixedBatchOfTwelveRequests) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (DType dt : {DType::f16, DType::bf16}) {
    Problem p = small_problem(32, 8, 128, 16);
    p.dtype = dt;
    p.batch = 12;
    // (the CPU simulator gets shorter long prefixes, which take minutes there)
    const int long1 = test::kSimulated ? 300 : 3000, long2 = test::kSimulated ? 400 : 4100;
    const int long3 = test::kSimulated ? 255 : 2047;
    Case c = make_case(rng, p, {0, long1, 17, 512, 1, long3, 64, 0, 999, 128, long2, 5},
                       {random_tree(rng, 128), chain(64), {-1}, random_tree(rng, 17), star(33), random_tree(rng, 100),
                        chain(1), random_tree(rng, 9), random_tree(rng, 128), star(2), random_tree(rng, 50), chain(127)});
    check_dtype(c, fmt::format("mixed batch {}", dtype_name(dt)));
  }
}

TEST(TreeAttentionGpu, ForcedChunksAndRowBlocks) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  // chunk 48 / 16: chunk edges inside a 64-key tile; rows 48 / 16 per CTA: row blocks of 3 and 1 m-tiles.
  for (auto [chunk, rows] : {std::pair{48, 48}, std::pair{16, 16}, std::pair{200, 0}, std::pair{0, 32}}) {
    Problem p = small_problem(16, 4, 128, 16);
    p.batch = 3;
    p.chunk_tokens = chunk;
    p.max_rows_per_cta = rows;
    Case c = make_case(rng, p, {700, 33, 0}, {random_tree(rng, 45), chain(20), star(8)});
    check_dtype(c, fmt::format("chunk {} rows {}", chunk, rows));
  }
}

// T = 1 equals decode_attention::run over the prefix with the token's own K/V appended.
TEST(TreeAttentionGpu, SingleTokenEqualsDecodeAttentionKernel) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (int d : {64, 128, 256}) {
    Problem p = small_problem(8, 2, d, 16);
    p.batch = 3;
    Case c = make_case(rng, p, {0, 45, 320}, {{-1}, {-1}, {-1}});
    // Decode cache: the tree pool plus each token's K/V at position prefix_len (a spare page when
    // the last page is full).
    std::vector<float> kd = c.k_pages, vd = c.v_pages;
    std::vector<int32_t> indptr = {0}, indices, last, lens;
    std::vector<int32_t> spare(c.num_pages);
    std::iota(spare.begin(), spare.end(), 0);
    for (int32_t used : c.indices) spare.erase(std::find(spare.begin(), spare.end(), used));
    const size_t row = size_t(p.kv_heads) * d;
    for (int b = 0; b < p.batch; ++b) {
      const int len = c.prefix_lens[b];
      for (int i = c.indptr[b]; i < c.indptr[b + 1]; ++i) indices.push_back(c.indices[i]);
      if (len % p.page_size == 0) indices.push_back(spare[b]);
      const int page = indices.back(), slot = len % p.page_size;
      std::copy_n(c.k_tree.begin() + b * row, row, kd.begin() + (size_t(page) * p.page_size + slot) * row);
      std::copy_n(c.v_tree.begin() + b * row, row, vd.begin() + (size_t(page) * p.page_size + slot) * row);
      indptr.push_back(static_cast<int32_t>(indices.size()));
      last.push_back(slot + 1);
      lens.push_back(len + 1);
    }
    const Plan tp = plan_for(c, Impl::mma);
    const Out tree = run_case<spw::half>(c, tp);
    const decode_attention::Problem dp = prefix_problem(p);
    const auto dpl = decode_attention::plan(dp, lens, query_device(0));
    auto q = upload_nonempty<spw::half>(c.q), kp = upload_nonempty<spw::half>(kd), vp = upload_nonempty<spw::half>(vd);
    auto di = upload_ints(indptr), dx = upload_ints(indices), dl = upload_ints(last);
    DeviceBuffer<spw::half> o(c.q.size());
    DeviceBuffer<float> lse(size_t(p.batch) * p.qo_heads);
    DeviceBuffer<unsigned char> ws(std::max<size_t>(dpl.workspace_bytes, 16));
    decode_attention::Args a;
    a.q = q.get();
    a.k_pages = kp.get();
    a.v_pages = vp.get();
    a.indptr = di.get();
    a.indices = dx.get();
    a.last_page_len = dl.get();
    a.o = o.get();
    a.lse = lse.get();
    decode_attention::run(dpl, a, ws.get(), ws.size(), nullptr);
    SPW_CUDA_CHECK(cudaDeviceSynchronize());
    const auto dec = test::to_floats(o.download());
    const std::vector<double> dec_d(dec.begin(), dec.end());
    EXPECT_TRUE(test::close_to(tree.o, dec_d, test::tolerance_for(p.dtype))) << "d " << d;
    const auto dlse = lse.download();
    for (size_t i = 0; i < dlse.size(); ++i) EXPECT_NEAR(tree.lse[i], dlse[i], 1e-3 * std::max(1.f, std::fabs(dlse[i]))) << "d " << d;
  }
}

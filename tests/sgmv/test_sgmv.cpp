// SGMV CPU tests: the fp64 reference against the naive per-token formula, planner properties,
// argument checks (messages name argument and value) and the C ABI error path.
#include <cmath>

#include "kernels/sgmv/c_api.h"
#include "kernels/sgmv/reference.h"
#include "kernels/sgmv/sgmv.h"
#include "tests/sgmv/sgmv_cases.h"

using namespace spw;
using namespace spw::sgmv;
using namespace spw::sgmv::test_cases;

namespace {
const DeviceInfo kH100 = DeviceInfo::synthetic(132);

Plan plan_of(const reference::Batch& b, const DeviceInfo& d = kH100, Path path = Path::automatic) {
  return plan(b.problem, b.seg_starts.data(), b.adapter_ids.data(), b.ranks.data(), d, path);
}

// Written entries of v only (the others are NaN in the reference).
void expect_reference_matches_naive(const CaseSpec& sp, std::mt19937_64& rng, const std::string& what) {
  Case c = make_case(sp, rng);
  const float scale = 0.75f;
  auto v = reference::shrink(c.batch, c.x, c.A);
  auto w = reference::written(c.batch);
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(std::isnan(v[i]), !w[i]) << what << " v[" << i << "]";
  auto y = reference::expand(c.batch, v, c.B, c.y, scale, c.adapter_scales);
  auto naive = naive_lora(c, scale);
  ASSERT_EQ(y.size(), naive.size());
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::fabs(y[i] - naive[i]));
  EXPECT_LT(worst, 1e-9) << what;
}
}  // namespace

TEST(SgmvReference, MatchesNaiveFormulaOnEveryLayoutAndHidden) {
  auto rng = test::make_rng();
  for (DType dt : {DType::f16, DType::bf16})
    for (Layout l : all_layouts())
      for (int hidden : {2048, 4096, 5120, 8192, 1000}) {
        CaseSpec sp;
        sp.dtype = dt;
        sp.layout = l;
        sp.hidden = hidden;
        sp.tokens = l == Layout::long_segments ? 48 : 12;
        sp.slice_sizes = {48};
        sp.rank_max = 8;
        expect_reference_matches_naive(sp, rng, fmt::format("{} {} h{}", dtype_name(dt), layout_name(l), hidden));
      }
}

TEST(SgmvReference, MixedRanksMultiSliceStridesAndScales) {
  auto rng = test::make_rng();
  for (DType dt : {DType::f16, DType::bf16}) {
    CaseSpec sp;
    sp.dtype = dt;
    sp.layout = Layout::with_none;
    sp.hidden = 512;
    sp.tokens = 20;
    sp.num_adapters = 5;
    sp.rank_max = 64;
    sp.ranks = {8, 64, 16, 1, 33};
    sp.slice_sizes = {64, 32, 32};  // Q/K/V-like
    sp.y_pad = 8;
    sp.x_pad = 16;
    sp.scales = true;
    expect_reference_matches_naive(sp, rng, "mixed ranks, 3 slices");
  }
}

// An A matrix smaller than its adapter's rank x hidden is named by its index (adapter *
// num_slices + slice), not read past its end.
TEST(SgmvReference, ShortAMatrixIsNamed) {
  auto rng = test::make_rng();
  CaseSpec sp;
  sp.hidden = 64;
  sp.tokens = 6;
  sp.num_adapters = 3;
  sp.rank_max = 8;
  sp.slice_sizes = {16, 16, 16};
  Case c = make_case(sp, rng);
  int a = -1;
  for (int i = 0; i < c.batch.problem.segments && a < 0; ++i) a = c.batch.adapter_ids[i];
  ASSERT_GE(a, 0);
  c.A[static_cast<size_t>(a) * 3 + 2].resize(1);
  EXPECT_THROW_MSG(reference::shrink(c.batch, c.x, c.A), fmt::format("reference::shrink: A[{}] too small", a * 3 + 2));
}

TEST(SgmvPlan, SplitsFillTheDeviceAndCoverHidden) {
  for (int segs : {1, 2, 8, 64, 256})
    for (int hidden : {1000, 2048, 4096, 8192}) {
      reference::Batch b;
      b.problem.tokens = segs;
      b.problem.segments = segs;
      b.problem.num_adapters = segs;
      b.problem.hidden = hidden;
      b.problem.rank_max = 16;
      b.problem.slices[0] = {0, 4096};
      b.problem.y_cols = 4096;
      for (int i = 0; i <= segs; ++i) b.seg_starts.push_back(i);
      for (int i = 0; i < segs; ++i) b.adapter_ids.push_back(i);
      b.ranks.assign(segs, 16);
      Plan p = plan_of(b);
      SCOPED_TRACE(fmt::format("segments {} hidden {}", segs, hidden));
      EXPECT_EQ(p.token_tile, 1);
      EXPECT_EQ(p.token_tiles, 1);
      EXPECT_EQ(p.k_chunk % 8, 0);
      EXPECT_GE(static_cast<long long>(p.k_split) * p.k_chunk, hidden);
      EXPECT_LT(static_cast<long long>(p.k_split - 1) * p.k_chunk, hidden);  // no empty split
      EXPECT_GE(p.k_chunk, std::min(hidden, 256));
      if (hidden % 256 == 0) {
        EXPECT_EQ(p.k_chunk % 256, 0);
      }
      const long long blocks = static_cast<long long>(segs) * p.k_split;
      // ~4 blocks per SM, less the rounding of splits to 256 elements.
      if (hidden >= 4096) {
        EXPECT_GE(blocks, std::min<long long>(3 * 132, segs * (hidden / 256)));
      }
      EXPECT_GE(segs * p.n_chunks, std::min(4 * 132, segs * 16));  // split-N down to 256 columns
      EXPECT_EQ(p.n_chunks * p.n_chunk_cols >= 4096 && (p.n_chunks - 1) * p.n_chunk_cols < 4096, true);
      if (p.k_split == 1) {
        EXPECT_EQ(p.workspace_bytes, 0u);
      } else {
        EXPECT_GE(p.workspace_bytes, static_cast<size_t>(p.k_split) * segs * 16 * 4 + segs * 4);
      }
    }
}

TEST(SgmvPlan, LongSegmentsUseTilesAndNoAdapterSegmentsAreFree) {
  auto rng = test::make_rng();
  CaseSpec sp;
  sp.layout = Layout::long_segments;
  sp.tokens = 200;
  Case c = make_case(sp, rng);
  Plan p = plan_of(c.batch);
  EXPECT_EQ(p.token_tile, 8);
  int longest = 0;
  for (size_t i = 0; i + 1 < c.batch.seg_starts.size(); ++i)
    longest = std::max(longest, c.batch.seg_starts[i + 1] - c.batch.seg_starts[i]);
  EXPECT_EQ(p.max_seg_len, longest);
  EXPECT_EQ(p.token_tiles, (longest + 7) / 8);
  // All segments without adapter: nothing used, no workspace, no launch.
  std::fill(c.batch.adapter_ids.begin(), c.batch.adapter_ids.end(), -1);
  Plan none = plan_of(c.batch);
  EXPECT_EQ(none.used_segments, 0);
  EXPECT_EQ(none.max_seg_len, 0);
  // Empty batch.
  reference::Batch e;
  e.problem = c.batch.problem;
  e.problem.tokens = e.problem.segments = 0;
  e.seg_starts = {0};
  e.ranks = c.batch.ranks;
  EXPECT_EQ(plan_of(e).used_segments, 0);
}

TEST(SgmvPlan, PathChoiceAndForcedPaths) {
  auto rng = test::make_rng();
  CaseSpec sp;
  sp.layout = Layout::per_token;
  sp.tokens = 64;
  EXPECT_EQ(plan_of(make_case(sp, rng).batch).path, Path::gemv);
  sp.layout = Layout::long_segments;  // 9..40 tokens
  EXPECT_EQ(plan_of(make_case(sp, rng).batch).path, Path::tiled);
  sp.layout = Layout::one_adapter;
  sp.tokens = 300;
  Case c = make_case(sp, rng);
  Plan tc = plan_of(c.batch);
  EXPECT_EQ(tc.path, Path::tensor_core);
  EXPECT_EQ(tc.token_tile, 64);
  EXPECT_EQ(tc.token_tiles, 5);
  EXPECT_EQ(tc.n_chunk_cols, 128);
  EXPECT_EQ(tc.n_chunks, 2);  // 256 outputs
  for (Path p : {Path::gemv, Path::tiled, Path::tensor_core}) {
    Plan f = plan_of(c.batch, kH100, p);
    EXPECT_EQ(f.path, p);
    EXPECT_EQ(f.token_tiles, (300 + f.token_tile - 1) / f.token_tile);
    EXPECT_GE(static_cast<long long>(f.n_chunks) * f.n_chunk_cols, 256);
  }
  EXPECT_THROW_MSG(plan_of(c.batch, kH100, static_cast<Path>(7)), "path = 7");
}

// The automatic path's thresholds on the longest segment (GEMV up to 2 tokens, 8-token tiles
// below 48, tensor cores from 48) and the largest number of slices (kMaxSlices) accepted.
TEST(SgmvPlan, PathThresholdsAndSliceLimit) {
  auto batch = [](int seg_len, int slices) {
    reference::Batch b;
    b.problem.tokens = seg_len;
    b.problem.segments = 1;
    b.problem.num_adapters = 1;
    b.problem.hidden = 1024;
    b.problem.rank_max = 16;
    b.problem.num_slices = slices;
    for (int s = 0; s < slices; ++s) b.problem.slices[s] = {s * 64, 64};
    b.problem.y_cols = slices * 64;
    b.seg_starts = {0, seg_len};
    b.adapter_ids = {0};
    b.ranks = {16};
    return b;
  };
  EXPECT_EQ(plan_of(batch(2, 1)).path, Path::gemv);
  EXPECT_EQ(plan_of(batch(3, 1)).path, Path::tiled);
  EXPECT_EQ(plan_of(batch(47, 1)).path, Path::tiled);
  EXPECT_EQ(plan_of(batch(48, 1)).path, Path::tensor_core);
  EXPECT_EQ(plan_of(batch(4, kMaxSlices)).problem.num_slices, kMaxSlices);
  reference::Batch b = batch(4, 1);
  b.seg_starts = {0, 5};
  b.problem.tokens = 4;
  EXPECT_THROW_MSG(plan_of(b), "seg_starts[1] = 5: must equal tokens = 4");
  b = batch(4, 2);
  b.problem.segments = 2;
  b.seg_starts = {0, 3, 2};
  b.adapter_ids = {0, 0};
  EXPECT_THROW_MSG(plan_of(b), "seg_starts[2] = 2: must be >= seg_starts[1] = 3 (not monotone)");
}

TEST(SgmvPlan, RejectsBadArgumentsNamingThem) {
  auto rng = test::make_rng();
  CaseSpec sp;
  sp.tokens = 10;
  sp.slice_sizes = {64, 64};
  Case c = make_case(sp, rng);
  auto bad = [&](auto mutate, const char* msg) {
    reference::Batch b = c.batch;
    mutate(b);
    EXPECT_THROW_MSG(plan_of(b), msg);
  };
  bad([](auto& b) { if (b.seg_starts.size() > 2) std::swap(b.seg_starts[1], b.seg_starts[2]); else b.seg_starts[1] = -1; },
      "(not monotone)");
  bad([](auto& b) { b.seg_starts[0] = 1; }, "seg_starts[0] = 1: must be 0");
  bad([](auto& b) { b.seg_starts.back() = 99; }, "must equal tokens = 10");
  bad([](auto& b) { b.adapter_ids[0] = 4; }, "adapter_ids[0] = 4: must be -1 or in [0, num_adapters = 4)");
  bad([](auto& b) { b.adapter_ids[0] = -2; }, "adapter_ids[0] = -2");
  bad([](auto& b) { b.ranks[1] = 17; }, "ranks[1] = 17: must be in [1, rank_max = 16]");
  bad([](auto& b) { b.problem.rank_max = 512; }, "rank_max = 512: must be in [1, 256]");
  bad([](auto& b) { b.problem.hidden = 1001; }, "hidden = 1001");
  bad([](auto& b) { b.problem.num_slices = 5; }, "num_slices = 5");
  bad([](auto& b) { b.problem.slices[1].out_size = 12; }, "slices[1].out_size = 12");
  bad([](auto& b) { b.problem.slices[1].out_offset = 32; }, "slices[1].out_offset = 32: overlaps slice 0");
  bad([](auto& b) { b.problem.slices[1].out_size = 128; }, "slices[1].out_offset = 64");  // past y_cols
  bad([](auto& b) { b.problem.dtype = DType::f32; }, "dtype = fp32");
  bad([](auto& b) { b.problem.x_stride = 100; }, "x_stride = 100");
  EXPECT_THROW_MSG(plan(c.batch.problem, nullptr, c.batch.adapter_ids.data(), c.batch.ranks.data(), kH100),
                   "seg_starts = null");
}

TEST(SgmvRun, RejectsNullAndMisalignedPointersBeforeLaunch) {
  auto rng = test::make_rng();
  CaseSpec sp;
  sp.tokens = 4;
  sp.layout = Layout::per_token;
  Case c = make_case(sp, rng);
  Plan p = plan_of(c.batch);
  alignas(16) static char buf[1 << 16];
  int32_t* dev_like = reinterpret_cast<int32_t*>(buf);
  ShrinkArgs s;
  s.seg = {dev_like, dev_like, dev_like};
  s.x = buf;
  s.A.stacked = buf;
  s.v = reinterpret_cast<float*>(buf);
  auto ws = p.workspace_bytes;
  {
    ShrinkArgs a = s;
    a.x = buf + 2;
    EXPECT_THROW_MSG(shrink(p, a, buf, ws, nullptr), "sgmv::shrink: x = ");
  }
  {
    ShrinkArgs a = s;
    a.A.ptrs = reinterpret_cast<const void* const*>(buf);
    EXPECT_THROW_MSG(shrink(p, a, buf, ws, nullptr), "exactly one of ptrs");
  }
  {
    ShrinkArgs a = s;
    a.seg.seg_starts = nullptr;
    EXPECT_THROW_MSG(shrink(p, a, buf, ws, nullptr), "seg.seg_starts = null");
  }
  {
    ShrinkArgs a = s;
    a.v = nullptr;
    EXPECT_THROW_MSG(shrink(p, a, buf, ws, nullptr), "v = null");
  }
  {
    ShrinkArgs a = s;
    a.seg.ranks = nullptr;
    ASSERT_GT(p.problem.num_adapters, 0);
    EXPECT_THROW_MSG(shrink(p, a, buf, ws, nullptr), "sgmv::shrink: seg.ranks = null");
  }
  if (ws > 0) EXPECT_THROW_MSG(shrink(p, s, buf, ws - 1, nullptr), "workspace_bytes");
  ExpandArgs e;
  e.seg = s.seg;
  e.v = reinterpret_cast<float*>(buf);
  e.B.stacked = buf + 8;
  e.y = buf;
  EXPECT_THROW_MSG(expand(p, e, nullptr), "B.stacked");
  e.B.stacked = buf;
  e.y = buf + 4;
  EXPECT_THROW_MSG(expand(p, e, nullptr), "sgmv::expand: y = ");
  e.y = nullptr;
  EXPECT_THROW_MSG(expand(p, e, nullptr), "y = null");
  e.y = buf;
  e.v = reinterpret_cast<float*>(buf + 64);
  EXPECT_THROW_MSG(apply(p, s, e, buf, ws, nullptr), "sgmv::apply: expand.v");
  e.v = s.v;
  e.seg.ranks = dev_like + 4;
  EXPECT_THROW_MSG(apply(p, s, e, buf, ws, nullptr), "sgmv::apply: expand.seg");
}

TEST(SgmvCApi, ErrorPathSetsStatusAndMessage) {
  spw_sgmv_problem pr{};
  pr.dtype = SPW_FP16;
  pr.tokens = 2;
  pr.segments = 2;
  pr.num_adapters = 1;
  pr.hidden = 4096;
  pr.rank_max = 16;
  pr.num_slices = 1;
  pr.slice_out_size[0] = 4096;
  pr.y_cols = 4096;
  int32_t seg[] = {0, 1, 2}, ids[] = {0, 3}, ranks[] = {16};
  spw_sgmv_plan* plan = reinterpret_cast<spw_sgmv_plan*>(1);
  EXPECT_EQ(spw_sgmv_plan_create(&pr, seg, ids, ranks, 132, &plan), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(plan, nullptr);
  EXPECT_NE(std::string(spw_last_error()).find("adapter_ids[1] = 3"), std::string::npos) << spw_last_error();
  pr.dtype = 7;
  EXPECT_EQ(spw_sgmv_plan_create(&pr, seg, ids, ranks, 132, &plan), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem.dtype = 7"), std::string::npos) << spw_last_error();
  pr.dtype = SPW_BF16;
  EXPECT_EQ(spw_sgmv_plan_create(nullptr, seg, ids, ranks, 132, &plan), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem = null"), std::string::npos) << spw_last_error();
  ids[1] = -1;
  pr.path = 9;
  EXPECT_EQ(spw_sgmv_plan_create(&pr, seg, ids, ranks, 132, &plan), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("path = 9"), std::string::npos) << spw_last_error();
  pr.path = 3;
  ASSERT_EQ(spw_sgmv_plan_create(&pr, seg, ids, ranks, 132, &plan), SPW_OK) << spw_last_error();
  size_t ws = 0;
  EXPECT_EQ(spw_sgmv_plan_workspace_bytes(plan, &ws), SPW_OK);
  EXPECT_EQ(spw_sgmv_shrink(plan, seg, ids, ranks, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("exactly one of ptrs"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_sgmv_expand(nullptr, seg, ids, ranks, nullptr, nullptr, nullptr, nullptr, 1.f, nullptr, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("plan = null"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_sgmv_baseline_cublas_grouped(SPW_FP32, 1, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                             nullptr, 0, nullptr, nullptr, 0, 1.f, 0.f, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("dtype = 2"), std::string::npos) << spw_last_error();
  spw_sgmv_plan_destroy(plan);
}

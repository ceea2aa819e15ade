// Flat GEMM CPU tests: the fp64 reference against a naive loop and hand-computed epilogues,
// the dispatcher and planner for every M in 1..64 on real-model and odd shapes, split-K plan
// properties, every bad argument rejected with a message naming it, and the C ABI error path.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/common/vec.h"
#include "kernels/flat_gemm/c_api.h"
#include "kernels/flat_gemm/flat_gemm.h"
#include "kernels/flat_gemm/reference.h"
#include "tests/common/helpers.h"
#include "tests/flat_gemm/flat_gemm_cases.h"

using namespace spw;
using namespace spw::flat_gemm;

namespace {

Problem make(int m, int n, int k, DType dt = DType::f16) {
  Problem p;
  p.dtype = dt;
  p.out_dtype = dt;
  p.m = m;
  p.n = n;
  p.k = k;
  return p;
}

const DeviceInfo kH100 = [] {
  DeviceInfo d = DeviceInfo::synthetic(132);
  d.name = "NVIDIA H100 80GB HBM3";
  return d;
}();

void expect_valid_plan(const Plan& pl, const std::string& what) {
  const Problem& p = pl.problem;
  if (pl.impl == Impl::gemv) {
    EXPECT_LE(p.m, kMaxGemvM) << what;
    EXPECT_EQ(pl.workspace_bytes, 0u) << what;
  } else if (pl.impl == Impl::mma) {
    EXPECT_LE(p.m, kMaxFlatM) << what;
    EXPECT_GE(pl.m_tiles * 8, p.m) << what;
    EXPECT_LT((pl.m_tiles / 2) * 8, p.m) << what << ": smallest M tiling";
    EXPECT_EQ(pl.n_tiles, mma_n_tiles(p)) << what;
    EXPECT_GE(pl.split_k, 1) << what;
    EXPECT_LE(pl.split_k, kMaxSplitK) << what;
    EXPECT_EQ(pl.k_chunk % kTileK, 0) << what;
    EXPECT_GE(static_cast<long long>(pl.split_k) * pl.k_chunk, p.k) << what << ": splits cover K";
    EXPECT_LT(static_cast<long long>(pl.split_k - 1) * pl.k_chunk, p.k) << what << ": no empty split";
    if (pl.split_k > 1) EXPECT_GE(pl.workspace_bytes, size_t(pl.split_k) * p.m * p.n * 4) << what;
    else EXPECT_EQ(pl.workspace_bytes, 0u) << what;
  } else {
    ASSERT_EQ(pl.impl, Impl::cublaslt) << what;
    EXPECT_GE(pl.workspace_bytes, kCublasLtWorkspace) << what;
  }
}

}  // namespace

TEST(FlatGemmReference, MatchesNaiveLoop) {
  auto rng = test::make_rng();
  for (auto [m, n, k] : {std::tuple{1, 7, 8}, {5, 33, 24}, {64, 65, 40}}) {
    const auto x = test::random_floats(rng, size_t(m) * k, -1, 1, DType::f16);
    const auto w = test::random_floats(rng, size_t(n) * k, -1, 1, DType::f16);
    const auto ref = reference(make(m, n, k), x, w, {}, {});
    const auto naive = naive_matmul(m, n, k, x, w);
    ASSERT_EQ(ref.size(), naive.size());
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(ref[i], naive[i], 1e-12) << i;
  }
}

TEST(FlatGemmReference, EpiloguesByHand) {
  // X = [1 2 ... 8], W rows: e0 (gate, picks 1), 2*e1 (up, picks 4); bias (0.5, -1).
  Problem p = make(1, 2, 8);
  p.has_bias = p.has_residual = p.swiglu = true;
  std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8}, w(16, 0.f);
  w[0] = 1;
  w[8 + 1] = 2;
  const auto y = reference(p, x, w, {0.5f, -1.f}, {0.25f});
  ASSERT_EQ(y.size(), 1u);
  const double g = 1.5, u = 3.0;
  EXPECT_NEAR(y[0], g / (1 + std::exp(-g)) * u + 0.25, 1e-12);
  p.swiglu = false;
  const auto y2 = reference(p, x, w, {0.5f, -1.f}, {0.25f, 2.f});
  EXPECT_NEAR(y2[0], 1.5 + 0.25, 1e-12);
  EXPECT_NEAR(y2[1], 3.0 + 2.0, 1e-12);
  // Two SwiGLU outputs: gate rows 0..1, up rows 2..3 (column j pairs row j with row 2 + j).
  Problem p2 = make(1, 4, 8);
  p2.swiglu = true;
  std::vector<float> w2(32, 0.f);
  w2[0] = 1;          // gate 0 = x0 = 1
  w2[8 + 1] = 1;      // gate 1 = x1 = 2
  w2[16 + 2] = 1;     // up 0 = x2 = 3
  w2[24 + 3] = 2;     // up 1 = 2 x3 = 8
  const auto y3 = reference(p2, x, w2, {}, {});
  ASSERT_EQ(y3.size(), 2u);
  EXPECT_NEAR(y3[0], 1.0 / (1 + std::exp(-1.0)) * 3.0, 1e-12);
  EXPECT_NEAR(y3[1], 2.0 / (1 + std::exp(-2.0)) * 8.0, 1e-12);
}

TEST(FlatGemmDispatch, ValidPlanForEveryMOnEveryShape) {
  std::vector<std::pair<int, int>> shapes = test_cases::kModelShapes;
  shapes.insert(shapes.end(), test_cases::kOddShapes.begin(), test_cases::kOddShapes.end());
  for (const DeviceInfo& dev : {kH100, DeviceInfo::synthetic(108, 8, 0), DeviceInfo::synthetic(1)})
    for (auto [n, k] : shapes)
      for (bool swiglu : {false, true}) {
        if (swiglu && n % 2) continue;
        for (int m = 1; m <= 64; ++m) {
          Problem p = make(m, n, k, m % 2 ? DType::f16 : DType::bf16);
          p.swiglu = swiglu;
          const Plan pl = plan(p, dev);
          const std::string what = fmt::format("m={} n={} k={} swiglu={} sms={}", m, n, k, swiglu, dev.sm_count);
          expect_valid_plan(pl, what);
          EXPECT_NE(pl.impl, Impl::cublaslt) << what << ": M <= 64 stays on our kernels";
          if (!pl.from_table) {
            EXPECT_EQ(pl.impl, m <= 4 ? Impl::gemv : Impl::mma) << what << " (rules)";
          }
        }
      }
}

TEST(FlatGemmDispatch, LargeMGoesToCublasLt) {
  for (int m : {65, 128, 4096}) {
    const Plan pl = plan(make(m, 4096, 4096), kH100);
    EXPECT_EQ(pl.impl, Impl::cublaslt) << m;
    expect_valid_plan(pl, fmt::format("m={}", m));
  }
}

TEST(FlatGemmDispatch, TableRowsWinForTheirDeviceAndShape) {
  const TableEntry rows[] = {{"H100", 4096, 4096, 2, Impl::gemv, 1},
                             {"H100", 4096, 4096, 16, Impl::mma, 3},
                             {"H100", 4096, 4096, 64, Impl::cublaslt, 1},
                             {nullptr, 0, 0, 0, Impl::automatic, 0}};
  auto pick = [&](int m, int n, const DeviceInfo& d) { return dispatch_with(rows, 4, make(m, n, 4096), d); };
  EXPECT_EQ(pick(1, 4096, kH100).impl, Impl::gemv);
  EXPECT_TRUE(pick(1, 4096, kH100).from_table);
  EXPECT_EQ(pick(3, 4096, kH100).impl, Impl::mma);
  EXPECT_EQ(pick(3, 4096, kH100).split_k, 3);
  EXPECT_EQ(pick(40, 4096, kH100).impl, Impl::cublaslt);
  EXPECT_FALSE(pick(65, 4096, kH100).from_table);  // beyond every row: rules
  EXPECT_FALSE(pick(1, 6144, kH100).from_table);   // other shape: rules
  EXPECT_FALSE(pick(1, 4096, DeviceInfo::synthetic(132)).from_table);  // other device: rules
  EXPECT_EQ(dispatch_table_size() >= 0, true);
  // m_max is inclusive: rows end exactly where the next one starts.
  EXPECT_EQ(pick(2, 4096, kH100).impl, Impl::gemv);
  EXPECT_EQ(pick(16, 4096, kH100).split_k, 3);
  EXPECT_TRUE(pick(64, 4096, kH100).from_table);
  // A row naming an impl that cannot take this M is passed over: gemv above 8 rows, mma above 64.
  const TableEntry wide[] = {{"H100", 4096, 4096, 128, Impl::gemv, 1},
                             {"H100", 4096, 4096, 128, Impl::mma, 2},
                             {"H100", 4096, 4096, 128, Impl::cublaslt, 1},
                             {nullptr, 0, 0, 0, Impl::automatic, 0}};
  auto pick_wide = [&](int m) { return dispatch_with(wide, 4, make(m, 4096, 4096), kH100); };
  EXPECT_EQ(pick_wide(8).impl, Impl::gemv);
  EXPECT_EQ(pick_wide(9).impl, Impl::mma);
  EXPECT_EQ(pick_wide(64).impl, Impl::mma);
  EXPECT_EQ(pick_wide(65).impl, Impl::cublaslt);
  EXPECT_TRUE(pick_wide(65).from_table);
}

TEST(FlatGemmPlan, SplitKFillsTheDevice) {
  // N = 4096 gives 64 tiles: two waves of 132 SMs need ~5 splits; K = 4096 allows 16.
  Plan pl = plan(make(16, 4096, 4096), kH100);
  ASSERT_EQ(pl.impl, Impl::mma);
  EXPECT_GE(pl.n_tiles * pl.split_k, 2 * 132 * 9 / 10);
  EXPECT_GT(pl.split_k, 1);
  // lm_head: 2004 tiles fill the device alone.
  EXPECT_EQ(plan(make(16, 128256, 4096), kH100).split_k, 1);
  // Short K: each split keeps >= 4 stages of 64.
  EXPECT_EQ(plan(make(16, 64, 256), kH100).split_k, 1);
  EXPECT_LE(plan(make(16, 64, 1024), kH100).split_k, 4);
  // Deterministic planning.
  EXPECT_EQ(plan(make(9, 4096, 11008), kH100).split_k, plan(make(9, 4096, 11008), kH100).split_k);
}

TEST(FlatGemmPlan, ForcedOptions) {
  Plan pl = plan(make(3, 4096, 4096), kH100, {Impl::mma, 0});
  EXPECT_EQ(pl.impl, Impl::mma);
  pl = plan(make(3, 4096, 4096), kH100, {Impl::automatic, 1});
  EXPECT_EQ(pl.impl, Impl::mma);
  EXPECT_EQ(pl.split_k, 1);
  EXPECT_EQ(pl.workspace_bytes, 0u);
  pl = plan(make(20, 4096, 4096), kH100, {Impl::mma, 7});
  EXPECT_EQ(pl.split_k, 7);
  EXPECT_EQ(pl.k_chunk, 640);
  pl = plan(make(20, 4096, 200), kH100, {Impl::mma, 16});  // only 4 stages of K: clamped
  EXPECT_EQ(pl.split_k, 4);
  pl = plan(make(20, 4096, 4096), kH100, {Impl::cublaslt, 0});
  EXPECT_EQ(pl.impl, Impl::cublaslt);
  EXPECT_EQ(pl.workspace_bytes, kCublasLtWorkspace);
  Problem e = make(20, 4096, 4096);
  e.has_bias = true;
  EXPECT_GT(plan(e, kH100, {Impl::cublaslt, 0}).workspace_bytes, kCublasLtWorkspace);  // fp32 product
  pl = plan(make(8, 4096, 4096), kH100, {Impl::gemv, 0});
  EXPECT_EQ(pl.impl, Impl::gemv);
}

TEST(FlatGemmPlan, BatchInvariantPlansOneImplAndSplitForEveryM) {
  for (auto [n, k] : {std::pair{4096, 4096}, std::pair{128256, 4096}, std::pair{200, 1000}, std::pair{576, 1536}}) {
    const Plan first = plan(make(1, n, k), kH100, {Impl::automatic, 0, 0, true});
    EXPECT_EQ(first.split_k, rule_split_k(mma_n_tiles(make(1, n, k)), k, 132)) << n << "x" << k;
    for (int m = 1; m <= 300; m += (m < 70 ? 1 : 37)) {
      const Plan pl = plan(make(m, n, k), kH100, {Impl::automatic, 0, 0, true});
      ASSERT_EQ(pl.impl, Impl::mma) << "m " << m;
      ASSERT_TRUE(pl.batch_invariant);
      ASSERT_EQ(pl.split_k, first.split_k) << "m " << m;
      ASSERT_EQ(pl.k_chunk, first.k_chunk) << "m " << m;
      ASSERT_EQ(pl.n_tiles, first.n_tiles);
      // Partials of one 64-row slice at a time.
      const size_t rows = std::min(m, kMaxFlatM);
      ASSERT_EQ(pl.workspace_bytes, pl.split_k > 1 ? round_up(pl.split_k * rows * n * 4, size_t(256)) : 0u) << m;
    }
  }
  // A given split is kept; gemv / cuBLASLt cannot be batch-invariant here.
  EXPECT_EQ(plan(make(100, 4096, 4096), kH100, {Impl::mma, 3, 0, true}).split_k, 3);
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {Impl::gemv, 0, 0, true}),
                   "options.impl = gemv: must be automatic or mma with options.batch_invariant");
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {Impl::cublaslt, 0, 0, true}), "options.impl = cublaslt");
}

TEST(FlatGemmPlan, BadProblemsNamed) {
  auto bad = [](Problem p) { return plan(p, kH100); };
  Problem p = make(4, 64, 64);
  p.dtype = DType::f32;
  EXPECT_THROW_MSG(bad(p), "flat_gemm::plan: dtype = fp32: must be fp16 or bf16");
  p = make(4, 64, 64);
  p.out_dtype = DType::bf16;
  EXPECT_THROW_MSG(bad(p), "out_dtype = bf16: must be the input dtype (fp16) or fp32");
  EXPECT_THROW_MSG(bad(make(0, 64, 64)), "m = 0: must be >= 1");
  EXPECT_THROW_MSG(bad(make(1, 0, 64)), "n = 0: must be >= 1");
  EXPECT_THROW_MSG(bad(make(1, 64, 60)), "k = 60: must be a positive multiple of 8");
  EXPECT_THROW_MSG(bad(make(1, 64, 0)), "k = 0: must be a positive multiple of 8");
  p = make(1, 63, 64);
  p.swiglu = true;
  EXPECT_THROW_MSG(bad(p), "n = 63: must be even with swiglu");
  EXPECT_THROW_MSG(plan(make(1, 64, 64), DeviceInfo{}), "device.sm_count = 0");
  EXPECT_THROW_MSG(plan(make(9, 64, 64), kH100, {Impl::gemv, 0}), "m = 9: must be <= 8 for the gemv impl");
  EXPECT_THROW_MSG(plan(make(65, 64, 64), kH100, {Impl::mma, 0}), "m = 65: must be <= 64 for the mma impl");
  EXPECT_THROW_MSG(plan(make(65, 64, 64), kH100, {Impl::automatic, 2}), "m = 65: must be <= 64");
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {Impl::automatic, 17}), "options.split_k = 17");
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {Impl::automatic, -1}), "options.split_k = -1");
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {Impl::gemv, 2}), "split-K exists only on the mma impl");
  // The edges that are allowed: gemv up to 8 rows, mma up to 64; split_k = 1 (no split) keeps
  // a forced gemv / cublaslt, and with impl automatic selects mma.
  EXPECT_EQ(plan(make(8, 64, 64), kH100, {Impl::gemv, 0}).impl, Impl::gemv);
  EXPECT_EQ(plan(make(64, 64, 64), kH100, {Impl::mma, 0}).impl, Impl::mma);
  EXPECT_EQ(plan(make(1, 64, 64), kH100, {Impl::gemv, 1}).impl, Impl::gemv);
  EXPECT_EQ(plan(make(40, 64, 64), kH100, {Impl::cublaslt, 1}).impl, Impl::cublaslt);
  const Plan one = plan(make(1, 64, 64), kH100, {Impl::automatic, 1});
  EXPECT_EQ(one.impl, Impl::mma);
  EXPECT_EQ(one.split_k, 1);
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {static_cast<Impl>(9), 0}), "options.impl = 9");
  EXPECT_THROW_MSG(plan(make(1, 64, 64), kH100, {Impl::cublaslt, 0, 8}), "options.cublaslt_algo = 8");
}

TEST(FlatGemmRun, BadArgumentsNamedBeforeLaunch) {
  Problem p = make(4, 64, 64);
  p.has_bias = true;
  const Plan pl = plan(p, kH100, {Impl::mma, 1});
  alignas(16) static unsigned char buf[4096];
  Args a;
  a.x = buf;
  a.w = buf;
  a.y = buf;
  a.bias = buf;
  auto go = [&](const Args& args, void* ws = nullptr, size_t bytes = 0) { run(pl, args, ws, bytes, nullptr); };
  Args b = a;
  b.x = nullptr;
  EXPECT_THROW_MSG(go(b), "flat_gemm::run: x = 0x0: must be a 16-byte aligned device pointer");
  b = a;
  b.w = buf + 8;
  EXPECT_THROW_MSG(go(b), "flat_gemm::run: w = ");
  EXPECT_THROW_MSG(go(b), "must be a 16-byte aligned device pointer");
  b = a;
  b.y = buf + 1;
  EXPECT_THROW_MSG(go(b), "y = ");
  b = a;
  b.bias = nullptr;
  EXPECT_THROW_MSG(go(b), "bias = 0x0: must be set (problem.has_bias)");
  b = a;
  b.residual = buf;
  EXPECT_THROW_MSG(go(b), "must be null (problem.has_residual is false)");
  // split-K plan needs its workspace
  Problem pk = p;
  pk.k = 1024;
  const Plan split = plan(pk, kH100, {Impl::mma, 2});
  ASSERT_EQ(split.split_k, 2);
  EXPECT_THROW_MSG(run(split, a, nullptr, 0, nullptr),
                   fmt::format("workspace_bytes = 0: must be >= plan.workspace_bytes = {}", split.workspace_bytes));
  EXPECT_THROW_MSG(run(split, a, buf + 4, split.workspace_bytes, nullptr), "workspace = ");
  // cuBLASLt needs the caller's handle
  const Plan lt = plan(p, kH100, {Impl::cublaslt, 0});
  EXPECT_THROW_MSG(run(lt, a, buf, lt.workspace_bytes, nullptr), "cublaslt_handle = null");
  // a hand-broken plan
  Plan broken = pl;
  broken.k_chunk = 10;
  EXPECT_THROW_MSG(run(broken, a, nullptr, 0, nullptr), "plan is inconsistent");
}

TEST(FlatGemmCApi, ErrorPath) {
  spw_flat_gemm_problem c{};
  c.dtype = SPW_FP16;
  c.out_dtype = SPW_FP16;
  c.m = 4;
  c.n = 64;
  c.k = 60;
  spw_flat_gemm_plan* h = reinterpret_cast<spw_flat_gemm_plan*>(1);
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(std::string(spw_last_error()).find("k = 60"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_flat_gemm_plan_create(nullptr, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem = null"), std::string::npos);
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, nullptr), SPW_ERROR_INVALID_ARGUMENT);
  c.k = 64;
  c.dtype = 7;
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem.dtype = 7"), std::string::npos);
  c.dtype = SPW_FP16;
  c.swiglu = 2;
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem.swiglu = 2"), std::string::npos);
  c.swiglu = 0;
  c.impl = 4;
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem.impl = 4"), std::string::npos);
  c.impl = SPW_FLAT_GEMM_MMA;
  c.split_k = 2;
  ASSERT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_OK) << spw_last_error();
  int impl = -1, split = -1, from_table = -1;
  size_t ws = 0;
  ASSERT_EQ(spw_flat_gemm_plan_info(h, &impl, &split, &from_table, &ws), SPW_OK);
  EXPECT_EQ(impl, SPW_FLAT_GEMM_MMA);
  EXPECT_EQ(split, 1);  // K = 64 is one stage: clamped
  EXPECT_EQ(from_table, 0);
  EXPECT_EQ(ws, 0u);
  EXPECT_EQ(spw_flat_gemm_run(h, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("x = 0x0"), std::string::npos) << spw_last_error();
  EXPECT_EQ(spw_flat_gemm_run(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr),
            SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("plan = null"), std::string::npos);
  EXPECT_EQ(spw_flat_gemm_plan_info(nullptr, nullptr, nullptr, nullptr, nullptr), SPW_ERROR_INVALID_ARGUMENT);
  spw_flat_gemm_plan_destroy(h);
  // batch_invariant: the mma impl for any m (200 here), refused with gemv, checked as a flag.
  c.impl = SPW_FLAT_GEMM_AUTO;
  c.split_k = 0;
  c.m = 200;
  c.batch_invariant = 1;
  ASSERT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_OK) << spw_last_error();
  ASSERT_EQ(spw_flat_gemm_plan_info(h, &impl, &split, &from_table, &ws), SPW_OK);
  EXPECT_EQ(impl, SPW_FLAT_GEMM_MMA);
  spw_flat_gemm_plan_destroy(h);
  c.impl = SPW_FLAT_GEMM_GEMV;
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("options.impl = gemv"), std::string::npos) << spw_last_error();
  c.impl = SPW_FLAT_GEMM_AUTO;
  c.batch_invariant = 3;
  EXPECT_EQ(spw_flat_gemm_plan_create(&c, 132, &h), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(spw_last_error()).find("problem.batch_invariant = 3"), std::string::npos) << spw_last_error();
  spw_flat_gemm_plan_destroy(nullptr);
  EXPECT_EQ(spw_flat_gemm_cublaslt_create(nullptr), SPW_ERROR_INVALID_ARGUMENT);
}

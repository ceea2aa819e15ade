// Flat GEMM GPU tests against the fp64 reference (skipped without a usable GPU): every M in
// 1..64, real-model and odd N/K (N not a multiple of the 64-row tile, K not a multiple of the
// 64-element stage), each epilogue, both dtypes, fp32 output, every impl (gemv, mma with and
// without split-K, cuBLASLt), bitwise determinism, CUDA graph replay, poisoned outputs,
// in-place residual.
#include <cublasLt.h>

#include <cstring>
#include <memory>

#include "kernels/common/cublas_check.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/flat_gemm/flat_gemm.h"
#include "kernels/flat_gemm/reference.h"
#include "tests/common/graph_capture.h"
#include "tests/common/helpers.h"
#include "tests/flat_gemm/flat_gemm_cases.h"

using namespace spw;
using namespace spw::flat_gemm;

// (a named namespace, not an anonymous one: the simulator build #includes this file, and GCC
// warns of test classes whose bases or captures have internal linkage there)
namespace flat_gemm_gpu_test {

struct LtHandle {
  cublasLtHandle_t h = nullptr;
  LtHandle() { SPW_CUBLAS_CHECK(cublasLtCreate(&h)); }
  ~LtHandle() { cublasLtDestroy(h); }
};

std::vector<unsigned char> to_bytes(const std::vector<float>& v, DType t) {
  std::vector<unsigned char> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::f32) std::memcpy(&out[i * 4], &v[i], 4);
    else if (t == DType::f16) { half h = from_float<half>(v[i]); std::memcpy(&out[i * 2], &h, 2); }
    else { bfloat16 h = from_float<bfloat16>(v[i]); std::memcpy(&out[i * 2], &h, 2); }
  }
  return out;
}
std::vector<float> from_bytes(const std::vector<unsigned char>& b, DType t) {
  std::vector<float> out(b.size() / dtype_size(t));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t == DType::f32) std::memcpy(&out[i], &b[i * 4], 4);
    else if (t == DType::f16) { half h; std::memcpy(&h, &b[i * 2], 2); out[i] = to_float(h); }
    else { bfloat16 h; std::memcpy(&h, &b[i * 2], 2); out[i] = to_float(h); }
  }
  return out;
}

test::Tolerance tolerance(const Problem& p) {
  return p.out_dtype == DType::f32 ? test::Tolerance{1e-4, 1e-3} : test::tolerance_for(p.dtype);
}

// Inputs of one problem on host (floats rounded to their dtype) and device, plus its reference.
struct Case {
  Problem p;
  std::vector<float> x, w, bias, residual;
  std::vector<double> ref;
  DeviceBuffer<unsigned char> dx, dw, dbias, dres, dy, ws;
  LtHandle lt;

  Case(const Problem& prob, uint64_t seed) : p(prob) {
    auto rng = test::make_rng(seed);
    x = test::random_floats(rng, size_t(p.m) * p.k, -1, 1, p.dtype);
    w = test::random_floats(rng, size_t(p.n) * p.k, -1, 1, p.dtype);
    if (p.has_bias) bias = test::random_floats(rng, p.n, -1, 1, p.dtype);
    if (p.has_residual) residual = test::random_floats(rng, size_t(p.m) * p.n_out(), -2, 2, p.out_dtype);
    ref = reference(p, x, w, bias, residual);
    dx = DeviceBuffer<unsigned char>(to_bytes(x, p.dtype));
    dw = DeviceBuffer<unsigned char>(to_bytes(w, p.dtype));
    if (p.has_bias) dbias = DeviceBuffer<unsigned char>(to_bytes(bias, p.dtype));
    if (p.has_residual) dres = DeviceBuffer<unsigned char>(to_bytes(residual, p.out_dtype));
    dy = DeviceBuffer<unsigned char>(size_t(p.m) * p.n_out() * dtype_size(p.out_dtype));
  }
  Args args() {
    Args a;
    a.x = dx.get();
    a.w = dw.get();
    a.bias = p.has_bias ? dbias.get() : nullptr;
    a.residual = p.has_residual ? dres.get() : nullptr;
    a.y = dy.get();
    a.cublaslt_handle = lt.h;
    return a;
  }
  // Poisons y, runs `pl`, returns y as bytes.
  std::vector<unsigned char> run_plan(const Plan& pl) {
    if (ws.size() < pl.workspace_bytes) ws = DeviceBuffer<unsigned char>(pl.workspace_bytes);
    ws.fill_bytes(test::kPoisonByte);  // partials need no initialisation (no-op when empty)
    dy.fill_bytes(test::kPoisonByte);
    run(pl, args(), ws.get(), ws.size(), nullptr);
    SPW_CUDA_CHECK(cudaDeviceSynchronize());
    return dy.download();
  }
  // Keeps the first `rows` rows of the problem (x, residual, reference, y) and the weights:
  // rows are independent, so the big-weight cases are built (and the fp64 reference run) once.
  void keep_rows(int rows) {
    p.m = rows;
    x.resize(size_t(rows) * p.k);
    if (p.has_residual) {
      residual.resize(size_t(rows) * p.n_out());
      dres = DeviceBuffer<unsigned char>(to_bytes(residual, p.out_dtype));
    }
    ref.resize(size_t(rows) * p.n_out());
    dx = DeviceBuffer<unsigned char>(to_bytes(x, p.dtype));
    dy = DeviceBuffer<unsigned char>(size_t(rows) * p.n_out() * dtype_size(p.out_dtype));
  }
  void check(const Plan& pl, const std::string& what) {
    const auto y = from_bytes(run_plan(pl), p.out_dtype);
    EXPECT_TRUE(test::close_to(y, ref, tolerance(p)))
        << what << " impl=" << impl_name(pl.impl) << " split=" << pl.split_k << " m=" << p.m << " n=" << p.n
        << " k=" << p.k << " " << dtype_name(p.dtype) << "->" << dtype_name(p.out_dtype);
  }
};

Problem make(DType dt, int m, int n, int k) {
  Problem p;
  p.dtype = p.out_dtype = dt;
  p.m = m;
  p.n = n;
  p.k = k;
  return p;
}

class FlatGemmGpu : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    SPW_REQUIRE_GPU();
    dev = query_device(0);
  }
  DeviceInfo dev;
};

}  // namespace flat_gemm_gpu_test
using namespace flat_gemm_gpu_test;

// Every M in 1..64 on an odd shape (N = 200: 3 tiles + 8 rows; K = 1000: 15 stages + 40)
// with the dispatcher's choice, the mma path without and with split-K, and gemv for M <= 8.
TEST_P(FlatGemmGpu, EveryMEveryImplOddShape) {
  for (int m = 1; m <= kMaxFlatM; ++m) {
    Case c(make(GetParam(), m, 200, 1000), m);
    c.check(plan(c.p, dev), "auto");
    c.check(plan(c.p, dev, {Impl::mma, 1}), "mma");
    c.check(plan(c.p, dev, {Impl::mma, 5}), "mma split");
    if (m <= kMaxGemvM) c.check(plan(c.p, dev, {Impl::gemv, 0}), "gemv");
  }
}

// The issue's real-model (N, K) and odd shapes at a few M, dispatcher's choice and forced paths
// (model shapes at M = 1, 5 and one at M = 17 only: the fp64 reference costs M·N·K).
TEST_P(FlatGemmGpu, ModelAndOddShapes) {
  // One case per (N, K) at its largest M, then its first rows for the smaller M (the weights of
  // the big shapes are up to 0.5 G elements: made and uploaded once).
  std::vector<std::pair<std::pair<int, int>, std::vector<int>>> cases;
  // (the CPU simulator takes the model shapes up to 6144 x 4096 only: the rest take minutes there)
  for (auto nk : test_cases::kModelShapes)
    if (!test::kSimulated || static_cast<long long>(nk.first) * nk.second <= 6144LL * 4096) cases.push_back({nk, {5, 1}});
  cases.push_back({{4096, 4096}, {17}});
  for (auto nk : test_cases::kOddShapes) cases.push_back({nk, {33, 6, 1}});
  for (const auto& [nk, ms] : cases) {
    const auto [n, k] = nk;
    Case c(make(GetParam(), ms.front(), n, k), n + k + ms.front());
    for (int m : ms) {
      c.keep_rows(m);
      c.check(plan(c.p, dev), "auto");
      c.check(plan(c.p, dev, {Impl::mma, 0}), "mma rules");
      if (m <= kMaxGemvM) c.check(plan(c.p, dev, {Impl::gemv, 0}), "gemv");
    }
  }
}

// Each epilogue alone and all together, output in the input dtype and in fp32, on every impl.
TEST_P(FlatGemmGpu, EveryEpilogueEveryImplBothOutputTypes) {
  for (int m : {3, 24})
    for (DType out : {GetParam(), DType::f32})
      for (int mask = 1; mask < 8; ++mask) {
        Problem p = make(GetParam(), m, 2 * 136, 520);  // swiglu: 136 outputs = 4 half-tiles + 8
        p.out_dtype = out;
        p.has_bias = mask & 1;
        p.has_residual = mask & 2;
        p.swiglu = mask & 4;
        Case c(p, mask * 100 + m);
        const std::string what = fmt::format("bias={} residual={} swiglu={}", p.has_bias, p.has_residual, p.swiglu);
        c.check(plan(p, dev, {Impl::mma, 1}), what);
        c.check(plan(p, dev, {Impl::mma, 4}), what);
        c.check(plan(p, dev, {Impl::cublaslt, 0}), what);
        if (m <= kMaxGemvM) c.check(plan(p, dev, {Impl::gemv, 0}), what);
      }
}

TEST_P(FlatGemmGpu, InPlaceResidual) {
  Problem p = make(GetParam(), 5, 4096, 512);
  p.has_residual = true;
  Case c(p, 7);
  for (const Plan& pl : {plan(p, dev, {Impl::gemv, 0}), plan(p, dev, {Impl::mma, 3})}) {
    c.dy.upload(to_bytes(c.residual, p.out_dtype));
    Args a = c.args();
    a.residual = a.y;
    DeviceBuffer<unsigned char> ws(std::max<size_t>(pl.workspace_bytes, 16));
    run(pl, a, ws.get(), ws.size(), nullptr);
    SPW_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(test::close_to(from_bytes(c.dy.download(), p.out_dtype), c.ref, tolerance(p))) << impl_name(pl.impl);
  }
}

TEST_P(FlatGemmGpu, CublasLtForLargeM) {
  Case c(make(GetParam(), 128, 520, 264), 3);
  const Plan pl = plan(c.p, dev);
  ASSERT_EQ(pl.impl, Impl::cublaslt);
  c.check(pl, "auto M=128");
  // Graph capture of the cuBLASLt impl (the heuristic query is host-only), with an epilogue.
  Problem p = c.p;
  p.has_bias = true;
  Case e(p, 4);
  const Plan pe = plan(p, dev);
  e.check(pe, "auto M=128 bias");
  {
    test::CapturedGraph graph(
        [&](cudaStream_t s) { run(pe, e.args(), e.ws.get(), e.ws.size(), reinterpret_cast<Stream>(s)); });
    e.dy.fill_bytes(test::kPoisonByte);
    graph.replay();
    EXPECT_TRUE(test::close_to(from_bytes(e.dy.download(), p.out_dtype), e.ref, tolerance(p))) << "graph replay";
  }
  // Every heuristic algorithm the plan can name gives the right numbers.
  for (int algo = 1; algo < kCublasLtAlgos; ++algo) {
    const Plan pa = plan(c.p, dev, {Impl::cublaslt, 0, algo});
    try {
      c.check(pa, fmt::format("cublaslt algo {}", algo));
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("not supported"), std::string::npos) << err.what();
      break;  // cuBLASLt offered fewer algorithms
    }
  }
}

// Split-K is deterministic: the same bits on every run, and graph replay gives them too.
TEST_P(FlatGemmGpu, BitwiseDeterminismAndGraphReplay) {
  Problem p = make(GetParam(), 16, 4096, 4096);
  p.has_bias = true;
  Case c(p, 11);
  // (no gemv plan: plan() rejects gemv for m = 16 > kMaxGemvM)
  for (const Plan& pl : {plan(p, dev, {Impl::mma, 8}), plan(p, dev, {Impl::mma, 1}), plan(p, dev)}) {
    const auto first = c.run_plan(pl);
    for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(c.run_plan(pl), first) << "run " << rep;
    // Graph capture of run() (no allocation, no sync inside), replayed twice.
    test::CapturedGraph graph(
        [&](cudaStream_t s) { run(pl, c.args(), c.ws.get(), c.ws.size(), reinterpret_cast<Stream>(s)); });
    for (int rep = 0; rep < 2; ++rep) {
      c.dy.fill_bytes(test::kPoisonByte);
      graph.replay();
      EXPECT_EQ(c.dy.download(), first) << "graph replay " << rep << " impl " << impl_name(pl.impl);
    }
    EXPECT_TRUE(test::close_to(from_bytes(first, p.out_dtype), c.ref, tolerance(p)));
  }
}

// Options::batch_invariant: every row has the same bits in a product of any M (1, a few, one
// full 64-row slice, 65 and 130 = 64-row slices plus a rest), at the planned split, at split 1
// and at split 3; with every epilogue and both output types; and the whole matches the reference.
TEST_P(FlatGemmGpu, BatchInvariantRowsAreBitwiseTheSameInAnyM) {
  for (int mask : {0, 3, 7})
    for (DType out : {GetParam(), DType::f32}) {
      Problem p = make(GetParam(), 130, 2 * 136, 1000);
      p.out_dtype = out;
      p.has_bias = mask & 1;
      p.has_residual = mask & 2;
      p.swiglu = mask & 4;
      Case c(p, 50 + mask);
      const size_t es = dtype_size(p.dtype), os = dtype_size(out), row_bytes = size_t(p.n_out()) * os;
      for (int split : {0, 1, 3}) {
        const std::string what = fmt::format("mask {} out {} split {}", mask, dtype_name(out), split);
        const Options o{Impl::automatic, split, 0, true};
        const Plan whole = plan(p, dev, o);
        c.check(whole, what);
        const auto all = c.run_plan(whole);
        for (auto [r0, m] : {std::pair{0, 1}, {7, 1}, {129, 1}, {3, 5}, {60, 8}, {10, 64}, {1, 65}, {64, 66}}) {
          Problem ps = p;
          ps.m = m;
          const Plan pl = plan(ps, dev, o);
          ASSERT_EQ(pl.split_k, whole.split_k) << what;
          Args a = c.args();
          a.x = c.dx.get() + size_t(r0) * p.k * es;
          if (a.residual) a.residual = c.dres.get() + r0 * row_bytes;
          DeviceBuffer<unsigned char> y(m * row_bytes), ws(std::max<size_t>(pl.workspace_bytes, 16));
          y.fill_bytes(test::kPoisonByte);
          ws.fill_bytes(test::kPoisonByte);
          a.y = y.get();
          run(pl, a, ws.get(), ws.size(), nullptr);
          SPW_CUDA_CHECK(cudaDeviceSynchronize());
          const auto got = y.download();
          ASSERT_EQ(0, std::memcmp(got.data(), all.data() + r0 * row_bytes, m * row_bytes))
              << what << ": rows " << r0 << ".." << r0 + m - 1 << " differ from the same rows of m = 130";
        }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FlatGemmGpu, ::testing::Values(DType::f16, DType::bf16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// SGMV GPU tests against the fp64 reference (skipped without a usable GPU): every segment
// layout, hidden sizes, mixed ranks, multi-slice, both weight forms, poisoned outputs, CUDA
// graph replay and bitwise determinism (on the simulator, with its check of programmatic launches).
#include <cmath>
#include <cstring>
#include <memory>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/sgmv/reference.h"
#include "kernels/sgmv/sgmv.h"
#include "tests/common/graph_capture.h"
#include "tests/sgmv/sgmv_cases.h"

using namespace spw;
using namespace spw::sgmv;
using namespace spw::sgmv::test_cases;

// (a named namespace, not an anonymous one: the simulator build #includes this file, and GCC
// warns of test classes whose bases or captures have internal linkage there)
namespace sgmv_gpu_test {

// Device copy of a Case, weights in both forms (per-adapter pointers and stacked with NaN padding).
template <typename T>
struct DeviceCase {
  DeviceBuffer<int32_t> seg, ids, ranks;
  DeviceBuffer<T> x, y, a_stacked, b_stacked;
  std::vector<DeviceBuffer<T>> a_each, b_each;
  DeviceBuffer<const void*> a_ptrs, b_ptrs;
  DeviceBuffer<float> v, scales;
  DeviceBuffer<unsigned char> ws;

  DeviceCase(const Case& c, const Plan& plan)
      : seg(c.batch.seg_starts), ids(c.batch.adapter_ids.empty() ? std::vector<int32_t>{0} : c.batch.adapter_ids),
        ranks(c.batch.ranks), x(test::to_storage<T>(c.x)), y(test::to_storage<T>(c.y)) {
    const Problem& p = c.batch.problem;
    const int S = p.num_slices, R = p.rank_max;
    std::vector<const void*> ap, bp;
    long long sum_out = 0;
    for (int s = 0; s < S; ++s) sum_out += p.slices[s].out_size;
    std::vector<float> as(static_cast<size_t>(p.num_adapters) * S * R * p.hidden, NAN);
    std::vector<float> bs(static_cast<size_t>(p.num_adapters) * R * sum_out, NAN);
    for (int a = 0; a < p.num_adapters; ++a) {
      long long prefix = 0;
      for (int s = 0; s < S; ++s) {
        const auto& A = c.A[a * S + s];
        const auto& B = c.B[a * S + s];
        a_each.emplace_back(test::to_storage<T>(A));
        b_each.emplace_back(test::to_storage<T>(B));
        ap.push_back(a_each.back().get());
        bp.push_back(b_each.back().get());
        std::copy(A.begin(), A.end(), as.begin() + (static_cast<size_t>(a) * S + s) * R * p.hidden);
        std::copy(B.begin(), B.end(), bs.begin() + static_cast<size_t>(a) * R * sum_out + R * prefix);
        prefix += p.slices[s].out_size;
      }
    }
    a_stacked = DeviceBuffer<T>(test::to_storage<T>(as));
    b_stacked = DeviceBuffer<T>(test::to_storage<T>(bs));
    a_ptrs = DeviceBuffer<const void*>(ap);
    b_ptrs = DeviceBuffer<const void*>(bp);
    v = DeviceBuffer<float>(std::max<size_t>(1, static_cast<size_t>(p.tokens) * S * R));
    scales = DeviceBuffer<float>(c.adapter_scales.empty() ? std::vector<float>{1.f} : c.adapter_scales);
    ws = DeviceBuffer<unsigned char>(std::max<size_t>(16, plan.workspace_bytes));
    SPW_CUDA_CHECK(cudaMemset(ws.get(), 0, ws.bytes()));
  }
  Segments segs() const { return {seg.get(), ids.get(), ranks.get()}; }
  ShrinkArgs shrink_args(bool stacked) {
    ShrinkArgs s;
    s.seg = segs();
    s.x = x.get();
    if (stacked) s.A.stacked = a_stacked.get(); else s.A.ptrs = a_ptrs.get();
    s.v = v.get();
    return s;
  }
  ExpandArgs expand_args(bool stacked, float scale, bool with_scales) {
    ExpandArgs e;
    e.seg = segs();
    e.v = v.get();
    if (stacked) e.B.stacked = b_stacked.get(); else e.B.ptrs = b_ptrs.get();
    e.y = y.get();
    e.scale = scale;
    e.adapter_scales = with_scales ? scales.get() : nullptr;
    return e;
  }
};

Plan plan_of(const reference::Batch& b, Path path = Path::automatic) {
  return plan(b.problem, b.seg_starts.data(), b.adapter_ids.data(), b.ranks.data(), query_device(0), path);
}

// v as written by the kernel: only the written entries are compared (others stay poisoned).
void expect_v_close(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<bool>& written,
                    const std::string& what) {
  std::vector<float> g;
  std::vector<double> r;
  for (size_t i = 0; i < ref.size(); ++i)
    if (written[i]) { g.push_back(got[i]); r.push_back(ref[i]); }
    else { ASSERT_TRUE(std::isnan(got[i])) << what << ": v[" << i << "] written but should not be"; }
  // fp32 accumulation (CUDA cores or tensor cores) of exactly representable products over
  // <= 8192 terms; tensor-core accumulation does not round to nearest, hence 1e-4.
  EXPECT_TRUE(test::close_to(g, r, {1e-4, 1e-3})) << what;
}

template <typename T>
void run_and_check(const CaseSpec& sp, bool stacked, const std::string& what, Path path = Path::automatic) {
  auto rng = test::make_rng(std::hash<std::string>{}(what));
  Case c = make_case(sp, rng);
  Plan pl = plan_of(c.batch, path);
  DeviceCase<T> d(c, pl);
  d.v.fill_bytes(test::kPoisonByte);
  shrink(pl, d.shrink_args(stacked), d.ws.get(), d.ws.bytes(), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  const auto v_gpu = d.v.download();
  const auto v_ref = reference::shrink(c.batch, c.x, c.A);
  if (c.batch.problem.tokens > 0) expect_v_close(v_gpu, v_ref, reference::written(c.batch), what);
  const float scale = 0.5f;
  expand(pl, d.expand_args(stacked, scale, sp.scales), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  // Reference expand from the GPU's v, so the check isolates expand's error.
  std::vector<double> v_in(v_gpu.begin(), v_gpu.end());
  const auto y_ref = reference::expand(c.batch, v_in, c.B, c.y, scale, c.adapter_scales);
  const auto y_gpu = test::to_floats(d.y.download());
  EXPECT_TRUE(test::close_to(y_gpu, y_ref, test::tolerance_for(sp.dtype))) << what;
  // Rows/columns not covered must be untouched, bit for bit.
  const auto y_in = test::to_storage<T>(c.y);
  const auto y_out = d.y.download();
  std::vector<bool> covered(y_out.size(), false);
  const Problem& p = c.batch.problem;
  for (int i = 0; i < p.segments; ++i)
    if (c.batch.adapter_ids[i] >= 0)
      for (int t = c.batch.seg_starts[i]; t < c.batch.seg_starts[i + 1]; ++t)
        for (int s = 0; s < p.num_slices; ++s)
          for (int n = 0; n < p.slices[s].out_size; ++n) covered[t * y_row_stride(p) + p.slices[s].out_offset + n] = true;
  for (size_t i = 0; i < y_out.size(); ++i) {
    if (!covered[i]) {
      ASSERT_EQ(std::memcmp(&y_out[i], &y_in[i], sizeof(T)), 0) << what << ": y[" << i << "] changed";
    }
  }
}

#if defined(SPW_SIM)
// On the simulator every launch here runs under its PDL check (tests/sim/cuda_sim.h): the expand
// that apply() launches programmatically behind shrink sees shrink's output as NaN until its
// pdl_wait, and may not write it. (The check costs a snapshot of device memory per launch, which
// these cases' sizes make cheap.)
class PdlCheckOn : public ::testing::Environment {
 public:
  void SetUp() override { spw::sim::set_pdl_check(true); }
};
const ::testing::Environment* const kPdlCheck = ::testing::AddGlobalTestEnvironment(new PdlCheckOn);
#endif

}  // namespace sgmv_gpu_test
using namespace sgmv_gpu_test;

template <typename T>
class SgmvGpu : public ::testing::Test {};
using DTypes = ::testing::Types<half, bfloat16>;
TYPED_TEST_SUITE(SgmvGpu, DTypes);

TYPED_TEST(SgmvGpu, EveryLayoutAndHiddenMatchesReference) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  for (Layout l : all_layouts())
    for (int hidden : {2048, 4096, 5120, 8192, 1000})
      for (bool stacked : {false, true}) {
        CaseSpec sp;
        sp.dtype = dt;
        sp.layout = l;
        sp.hidden = hidden;
        sp.tokens = l == Layout::long_segments ? 100 : 24;
        sp.num_adapters = 6;
        sp.rank_max = 16;
        sp.slice_sizes = {hidden == 1000 ? 1000 : 2048};
        run_and_check<T>(sp, stacked, fmt::format("{} {} h{} {}", dtype_name(dt), layout_name(l), hidden,
                                                  stacked ? "stacked" : "ptrs"));
      }
}

TYPED_TEST(SgmvGpu, MixedRanksMultiSliceStridesScales) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  for (Layout l : {Layout::per_token, Layout::with_none, Layout::long_segments})
    for (int rank_max : {64, 256}) {
      CaseSpec sp;
      sp.dtype = dt;
      sp.layout = l;
      sp.hidden = 4096;
      sp.tokens = l == Layout::long_segments ? 80 : 33;
      sp.num_adapters = 5;
      sp.rank_max = rank_max;
      sp.ranks = {8, rank_max, 16, 1, 128 < rank_max ? 128 : 40};
      sp.slice_sizes = {4096, 1024, 1024};  // Q, K, V
      sp.y_pad = 8;
      sp.x_pad = 64;
      sp.scales = true;
      for (bool stacked : {false, true})
        run_and_check<T>(sp, stacked, fmt::format("{} {} rmax{} {}", dtype_name(dt), layout_name(l), rank_max,
                                                  stacked ? "stacked" : "ptrs"));
    }
  CaseSpec gate_up;  // two slices, wide
  gate_up.dtype = dt;
  gate_up.layout = Layout::mixed;
  gate_up.hidden = 2048;
  gate_up.tokens = 40;
  gate_up.rank_max = 32;
  gate_up.ranks = {8, 32, 24, 16};
  gate_up.slice_sizes = {5632, 5632};
  run_and_check<T>(gate_up, false, "gate/up");
}

// The same inputs through every kernel path: mixed ranks (1, 40, 256: partial MMA tiles and
// several 64-rank passes), output slices that are not multiples of 128, padded rows.
TYPED_TEST(SgmvGpu, EveryPathOnEveryLayout) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  for (Path path : {Path::gemv, Path::tiled, Path::tensor_core})
    for (Layout l : all_layouts()) {
      CaseSpec sp;
      sp.dtype = dt;
      sp.layout = l;
      sp.hidden = 4096;
      sp.tokens = l == Layout::long_segments ? 150 : 30;
      sp.num_adapters = 4;
      sp.rank_max = 256;
      sp.ranks = {16, 256, 40, 1};
      sp.slice_sizes = {1000, 264};
      sp.x_pad = 8;
      sp.y_pad = 16;
      sp.scales = true;
      if (l == Layout::one_adapter) sp.tokens = 130;  // 3 tensor-core tiles, the last one partial
      for (bool stacked : {false, true})
        run_and_check<T>(sp, stacked, fmt::format("{} {} path{} {}", dtype_name(dt), layout_name(l),
                                                  static_cast<int>(path), stacked ? "stacked" : "ptrs"),
                         path);
    }
}

TYPED_TEST(SgmvGpu, GraphReplayAndBitwiseDeterminism) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  for (Layout l : {Layout::per_token, Layout::long_segments, Layout::one_adapter}) {
    CaseSpec sp;
    sp.dtype = dt;
    sp.layout = l;
    sp.hidden = 4096;
    sp.tokens = l == Layout::per_token ? 64 : l == Layout::one_adapter ? 200 : 96;
    sp.num_adapters = 64;
    sp.rank_max = 16;
    sp.slice_sizes = {4096};
    auto rng = test::make_rng();
    Case c = make_case(sp, rng);
    Plan pl = plan_of(c.batch);
#if defined(SPW_SIM)
    ASSERT_TRUE(pl.pdl) << "the sim's device is sm_90: apply() launches expand programmatically";
    ASSERT_TRUE(spw::sim::pdl_check());
#endif
    DeviceCase<T> d(c, pl);
    const auto y0 = test::to_storage<T>(c.y);
    cudaStream_t stream;
    SPW_CUDA_CHECK(cudaStreamCreate(&stream));
    auto eager = [&](bool fused) {
      d.y.upload(y0);
      d.v.fill_bytes(test::kPoisonByte);
      if (fused) {
        apply(pl, d.shrink_args(false), d.expand_args(false, 1.f, false), d.ws.get(), d.ws.bytes(), stream);
      } else {
        shrink(pl, d.shrink_args(false), d.ws.get(), d.ws.bytes(), stream);
        expand(pl, d.expand_args(false, 1.f, false), stream);
      }
      SPW_CUDA_CHECK(cudaStreamSynchronize(stream));
      return std::make_pair(d.v.download(), d.y.download());
    };
    const auto first = eager(false);
    for (bool fused : {false, true}) {  // a second run, and apply() (programmatic launch on sm_90)
      const auto again = eager(fused);
      EXPECT_EQ(std::memcmp(first.first.data(), again.first.data(), first.first.size() * 4), 0)
          << "v not deterministic, apply = " << fused;
      EXPECT_EQ(std::memcmp(first.second.data(), again.second.data(), first.second.size() * sizeof(T)), 0)
          << "y not deterministic, apply = " << fused;
    }

    SPW_CUDA_CHECK(cudaStreamDestroy(stream));
    test::CapturedGraph graph(
        [&](cudaStream_t s) {
          apply(pl, d.shrink_args(false), d.expand_args(false, 1.f, false), d.ws.get(), d.ws.bytes(), s);
        },
        cudaStreamCaptureModeThreadLocal);
    for (int replay = 0; replay < 3; ++replay) {
      d.y.upload(y0);
      d.v.fill_bytes(test::kPoisonByte);
      graph.replay();
      const auto v = d.v.download();
      const auto y = d.y.download();
      EXPECT_EQ(std::memcmp(v.data(), first.first.data(), v.size() * 4), 0) << "replay " << replay << ": v differs";
      EXPECT_EQ(std::memcmp(y.data(), first.second.data(), y.size() * sizeof(T)), 0) << "replay " << replay << ": y";
    }
    // And it matches the reference.
    const auto v_ref = reference::shrink(c.batch, c.x, c.A);
    expect_v_close(first.first, v_ref, reference::written(c.batch), "graph case");
  }
}

TYPED_TEST(SgmvGpu, NoAdapterBatchLaunchesNothingAndLeavesOutputs) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  CaseSpec sp;
  sp.dtype = DTypeTraits<T>::dtype;
  sp.layout = Layout::mixed;
  auto rng = test::make_rng();
  Case c = make_case(sp, rng);
  std::fill(c.batch.adapter_ids.begin(), c.batch.adapter_ids.end(), -1);
  Plan pl = plan_of(c.batch);
  DeviceCase<T> d(c, pl);
  d.v.fill_bytes(test::kPoisonByte);
  shrink(pl, d.shrink_args(true), d.ws.get(), d.ws.bytes(), nullptr);
  expand(pl, d.expand_args(true, 1.f, false), nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  const auto y = d.y.download();
  const auto y0 = test::to_storage<T>(c.y);
  EXPECT_EQ(std::memcmp(y.data(), y0.data(), y.size() * sizeof(T)), 0);
}

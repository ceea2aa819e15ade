// Tree-attention GPU tests against the fp64 reference (skipped without a usable GPU): group
// sizes 1/4/8, head dims 64/128/256, fp16/bf16, random trees / chain / star / T = 1, prefix 0,
// non-multiples of the page size and a long (split) prefix, LSE, poisoned outputs and workspace,
// bitwise repeat determinism, CUDA-graph capture + replay. (Not run in the session that wrote them: no GPU.)
#include <cmath>
#include <cstring>
#include <tuple>

#include <gtest/gtest.h>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "tests/tree_attention/tree_attention_cases.h"

using namespace spw;
using namespace spw::tree_attention;
using namespace spw::tree_attention::test_cases;

namespace {
template <typename T>
DeviceBuffer<T> up(const std::vector<float>& v) {
  return DeviceBuffer<T>(test::to_storage<T>(v.empty() ? std::vector<float>{0.f} : v));
}
DeviceBuffer<int32_t> up_ints(const std::vector<int32_t>& v) {
  return DeviceBuffer<int32_t>(v.empty() ? std::vector<int32_t>{0} : v);
}

struct Out {
  std::vector<float> o, lse;
  std::vector<unsigned char> o_bits;
};

template <typename T>
Out run_case(const Case& c, const Plan& pl) {
  auto q = up<T>(c.q), kt = up<T>(c.k_tree), vt = up<T>(c.v_tree), kp = up<T>(c.k_pages), vp = up<T>(c.v_pages);
  auto indptr = up_ints(c.indptr), indices = up_ints(c.indices), last = up_ints(c.last_page_len);
  DeviceBuffer<T> o(c.q.size());
  DeviceBuffer<float> lse(static_cast<size_t>(pl.total_tokens) * c.p.qo_heads);
  DeviceBuffer<unsigned char> ws(pl.workspace_bytes);
  SPW_CUDA_CHECK(cudaMemset(o.get(), test::kPoisonByte, o.size() * sizeof(T)));
  SPW_CUDA_CHECK(cudaMemset(lse.get(), test::kPoisonByte, lse.size() * sizeof(float)));
  SPW_CUDA_CHECK(cudaMemset(ws.get(), test::kPoisonByte, ws.size()));
  Args a{q.get(), kt.get(), vt.get(), kp.get(), vp.get(), indptr.get(), indices.get(), last.get(), o.get(), lse.get()};
  run(pl, a, ws.get(), pl.workspace_bytes, nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  Out out;
  auto oh = o.download();
  out.o = test::to_floats(oh);
  out.o_bits.resize(oh.size() * sizeof(T));
  std::memcpy(out.o_bits.data(), oh.data(), out.o_bits.size());
  out.lse = lse.download();
  return out;
}

template <typename T>
void check_against_reference(const Case& c, const char* what) {
  const Plan pl = plan(c.p, c.prefix_lens, c.tree_sizes, c.parents, query_device(0));
  const auto ref = reference::attention(pl, inputs(c));
  const Out out = run_case<T>(c, pl);
  EXPECT_TRUE(test::close_to(out.o, ref.o, test::tolerance_for(c.p.dtype))) << what;
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    ASSERT_TRUE(std::isfinite(out.lse[i])) << what << " lse row " << i;
    ASSERT_NEAR(out.lse[i], ref.lse[i], 2e-3 * std::max(1.0, std::fabs(ref.lse[i]))) << what << " lse row " << i;
  }
}

void check_dtype(const Case& c, const char* what) {
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
        check_dtype(c, fmt::format("{} d{} g{}", dtype_name(dt), d, g).c_str());
      }
}

TEST(TreeAttentionGpu, FullTreesLongSplitPrefixAndSoftCap) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 2;
  Case c = make_case(rng, p, {8191, 3}, {random_tree(rng, 128), chain(128)});
  ASSERT_GT(plan_of(c).num_states, 2);  // the long prefix is split
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
  Case c = make_case(rng, p, {5000, 0, 77}, {random_tree(rng, 64), star(9), chain(5)});
  const Plan pl = plan(c.p, c.prefix_lens, c.tree_sizes, c.parents, query_device(0));
  const Out a = run_case<spw::half>(c, pl), b = run_case<spw::half>(c, pl);
  EXPECT_EQ(a.o_bits, b.o_bits);
  EXPECT_EQ(0, std::memcmp(a.lse.data(), b.lse.data(), a.lse.size() * sizeof(float)));
}

TEST(TreeAttentionGpu, CudaGraphCaptureAndReplayMatchesDirectRun) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  Problem p = small_problem(32, 8, 128, 16);
  p.batch = 2;
  Case c = make_case(rng, p, {3000, 50}, {random_tree(rng, 32), chain(16)});
  const Plan pl = plan(c.p, c.prefix_lens, c.tree_sizes, c.parents, query_device(0));
  const Out direct = run_case<spw::half>(c, pl);
  auto q = up<spw::half>(c.q), kt = up<spw::half>(c.k_tree), vt = up<spw::half>(c.v_tree);
  auto kp = up<spw::half>(c.k_pages), vp = up<spw::half>(c.v_pages);
  auto indptr = up_ints(c.indptr), indices = up_ints(c.indices), last = up_ints(c.last_page_len);
  DeviceBuffer<spw::half> o(c.q.size());
  DeviceBuffer<float> lse(static_cast<size_t>(pl.total_tokens) * c.p.qo_heads);
  DeviceBuffer<unsigned char> ws(pl.workspace_bytes);
  SPW_CUDA_CHECK(cudaMemset(o.get(), test::kPoisonByte, o.size() * sizeof(spw::half)));
  Args a{q.get(), kt.get(), vt.get(), kp.get(), vp.get(), indptr.get(), indices.get(), last.get(), o.get(), lse.get()};
  cudaStream_t s;
  SPW_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  SPW_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  run(pl, a, ws.get(), pl.workspace_bytes, s);
  SPW_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
  SPW_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < 3; ++i) SPW_CUDA_CHECK(cudaGraphLaunch(exec, s));
  SPW_CUDA_CHECK(cudaStreamSynchronize(s));
  auto oh = o.download();
  std::vector<unsigned char> bits(oh.size() * sizeof(spw::half));
  std::memcpy(bits.data(), oh.data(), bits.size());
  EXPECT_EQ(bits, direct.o_bits);
  SPW_CUDA_CHECK(cudaGraphExecDestroy(exec));
  SPW_CUDA_CHECK(cudaGraphDestroy(graph));
  SPW_CUDA_CHECK(cudaStreamDestroy(s));
}

// Device side of kernels/common: conversions, Vec loads, reductions and the softmax state,
// compared with the host versions of the same code. Skipped without a usable GPU.
#include <cmath>

#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/softmax_state.h"
#include "kernels/common/vec.h"
#include "tests/common/helpers.h"

using namespace spw;

namespace {

__global__ void convert_kernel(const float* in, uint16_t* h, uint16_t* b, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  half hv = from_float<half>(in[i]);
  bfloat16 bv = from_float<bfloat16>(in[i]);
  h[i] = *reinterpret_cast<uint16_t*>(&hv);
  b[i] = *reinterpret_cast<uint16_t*>(&bv);
}

__global__ void reduce_kernel(const float* in, float* out_sum, float* out_max, float* warp_sum) {
  SPW_STATIC_SMEM(float, scratch, [32]);
  float v = in[threadIdx.x];
  float s = block_reduce_sum(v, scratch);
  float m = block_reduce_max(v, scratch);
  float w = warp_reduce_sum(v);
  if (threadIdx.x == 0) { *out_sum = s; *out_max = m; }
  if (threadIdx.x % 32 == 0) warp_sum[threadIdx.x / 32] = w;
}

__global__ void softmax_kernel(const float* s, const float* v, int n, float* out, float* lse) {
  SoftmaxState st;
  float acc = 0;
  for (int i = 0; i < n; ++i) {
    float r, p;
    st.push(s[i] * kLog2e, &r, &p);
    acc = acc * r + p * v[i];
  }
  *out = acc * st.inv_sum();
  *lse = st.lse();
}

__global__ void vec_copy_kernel(const half* in, float* out) {
  Vec<float, 8> v;
  v.cast_load(in + threadIdx.x * 8);
  v.store(out + threadIdx.x * 8);
}

}  // namespace

TEST(CommonGpu, ConversionsMatchHost) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  auto x = test::random_floats(rng, 4096, -70000.f, 70000.f);
  for (int i = 0; i < 64; ++i) x[i] = std::ldexp(1.f + i / 64.f, -20);  // subnormal halves
  DeviceBuffer<float> in(x);
  DeviceBuffer<uint16_t> h(x.size()), b(x.size());
  spw::launch(convert_kernel, 16, 256, 0, nullptr, in.get(), h.get(), b.get(), int(x.size()));
  SPW_CUDA_CHECK_LAUNCH();
  auto hh = h.download(), bb = b.download();
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(hh[i], float_to_half_bits(x[i])) << x[i];
    ASSERT_EQ(bb[i], float_to_bf16_bits(x[i])) << x[i];
  }
}

TEST(CommonGpu, ReductionsMatchHost) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  auto x = test::random_floats(rng, 256);
  DeviceBuffer<float> in(x), sum(1), mx(1), ws(8);
  spw::launch(reduce_kernel, 1, 256, 0, nullptr, in.get(), sum.get(), mx.get(), ws.get());
  SPW_CUDA_CHECK_LAUNCH();
  double ref = 0, ref_max = -1e30;
  for (float v : x) { ref += v; ref_max = std::max<double>(ref_max, v); }
  EXPECT_NEAR(sum.download()[0], ref, 1e-4);
  EXPECT_EQ(mx.download()[0], float(ref_max));
  auto w = ws.download();
  for (int k = 0; k < 8; ++k) {
    double r = 0;
    for (int i = 0; i < 32; ++i) r += x[k * 32 + i];
    EXPECT_NEAR(w[k], r, 1e-5);
  }
}

TEST(CommonGpu, SoftmaxStateMatchesHost) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  auto s = test::random_floats(rng, 513, -30.f, 30.f);
  auto v = test::random_floats(rng, 513);
  DeviceBuffer<float> ds(s), dv(v), out(1), lse(1);
  spw::launch(softmax_kernel, 1, 1, 0, nullptr, ds.get(), dv.get(), 513, out.get(), lse.get());
  SPW_CUDA_CHECK_LAUNCH();
  SoftmaxState st;
  float acc = 0;
  for (int i = 0; i < 513; ++i) {
    float r, p;
    st.push(s[i] * kLog2e, &r, &p);
    acc = acc * r + p * v[i];
  }
  EXPECT_NEAR(out.download()[0], acc * st.inv_sum(), 1e-5);
  EXPECT_NEAR(lse.download()[0], st.lse(), 1e-4);
}

TEST(CommonGpu, VecCastLoad) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  auto x = test::random_floats(rng, 256, -1.f, 1.f, DType::f16);
  DeviceBuffer<half> in(test::to_storage<half>(x));
  DeviceBuffer<float> out(256);
  out.fill_bytes(test::kPoisonByte);
  spw::launch(vec_copy_kernel, 1, 32, 0, nullptr, in.get(), out.get());
  SPW_CUDA_CHECK_LAUNCH();
  EXPECT_EQ(out.download(), x);
}

// CPU-side tests of kernels/common: dtype conversions, Vec, online softmax / LSE merge,
// errors, device queries without a GPU.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/common/c_api.h"
#include "kernels/common/device.h"
#include "kernels/common/pinned.h"
#include "kernels/common/softmax_state.h"
#include "kernels/common/vec.h"
#include "tests/common/helpers.h"

using namespace spw;

TEST(DType, HalfRoundTripExactValues) {
  for (float f : {0.f, -0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f /*min normal*/, 5.96046448e-08f /*min subnormal*/})
    EXPECT_EQ(half_bits_to_float(float_to_half_bits(f)), f) << f;
}

TEST(DType, HalfRoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even -> 1.
  EXPECT_EQ(half_bits_to_float(float_to_half_bits(1.f + std::ldexp(1.f, -11))), 1.f);
  // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even -> 1 + 2^-9.
  EXPECT_EQ(half_bits_to_float(float_to_half_bits(1.f + 3 * std::ldexp(1.f, -11))), 1.f + std::ldexp(1.f, -9));
  EXPECT_EQ(float_to_half_bits(65520.f), 0x7c00);  // overflow -> inf
  EXPECT_EQ(float_to_half_bits(-1e6f), 0xfc00);
  EXPECT_TRUE(std::isnan(half_bits_to_float(float_to_half_bits(NAN))));
  // Halfway below the smallest subnormal rounds to zero, just above rounds up.
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.f, -25)), 0);
  EXPECT_EQ(float_to_half_bits(std::ldexp(1.5f, -25)), 1);
}

TEST(DType, HalfMatchesExhaustiveDecode) {
  // Every finite half value survives float -> half -> float unchanged.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    uint16_t h = static_cast<uint16_t>(b);
    float f = half_bits_to_float(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half_bits(f), h) << "bits " << b;
  }
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(1.f)), 1.f);
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(1.f + std::ldexp(1.f, -8))), 1.f);  // tie -> even
  EXPECT_EQ(bf16_bits_to_float(float_to_bf16_bits(1.f + 3 * std::ldexp(1.f, -8))), 1.f + std::ldexp(1.f, -6));
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    float f = bf16_bits_to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16_bits(f), b);
  }
}

TEST(DType, TraitsAndNames) {
  EXPECT_EQ(DTypeTraits<half>::dtype, DType::f16);
  EXPECT_EQ(DTypeTraits<bfloat16>::dtype, DType::bf16);
  EXPECT_EQ(dtype_name(DType::bf16), "bf16");
  EXPECT_EQ(dtype_size(DType::f32), 4);
  EXPECT_EQ(to_float(from_float<half>(0.333f)), round_to(DType::f16, 0.333f));
  EXPECT_EQ(to_float(from_float<bfloat16>(0.333f)), round_to(DType::bf16, 0.333f));
}

TEST(Vec, LoadStoreAndCast) {
  alignas(16) half src[8];
  alignas(16) float dst[8];
  for (int i = 0; i < 8; ++i) src[i] = from_float<half>(0.5f * i + 0.25f);
  Vec<float, 8> v;
  v.cast_load(src);
  v.store(dst);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(dst[i], 0.5f * i + 0.25f);
  EXPECT_EQ(kVec16<half>, 8);
  EXPECT_EQ(kVec16<float>, 4);
  EXPECT_TRUE(is_aligned(src, 16));
  EXPECT_FALSE(is_aligned(reinterpret_cast<char*>(src) + 2, 16));
}

// Reference softmax-weighted sum in double, for checking the online state.
static void softmax_ref(const std::vector<float>& s, const std::vector<float>& v, double* out, double* lse) {
  double m = -INFINITY;
  for (float x : s) m = std::max(m, double(x));
  double d = 0, o = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    double p = std::exp(double(s[i]) - m);
    d += p;
    o += p * v[i];
  }
  *out = o / d;
  *lse = m + std::log(d);
}

TEST(SoftmaxState, PushMatchesReference) {
  auto rng = test::make_rng();
  for (int n : {1, 2, 7, 100, 1000}) {
    auto s = test::random_floats(rng, n, -20.f, 20.f);
    auto v = test::random_floats(rng, n);
    SoftmaxState st;
    float acc = 0;
    for (int i = 0; i < n; ++i) {
      float rescale, p;
      st.push(s[i] * kLog2e, &rescale, &p);
      acc = acc * rescale + p * v[i];
    }
    double ref, ref_lse;
    softmax_ref(s, v, &ref, &ref_lse);
    EXPECT_NEAR(acc * st.inv_sum(), ref, 1e-5) << n;
    EXPECT_NEAR(st.lse(), ref_lse, 1e-4) << n;
  }
}

TEST(SoftmaxState, MergeOfSplitsEqualsWhole) {
  auto rng = test::make_rng();
  auto s = test::random_floats(rng, 300, -10.f, 10.f);
  auto v = test::random_floats(rng, 300);
  // Three chunks processed independently, then merged both ways (state merge and LSE merge).
  int cuts[4] = {0, 1, 170, 300};
  SoftmaxState total;
  float acc_total = 0;
  float outs[3], lses[3];
  for (int c = 0; c < 3; ++c) {
    SoftmaxState st;
    float acc = 0;
    for (int i = cuts[c]; i < cuts[c + 1]; ++i) {
      float r, p;
      st.push(s[i] * kLog2e, &r, &p);
      acc = acc * r + p * v[i];
    }
    outs[c] = acc * st.inv_sum();
    lses[c] = st.lse();
    float a, b;
    total.merge(st, &a, &b);
    acc_total = acc_total * a + acc * b;
  }
  double ref, ref_lse;
  softmax_ref(s, v, &ref, &ref_lse);
  EXPECT_NEAR(acc_total * total.inv_sum(), ref, 1e-5);
  float w[3];
  float lse = lse_merge_weights(lses, 3, w);
  EXPECT_NEAR(w[0] * outs[0] + w[1] * outs[1] + w[2] * outs[2], ref, 1e-5);
  EXPECT_NEAR(lse, ref_lse, 1e-4);
}

TEST(SoftmaxState, EmptyRowsAreZeroWithMinusInfLse) {
  SoftmaxState st;
  EXPECT_EQ(st.inv_sum(), 0.f);
  EXPECT_EQ(st.lse(), -INFINITY);
  float lses[2] = {-INFINITY, -INFINITY}, w[2];
  EXPECT_EQ(lse_merge_weights(lses, 2, w), -INFINITY);
  EXPECT_EQ(w[0], 0.f);
  EXPECT_EQ(w[1], 0.f);
  // One empty side: the other gets all the weight.
  float lses2[2] = {-INFINITY, 3.f};
  EXPECT_NEAR(lse_merge_weights(lses2, 2, w), 3.f, 1e-6);
  EXPECT_EQ(w[0], 0.f);
  EXPECT_EQ(w[1], 1.f);
  SoftmaxState a, b;
  float sa, sb;
  a.merge(b, &sa, &sb);
  EXPECT_EQ(a.lse(), -INFINITY);
  float r, p;
  a.push(-INFINITY, &r, &p);  // a fully masked score adds nothing
  EXPECT_EQ(p, 0.f);
  EXPECT_EQ(a.lse(), -INFINITY);
}

TEST(SoftCap, CapsAndDisables) {
  EXPECT_EQ(soft_cap(3.f, 0.f), 3.f);
  EXPECT_NEAR(soft_cap(1000.f, 30.f), 30.f, 1e-4);
  EXPECT_NEAR(soft_cap(1.f, 30.f), 30.f * std::tanh(1.f / 30.f), 1e-6);
}

TEST(Error, CheckArgNamesArgumentAndValue) {
  auto f = [](int head_dim) {
    SPW_CHECK_ARG(head_dim == 64, "demo::plan", "head_dim", head_dim, "must be 64");
  };
  EXPECT_THROW_MSG(f(96), "demo::plan: head_dim = 96: must be 64");
  EXPECT_NO_THROW(f(64));
  EXPECT_THROW_MSG(SPW_CHECK(1 + 1 == 3, "arithmetic says {}", 2), "arithmetic says 2");
}

TEST(Device, SyntheticAndQueryWithoutGpu) {
  DeviceInfo d = DeviceInfo::synthetic(132);
  EXPECT_EQ(d.sm_count, 132);
  EXPECT_EQ(d.cc_major, 9);
  if (gpu_unavailable_reason()) {
    EXPECT_EQ(cuda_device_count(), 0);
    EXPECT_THROW(query_device(0), Error);
  }
}

TEST(PlanHostArena, TakesAlignedZeroedBytesAndReusesThemAfterReset) {
  PlanHostArena arena(1000);
  EXPECT_EQ(arena.capacity(), 1024u);
  EXPECT_EQ(arena.allocations(), 1);
  auto a = arena.take(10), b = arena.take(300);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.get()) % 256, 0u);
  EXPECT_EQ(b.get() - a.get(), 256);  // sections rounded to 256 bytes
  EXPECT_EQ(arena.used(), 256u + 512u);
  std::memset(b.get(), 0x5a, 300);
  arena.reset();
  auto c = arena.take(300);
  EXPECT_EQ(c.get(), a.get()) << "reset rewinds to the start of the block";
  for (int i = 0; i < 300; ++i) ASSERT_EQ(c.get()[i], std::byte{0}) << "take() must zero reused bytes, at " << i;
  for (int step = 0; step < 100; ++step) {  // steady state: the same sizes again and again
    arena.reset();
    (void)arena.take(10);
    (void)arena.take(300);
  }
  EXPECT_EQ(arena.allocations(), 1) << "no allocation once the arena holds a step's plans";
}

TEST(PlanHostArena, GrowsWithoutInvalidatingEarlierTakes) {
  PlanHostArena arena;  // nothing reserved: the first take allocates
  EXPECT_EQ(arena.capacity(), 0u);
  auto a = arena.take(4096);
  std::memset(a.get(), 0x11, 4096);
  EXPECT_EQ(arena.allocations(), 1);
  auto b = arena.take(5000);  // does not fit: a new block of at least twice the size
  EXPECT_EQ(arena.allocations(), 2);
  EXPECT_GE(arena.capacity(), 2u * 4096);
  std::memset(b.get(), 0x22, 5000);
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(a.get()[i], std::byte{0x11}) << "old block must stay alive, at " << i;
  std::shared_ptr<std::byte> kept;
  {
    PlanHostArena gone(256);
    kept = gone.take(64);
  }
  kept.get()[63] = std::byte{7};  // outlives its arena (shared ownership of the block; ASan would see)
  auto d = plan_host_memory(32, nullptr);  // no arena: its own zeroed buffer
  EXPECT_EQ(d.get()[31], std::byte{0});
  EXPECT_EQ(plan_host_memory(32, &arena).get(), b.get() + 5120);
}

TEST(Helpers, RandomFloatsAreNeverZeroAndRounded) {
  auto rng = test::make_rng(7);
  auto v = test::random_floats(rng, 10000, -1.f, 1.f, DType::bf16);
  for (float x : v) {
    EXPECT_GE(std::fabs(x), 1e-3f);
    EXPECT_EQ(round_to(DType::bf16, x), x);
  }
}

TEST(Helpers, CompareCatchesPoisonAndErrors) {
  std::vector<double> ref = {1.0, 2.0, -INFINITY};
  EXPECT_TRUE(test::close_to({1.f, 2.f, -INFINITY}, ref, test::tolerance_for(DType::f32)));
  auto poison = test::poisoned<float>(3);
  EXPECT_FALSE(test::close_to(poison, ref, test::tolerance_for(DType::bf16)));
  EXPECT_FALSE(test::close_to({1.f, 2.1f, -INFINITY}, ref, test::tolerance_for(DType::f16)));
  EXPECT_FALSE(test::close_to({1.f, 2.f, 0.f}, ref, test::tolerance_for(DType::f16)));
}

TEST(CApi, GuardedMapsErrorsToStatusAndMessage) {
  EXPECT_EQ(capi::guarded([] {}), SPW_OK);
  EXPECT_EQ(capi::guarded([] { spw::fail("x: head_dim = {}: bad", 3); }), SPW_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(spw_last_error(), "x: head_dim = 3: bad");
  EXPECT_EQ(capi::guarded([] { spw::fail("CUDA error cudaErrorNoDevice"); }), SPW_ERROR_CUDA);
  EXPECT_EQ(capi::guarded([] { spw::fail("dtype fp32 not supported"); }), SPW_ERROR_UNSUPPORTED);
  EXPECT_EQ(capi::guarded([] { throw std::runtime_error("boom"); }), SPW_ERROR_INTERNAL);
  EXPECT_STREQ(spw_last_error(), "boom");
}

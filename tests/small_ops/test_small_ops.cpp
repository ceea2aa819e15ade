// CPU side of the small ops: RoPE math (incl. Llama-3 scaling), references against
// independent formulas, and argument checks (always run).
#include <cmath>

#include "kernels/common/rope.h"
#include "kernels/small_ops/reference.h"
#include "kernels/small_ops/small_ops.h"
#include "tests/common/helpers.h"

using namespace spw;
namespace ref = spw::small_ops::reference;

TEST(Rope, InvFreqWithoutScalingIsThetaPower) {
  RopeParams p;
  p.head_dim = 64;
  p.theta = 10000.f;
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(rope_inv_freq(i, p), std::pow(10000.0, -2.0 * i / 64), 1e-6);
}

TEST(Rope, Llama3ScalingKeepsHighAndDividesLowFrequencies) {
  RopeParams p;
  p.head_dim = 128;
  p.theta = 500000.f;
  RopeParams s = p;
  s.scaling_factor = 8.f;
  s.low_freq_factor = 1.f;
  s.high_freq_factor = 4.f;
  s.original_context = 8192;
  EXPECT_FLOAT_EQ(rope_inv_freq(0, s), rope_inv_freq(0, p));             // wavelength 2*pi: kept
  EXPECT_FLOAT_EQ(rope_inv_freq(63, s), rope_inv_freq(63, p) / 8.f);     // very long: divided
  // In the blend band the result lies between the two, and the map is monotone in i.
  for (int i = 1; i < 64; ++i) {
    float f = rope_inv_freq(i, s), f0 = rope_inv_freq(i, p);
    EXPECT_LE(f, f0 * 1.000001f);
    EXPECT_GE(f, f0 / 8.f * 0.999999f);
    EXPECT_LT(f, rope_inv_freq(i - 1, s));
  }
}

TEST(Rope, ReferencePreservesNormAndIsIdentityAtZero) {
  auto rng = test::make_rng();
  for (bool neox : {false, true}) {
    RopeParams p;
    p.head_dim = 64;
    p.neox = neox;
    auto x = test::random_floats(rng, 3 * 2 * 64);
    std::vector<int32_t> pos = {0, 5, 4000};
    auto y = ref::rope(x, 3, 2, pos, p);
    for (int h = 0; h < 2; ++h) EXPECT_NEAR(y[h * 64 + 7], x[h * 64 + 7], 1e-12);  // position 0
    for (int r = 0; r < 6; ++r) {
      double nx = 0, ny = 0;
      for (int j = 0; j < 64; ++j) { nx += double(x[r * 64 + j]) * x[r * 64 + j]; ny += y[r * 64 + j] * y[r * 64 + j]; }
      EXPECT_NEAR(nx, ny, 1e-9);
    }
    // Pair layout: element 1 moves with element 0 (normal) or with element 32 (NeoX).
    int a, b;
    rope_pair(0, p, &a, &b);
    EXPECT_EQ(b, neox ? 32 : 1);
    double angle = 5.0 * rope_inv_freq(0, p);
    size_t row = 1 * 2 * 64;  // token 1, head 0
    EXPECT_NEAR(y[row + a], x[row + a] * std::cos(angle) - x[row + b] * std::sin(angle), 1e-6);
  }
}

TEST(SmallOpsReference, RmsNormResidualSiluArgmax) {
  std::vector<float> x = {1, 2, 3, 4, -1, -1, -1, -1}, w = {1, 1, 2, 2};
  std::vector<float> res = {1, 0, 0, 0, 0, 0, 0, 1};
  auto out = ref::rmsnorm(x, &res, w, 2, 4, 0.f);
  // Row 0 after the residual add: {2,2,3,4}, rms = sqrt(33/4).
  double rms = std::sqrt(33.0 / 4);
  EXPECT_NEAR(out[0], 2 / rms, 1e-12);
  EXPECT_NEAR(out[3], 8 / rms, 1e-12);
  EXPECT_EQ(res[0], 2.f);
  EXPECT_EQ(res[7], 0.f);
  auto s = ref::silu_mul({1.f, -2.f, 3.f, 0.5f}, 1, 2);
  EXPECT_NEAR(s[0], 1 / (1 + std::exp(-1.0)) * 3, 1e-12);
  EXPECT_NEAR(s[1], -2 / (1 + std::exp(2.0)) * 0.5, 1e-12);
  auto am = ref::argmax({0.f, 3.f, 3.f, 1.f, -5.f, -4.f, -9.f, -4.f}, 2, 4);
  EXPECT_EQ(am[0], 1);  // ties go to the lowest index
  EXPECT_EQ(am[1], 1);
}

TEST(SmallOpsChecks, BadArgumentsNamed) {
  alignas(16) static char buf[256];
  small_ops::RmsNormArgs r;
  r.rows = 1;
  r.hidden = 12;
  r.x = r.weight = buf;
  r.out = buf;
  EXPECT_THROW_MSG(small_ops::check(r), "small_ops::rmsnorm: hidden = 12: must be a positive multiple of 8");
  r.hidden = 16;
  r.x = buf + 2;
  EXPECT_THROW_MSG(small_ops::check(r), "x = ");
  r.x = buf;
  r.dtype = DType::f32;
  EXPECT_THROW_MSG(small_ops::check(r), "dtype = fp32: must be fp16 or bf16");
  r.dtype = DType::bf16;
  r.eps = 0.f;
  EXPECT_THROW_MSG(small_ops::check(r), "eps = 0: must be > 0");
  r.eps = 1e-5f;
  EXPECT_NO_THROW(small_ops::check(r));

  small_ops::RopeArgs p;
  p.tokens = 1;
  p.q_heads = 2;
  p.kv_heads = 1;
  p.q = p.k = buf;
  p.positions = reinterpret_cast<const int32_t*>(buf);
  p.rope.head_dim = 63;
  EXPECT_THROW_MSG(small_ops::check(p), "rope.head_dim = 63");
  p.rope.head_dim = 64;
  p.q_row_stride = 100;
  EXPECT_THROW_MSG(small_ops::check(p), "q_row_stride = 100");
  p.q_row_stride = 0;
  p.positions = nullptr;
  EXPECT_THROW_MSG(small_ops::check(p), "positions = null");

  small_ops::SiluMulArgs s;
  s.rows = 1;
  s.inter = 0;
  s.gate_up = buf;
  s.out = buf;
  EXPECT_THROW_MSG(small_ops::check(s), "inter = 0");

  small_ops::EmbeddingArgs e;
  e.tokens = 1;
  e.vocab = 0;
  e.hidden = 8;
  EXPECT_THROW_MSG(small_ops::check(e), "vocab = 0");
  EXPECT_THROW_MSG(small_ops::check_argmax(nullptr, 1, 10, nullptr), "logits = null");
  EXPECT_THROW_MSG(small_ops::check_argmax(reinterpret_cast<float*>(buf), -1, 10, nullptr), "rows = -1");
}

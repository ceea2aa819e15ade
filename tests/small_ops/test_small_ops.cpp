// CPU side of the small ops: RoPE math (incl. Llama-3 scaling), references against
// independent formulas, the top-k rule (spw::top_tokens) against a full sort, and argument
// checks (always run).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/common/rope.h"
#include "kernels/common/top_tokens.h"
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
  r.rows = 0;  // an empty batch is allowed
  EXPECT_NO_THROW(small_ops::check(r));
  r.hidden = 0;
  EXPECT_THROW_MSG(small_ops::check(r), "hidden = 0: must be a positive multiple of 8");
  r.hidden = 16;
  r.x = nullptr;  // required (residual is the optional one)
  EXPECT_THROW_MSG(small_ops::check(r), "small_ops::rmsnorm: x = null: must be a device pointer");
  r.x = buf;

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
  p.q_row_stride = 128;  // exactly q_heads * head_dim
  EXPECT_NO_THROW(small_ops::check(p));
  p.q_row_stride = 0;
  p.positions = nullptr;
  EXPECT_THROW_MSG(small_ops::check(p), "positions = null");

  small_ops::SiluMulArgs s;
  s.rows = 1;
  s.inter = 0;
  s.gate_up = buf;
  s.out = buf;
  EXPECT_THROW_MSG(small_ops::check(s), "inter = 0");
  s.inter = 12;
  EXPECT_THROW_MSG(small_ops::check(s), "inter = 12: must be a positive multiple of 8");
  s.inter = 16;
  EXPECT_NO_THROW(small_ops::check(s));

  small_ops::EmbeddingArgs e;
  e.tokens = 1;
  e.vocab = 0;
  e.hidden = 8;
  EXPECT_THROW_MSG(small_ops::check(e), "vocab = 0");
  EXPECT_THROW_MSG(small_ops::check_argmax(nullptr, 1, 10, nullptr), "logits = null");
  EXPECT_THROW_MSG(small_ops::check_argmax(reinterpret_cast<float*>(buf), -1, 10, nullptr), "rows = -1");
}

TEST(SmallOpsChecks, TopkBadArgumentsNamed) {
  alignas(16) static float logits[16];
  static TopToken out[16];
  EXPECT_NO_THROW(small_ops::check_topk(logits, 2, 16, 8, out));
  EXPECT_NO_THROW(small_ops::check_topk(logits, 0, 1, 1, out));
  EXPECT_THROW_MSG(small_ops::check_topk(logits, 1, 16, 0, out), "small_ops::topk: k = 0: must be in [1, min(vocab, 8)]");
  EXPECT_THROW_MSG(small_ops::check_topk(logits, 1, 16, 9, out), "k = 9: must be in [1, min(vocab, 8)]");
  EXPECT_THROW_MSG(small_ops::check_topk(logits, 1, 3, 4, out), "k = 4: must be in [1, min(vocab, 8)]");
  EXPECT_THROW_MSG(small_ops::check_topk(logits, -1, 16, 1, out), "small_ops::topk: rows = -1: must be >= 0");
  EXPECT_THROW_MSG(small_ops::check_topk(logits, 1, 0, 1, out), "small_ops::topk: vocab = 0: must be > 0");
  EXPECT_THROW_MSG(small_ops::check_topk(nullptr, 1, 16, 1, out), "small_ops::topk: logits = null");
  EXPECT_THROW_MSG(small_ops::check_topk(logits, 1, 16, 1, nullptr), "small_ops::topk: out = null");
  // The launcher checks before it launches (or reports the missing CUDA), on any build.
  EXPECT_THROW_MSG(small_ops::topk(logits, 1, 16, 9, out, nullptr), "k = 9");
  EXPECT_THROW_MSG(small_ops::topk(nullptr, 1, 16, 2, out, nullptr), "logits = null");
}

namespace {
std::vector<TopToken> top_of(const std::vector<float>& x, int k) {
  std::vector<TopToken> out(k, TopToken{-1, -1.f});
  top_tokens(x.data(), static_cast<int>(x.size()), k, out.data());
  return out;
}
std::vector<int32_t> tokens_of(const std::vector<TopToken>& t) {
  std::vector<int32_t> r;
  for (const TopToken& e : t) r.push_back(e.token);
  return r;
}
}  // namespace

TEST(TopTokens, TiesGoToTheLowerIndex) {
  const std::vector<float> x = {1, 3, 3, 2, 3, 2};
  EXPECT_EQ(tokens_of(top_of(x, 3)), (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(tokens_of(top_of(x, 5)), (std::vector<int32_t>{1, 2, 4, 3, 5}));
  const std::vector<float> zeros = {0.f, -0.f, 0.f};  // -0 == +0: a tie
  EXPECT_EQ(tokens_of(top_of(zeros, 3)), (std::vector<int32_t>{0, 1, 2}));
  const auto p = top_of(x, 3);
  EXPECT_EQ(p[0].prob, p[1].prob);
  EXPECT_EQ(p[1].prob, p[2].prob);
}

TEST(TopTokens, NanAfterEveryNumberAndCarriesNoProbability) {
  const std::vector<float> x = {1.f, NAN, 2.f, NAN, -INFINITY};
  const auto t = top_of(x, 5);
  EXPECT_EQ(tokens_of(t), (std::vector<int32_t>{2, 0, 4, 1, 3}));  // NaNs last, by index
  EXPECT_EQ(t[2].prob, 0.f);                                      // -inf
  EXPECT_EQ(t[3].prob, 0.f);
  EXPECT_EQ(t[4].prob, 0.f);
  const double e = std::exp(-1.0);
  EXPECT_NEAR(t[0].prob, 1 / (1 + e), 1e-6);
  EXPECT_NEAR(t[1].prob, e / (1 + e), 1e-6);
}

TEST(TopTokens, NanAtIndexZeroComesFirst) {
  // Greedy's rule: token 0 first; the others keep their order (the last one drops out).
  const std::vector<float> x = {NAN, 1.f, 3.f, 2.f, NAN};
  EXPECT_EQ(tokens_of(top_of(x, 1)), (std::vector<int32_t>{0}));
  EXPECT_EQ(tokens_of(top_of(x, 2)), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(tokens_of(top_of(x, 4)), (std::vector<int32_t>{0, 2, 3, 1}));
  const auto t = top_of(x, 5);  // token 0 was in the list (fewer than k numbers): moved up
  EXPECT_EQ(tokens_of(t), (std::vector<int32_t>{0, 2, 3, 1, 4}));
  EXPECT_EQ(t[0].prob, 0.f);
  EXPECT_EQ(t[4].prob, 0.f);
  EXPECT_NEAR(t[1].prob + t[2].prob + t[3].prob, 1.f, 1e-6);  // m = the largest number
  EXPECT_EQ(top_of(x, 1)[0].prob, 0.f);
  // A row of NaN: tokens by index, no probability anywhere.
  const auto n = top_of({NAN, NAN, NAN}, 3);
  EXPECT_EQ(tokens_of(n), (std::vector<int32_t>{0, 1, 2}));
  for (const TopToken& e : n) EXPECT_EQ(e.prob, 0.f);
}

TEST(TopTokens, RowWithoutFiniteMaximumHasNoProbability) {
  for (const std::vector<float>& x : {std::vector<float>{-INFINITY, -INFINITY, NAN}, std::vector<float>{1.f, INFINITY, 2.f}}) {
    const auto t = top_of(x, 3);
    for (const TopToken& e : t) EXPECT_EQ(e.prob, 0.f);
  }
  EXPECT_EQ(top_of({1.f, INFINITY, 2.f}, 3)[0].token, 1);
}

TEST(TopTokens, ProbabilitiesAreTheSoftmaxAndSumToOne) {
  auto rng = test::make_rng(7);
  for (int vocab = 1; vocab <= kMaxTopK; ++vocab) {
    const auto x = test::random_floats(rng, vocab, -20.f, 20.f);
    const auto t = top_of(x, vocab);
    const double m = *std::max_element(x.begin(), x.end());
    double sum = 0, total = 0;
    for (float v : x) sum += std::exp(double(v) - m);
    for (const TopToken& e : t) {
      // fp32 rounds x - m (half an ulp of |x - m| <= 40: ~2e-6 relative in exp)
      EXPECT_NEAR(e.prob, std::exp(double(x[e.token]) - m) / sum, 5e-6 * e.prob + 1e-30) << vocab;
      total += e.prob;
    }
    EXPECT_NEAR(total, 1.0, 1e-6) << vocab;
  }
}

TEST(TopTokens, MatchesAFullSortOnRandomRows) {
  auto rng = test::make_rng(11);
  std::uniform_int_distribution<int> pick(0, 99);
  for (int trial = 0; trial < 400; ++trial) {
    const int vocab = 1 + trial % 300;
    auto x = test::random_floats(rng, vocab, -8.f, 8.f);
    const int kind = trial % 4;
    for (float& v : x) {
      if (kind == 1) v = std::round(v);  // few distinct values: many ties
      const int u = pick(rng);
      if (kind >= 2 && u < 5) v = NAN;
      if (kind >= 2 && u >= 95) v = -INFINITY;
    }
    if (kind == 3) x[0] = NAN;
    std::vector<int32_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {  // value desc, NaN last
      return !std::isnan(x[a]) && (std::isnan(x[b]) || x[a] > x[b]);
    });
    if (std::isnan(x[0])) {  // greedy's rule: token 0 first, the others in order
      const auto zero = std::find(order.begin(), order.end(), 0);
      std::rotate(order.begin(), zero, zero + 1);
    }
    double m = -INFINITY, sum = 0;
    for (float v : x) if (!std::isnan(v)) m = std::max(m, double(v));
    for (float v : x) if (!std::isnan(v)) sum += std::exp(double(v) - m);
    for (int k = 1; k <= std::min(vocab, kMaxTopK); ++k) {
      const auto t = top_of(x, k);
      ASSERT_EQ(tokens_of(t), std::vector<int32_t>(order.begin(), order.begin() + k)) << "trial " << trial << " k " << k;
      for (int i = 0; i < k; ++i) {
        const float v = x[t[i].token];
        // k = 1 with x[0] NaN: the list holds no number, so no maximum: prob 0 (token 0's anyway)
        const double want = std::isnan(v) || !std::isfinite(m) ? 0.0 : std::exp(double(v) - m) / sum;
        EXPECT_NEAR(t[i].prob, want, 1e-5 * want + 1e-30) << "trial " << trial << " k " << k << " i " << i;
      }
    }
  }
}

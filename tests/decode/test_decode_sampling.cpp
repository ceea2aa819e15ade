// The vectorised sampling numerics against plain double-precision references: exp_nonpositive
// (kernels/common/host_math.h), softmax / sampling_probs on rows of every length around the
// 8-lane and 64-value blocks, the special values (-inf, NaN), positive_sum, and sample()'s
// block skipping (only positive weights drawn, frequencies by chi-square).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "decode/sampling.h"
#include "decode/verify.h"
#include "kernels/common/host_math.h"
#include "tests/common/helpers.h"

using namespace spw::decode;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

SamplingParams temp(float t, float top_p = 1.f) {
  SamplingParams p;
  p.temperature = t;
  p.top_p = top_p;
  return p;
}

// softmax(logits * scale) in double.
std::vector<double> reference_softmax(const std::vector<float>& logits, double scale) {
  double m = -INFINITY;
  for (float v : logits)
    if (v > m) m = v;
  std::vector<double> p(logits.size());
  double sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += (p[i] = std::exp((double(logits[i]) - m) * scale));
  for (auto& v : p) v /= sum;
  return p;
}

}  // namespace

TEST(HostExp, MatchesStdExpOverTheWholeRange) {
  double worst = 0;
  float worst_x = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.3f * static_cast<float>(i) / 2000000.f;
    const double want = std::exp(double(x));
    const double err = std::abs(double(spw::exp_nonpositive(x)) - want) / want;
    if (err > worst) worst = err, worst_x = x;
  }
  EXPECT_LT(worst, 2.5e-7) << "at x = " << worst_x;
  EXPECT_EQ(spw::exp_nonpositive(0.f), 1.f);
  EXPECT_EQ(spw::exp_nonpositive(-0.f), 1.f);
  EXPECT_EQ(spw::exp_nonpositive(3.f), 1.f) << "positive inputs are clamped to 0";
  EXPECT_EQ(spw::exp_nonpositive(-kInf), 0.f);
  EXPECT_EQ(spw::exp_nonpositive(kNaN), 0.f);
  EXPECT_EQ(spw::exp_nonpositive(-88.f), 0.f);
  EXPECT_EQ(spw::exp_nonpositive(-1000.f), 0.f);
  EXPECT_GT(spw::exp_nonpositive(-87.3f), 0.f);
}

TEST(Sampling, SoftmaxAndTemperatureMatchADoubleReferenceOnEveryRowLength) {
  auto rng = spw::test::make_rng(5);
  std::normal_distribution<float> logit(0.f, 4.f);
  int rows = 0;
  for (size_t n : {1, 2, 7, 8, 9, 63, 64, 65, 127, 129, 1000, 49152, 49157})
    for (float t : {1.f, 0.7f, 0.25f, 2.f}) {
      std::vector<float> x(n);
      for (auto& v : x) v = logit(rng);
      std::vector<float> p;
      if (t == 1.f) {
        softmax(x, p);
      } else {
        sampling_probs(x, temp(t), p);
      }
      ASSERT_EQ(p.size(), n);
      const auto want = reference_softmax(x, 1.0 / t);
      double sum = 0;
      for (size_t i = 0; i < n; ++i) {
        sum += p[i];
        // Relative to the value, for every value above float's denormal range.
        if (want[i] > 1e-30) {
          ASSERT_NEAR(p[i], want[i], 2e-6 * want[i] + 1e-12) << "n " << n << " t " << t << " i " << i;
        } else {
          ASSERT_LE(p[i], 1e-29);
        }
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << "n " << n;
      ++rows;
    }
  EXPECT_EQ(rows, 52);
}

TEST(Sampling, MinusInfinityIsExactlyZeroAndRowsWithoutAFiniteMaximumAreOneHot) {
  std::vector<float> x(100, -kInf);
  x[17] = 2.f;
  x[70] = 1.f;
  x[3] = kNaN;
  std::vector<float> p;
  sampling_probs(x, temp(0.8f), p);
  for (size_t i = 0; i < x.size(); ++i) {
    if (i != 17 && i != 70) {
      EXPECT_EQ(p[i], 0.f) << i;
    }
  }
  EXPECT_NEAR(p[17], 1 / (1 + std::exp(-1 / 0.8)), 1e-6);
  // No finite maximum: the one-hot argmax (greedy_token's rule), never NaN weights.
  std::vector<float> all_inf(70, -kInf);
  softmax(all_inf, p);
  EXPECT_EQ(p[0], 1.f);
  std::vector<float> nan_row(70, kNaN);
  nan_row[0] = 1.f;  // (a NaN at index 0 would be greedy_token's winner)
  nan_row[40] = kInf;
  sampling_probs(nan_row, temp(0.7f, 0.9f), p);
  EXPECT_EQ(p[40], 1.f);
  for (size_t i = 0; i < p.size(); ++i) {
    if (i != 40) {
      EXPECT_EQ(p[i], 0.f) << i;
    }
  }
}

TEST(Sampling, PositiveSumCountsOnlyPositiveEntries) {
  auto rng = spw::test::make_rng(9);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (size_t n : {0, 1, 8, 63, 64, 65, 1000, 49152}) {
    std::vector<float> w(n);
    double want = 0;
    for (size_t i = 0; i < n; ++i) {
      w[i] = i % 97 == 5 ? kNaN : u(rng);
      if (w[i] > 0) want += w[i];
    }
    EXPECT_NEAR(positive_sum(w), want, 1e-6 * (want + 1)) << n;
  }
}

// sample() skips whole 256-value blocks by their sums: weights spread over several blocks,
// with zero, negative and NaN entries between them, are drawn in proportion to their weight,
// and nothing else is ever drawn.
TEST(Sampling, SampleDrawsOnlyPositiveWeightsInProportion) {
  std::vector<float> w(1100, 0.f);
  const std::vector<std::pair<int, float>> heavy = {{0, 1.f},   {255, 2.f}, {256, 1.f}, {511, 3.f},
                                                    {700, 0.5f}, {1023, 2.f}, {1024, 1.f}, {1099, 1.5f}};
  for (auto [i, v] : heavy) w[i] = v;
  for (int i = 1; i < 1100; i += 9)
    if (w[i] == 0.f) w[i] = i % 2 ? -1.f : kNaN;
  double total = 0;
  for (auto [i, v] : heavy) total += v;
  Rng rng(42);
  std::vector<int> count(w.size());
  const int n = 60000;
  for (int t = 0; t < n; ++t) ++count[sample(w, rng)];
  double chi2 = 0;
  for (auto [i, v] : heavy) {
    const double e = n * v / total;
    chi2 += (count[i] - e) * (count[i] - e) / e;
  }
  int others = 0;
  for (size_t i = 0; i < w.size(); ++i)
    if (!(w[i] > 0)) others += count[i];
  EXPECT_EQ(others, 0);
  EXPECT_LT(chi2, 24.32) << "df = 7, p = 0.001";
  // A single positive weight, first or last, however the rounding of u falls.
  for (int where : {0, 255, 256, 1099}) {
    std::vector<float> one(1100, 0.f);
    one[where] = 1e-30f;
    for (int t = 0; t < 50; ++t) EXPECT_EQ(sample(one, rng), where);
  }
}

// Rng is xoshiro256** (Blackman and Vigna) with its state filled by four splitmix64 outputs of
// the seed, so a --seed gives the same draws in every build. Expected values from a separate
// Python transcription of the two published algorithms (its splitmix64(0) gives the published
// first output 0xe220a8397b1dcdaf); uniform() is the top 53 bits over 2^53.
TEST(Sampling, RngIsXoshiro256StarStarSeededBySplitMix64) {
  Rng zero(0), answer(42);
  for (uint64_t want : {0x99ec5f36cb75f2b4ull, 0xbf6e1f784956452aull, 0x1a5f849d4933e6e0ull, 0x6aa594f1262d2d2cull})
    EXPECT_EQ(zero.next(), want);
  for (uint64_t want : {0x15780b2e0c2ec716ull, 0x6104d9866d113a7eull, 0xae17533239e499a1ull, 0xecb8ad4703b360a1ull})
    EXPECT_EQ(answer.next(), want);
  Rng u(0);
  EXPECT_EQ(u.uniform(), static_cast<double>(0x99ec5f36cb75f2b4ull >> 11) / 9007199254740992.0);
}

// The tree walk keeps a running total of the mass left after rejected children: the first
// token it emits still follows the target distribution when every child is rejected often.
TEST(Sampling, TreeVerificationWithManyChildrenKeepsTheTargetDistribution) {
  const int vocab = 6;
  std::vector<float> logits(vocab * 6, 0.f);  // the root row; node rows unused by this count
  const std::vector<float> root = {0.1f, 1.2f, -0.5f, 0.7f, 0.f, 0.4f};
  std::copy(root.begin(), root.end(), logits.begin());
  const std::vector<int32_t> tokens = {1, 3, 5, 0, 2};
  const std::vector<int32_t> parents = {-1, -1, -1, -1, -1};  // five children of the root
  std::vector<float> p;
  sampling_probs(root, temp(1.f), p);
  Rng rng(3);
  std::vector<int> first(vocab);
  const int n = 30000;
  for (int t = 0; t < n; ++t) {
    const auto r = verify_tree(logits, vocab, tokens, parents, temp(1.f), rng);
    ++first[r.accepted > 0 ? tokens[r.path[0]] : r.next_token];
  }
  double chi2 = 0;
  for (int v = 0; v < vocab; ++v) chi2 += (first[v] - n * p[v]) * (first[v] - n * p[v]) / (n * p[v]);
  EXPECT_LT(chi2, 20.52) << "df = 5, p = 0.001";
}

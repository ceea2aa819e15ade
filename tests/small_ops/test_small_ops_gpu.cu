// GPU small ops against their CPU references (skipped without a usable GPU).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "kernels/common/device_buffer.h"
#include "kernels/common/top_tokens.h"
#include "kernels/small_ops/reference.h"
#include "kernels/small_ops/small_ops.h"
#include "tests/common/graph_capture.h"
#include "tests/common/helpers.h"

using namespace spw;
namespace ref = spw::small_ops::reference;

template <typename T>
class SmallOpsGpu : public ::testing::Test {};
using DTypes = ::testing::Types<half, bfloat16>;
TYPED_TEST_SUITE(SmallOpsGpu, DTypes);

TYPED_TEST(SmallOpsGpu, RmsNormWithAndWithoutResidual) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  auto rng = test::make_rng();
  for (int hidden : {8, 576, 4096, 8200}) {
    const int rows = 5;
    auto x = test::random_floats(rng, rows * hidden, -2.f, 2.f, dt);
    auto w = test::random_floats(rng, hidden, 0.5f, 1.5f, dt);
    auto res = test::random_floats(rng, rows * hidden, -1.f, 1.f, dt);
    DeviceBuffer<T> dx(test::to_storage<T>(x)), dw(test::to_storage<T>(w)), dres(test::to_storage<T>(res)),
        dout(rows * hidden);
    for (bool with_res : {false, true}) {
      dout.fill_bytes(test::kPoisonByte);
      small_ops::RmsNormArgs a{dt, rows, hidden, dx.get(), with_res ? dres.get() : nullptr, dw.get(), dout.get(), 1e-6f};
      small_ops::rmsnorm(a, nullptr);
      SPW_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> r = res;
      auto expect = ref::rmsnorm(x, with_res ? &r : nullptr, w, rows, hidden, 1e-6f);
      EXPECT_TRUE(test::close_to(test::to_floats(dout.download()), expect, test::tolerance_for(dt))) << hidden;
      if (with_res) {
        auto got = test::to_floats(dres.download());
        std::vector<double> rd(r.begin(), r.end());
        EXPECT_TRUE(test::close_to(got, rd, test::tolerance_for(dt)));
      }
    }
  }
}

TYPED_TEST(SmallOpsGpu, RopeMatchesReference) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  auto rng = test::make_rng();
  for (bool neox : {false, true}) {
    for (int head_dim : {64, 128}) {
      RopeParams p;
      p.head_dim = head_dim;
      p.theta = 500000.f;
      p.neox = neox;
      p.scaling_factor = neox ? 0.f : 8.f;
      const int tokens = 7, qh = 4, kh = 2;
      auto q = test::random_floats(rng, tokens * qh * head_dim, -1.f, 1.f, dt);
      auto k = test::random_floats(rng, tokens * kh * head_dim, -1.f, 1.f, dt);
      std::vector<int32_t> pos = {0, 1, 2, 17, 500, 4095, 30000};
      DeviceBuffer<T> dq(test::to_storage<T>(q)), dk(test::to_storage<T>(k));
      DeviceBuffer<int32_t> dpos(pos);
      small_ops::RopeArgs a;
      a.dtype = dt;
      a.tokens = tokens;
      a.q_heads = qh;
      a.kv_heads = kh;
      a.q = dq.get();
      a.k = dk.get();
      a.positions = dpos.get();
      a.rope = p;
      small_ops::rope(a, nullptr);
      SPW_CUDA_CHECK(cudaDeviceSynchronize());
      // Angles up to 30000 rad: fp32 sin/cos of large arguments adds ~1e-3 absolute error.
      test::Tolerance tol = test::tolerance_for(dt);
      tol.rel_l2 = std::max(tol.rel_l2, 5e-3);
      EXPECT_TRUE(test::close_to(test::to_floats(dq.download()), ref::rope(q, tokens, qh, pos, p), tol));
      EXPECT_TRUE(test::close_to(test::to_floats(dk.download()), ref::rope(k, tokens, kh, pos, p), tol));

      // In place on a fused qkv buffer, as the CUDA backend calls it: q and k are column blocks
      // of [tokens, (qh + 2 kh) * head_dim] rows; v (after k) must stay untouched.
      const int qd = qh * head_dim, kd = kh * head_dim, qkv_dim = qd + 2 * kd;
      auto v = test::random_floats(rng, size_t(tokens) * kd, -1.f, 1.f, dt);
      std::vector<float> qkv(size_t(tokens) * qkv_dim);
      for (int t = 0; t < tokens; ++t) {
        std::copy_n(q.begin() + size_t(t) * qd, qd, qkv.begin() + size_t(t) * qkv_dim);
        std::copy_n(k.begin() + size_t(t) * kd, kd, qkv.begin() + size_t(t) * qkv_dim + qd);
        std::copy_n(v.begin() + size_t(t) * kd, kd, qkv.begin() + size_t(t) * qkv_dim + qd + kd);
      }
      DeviceBuffer<T> dqkv(test::to_storage<T>(qkv));
      a.q = dqkv.get();
      a.k = dqkv.get() + qd;
      a.q_row_stride = a.k_row_stride = qkv_dim;
      small_ops::rope(a, nullptr);
      SPW_CUDA_CHECK(cudaDeviceSynchronize());
      const auto out = test::to_floats(dqkv.download());
      std::vector<float> q_out, k_out;
      for (int t = 0; t < tokens; ++t) {
        const auto row = out.begin() + size_t(t) * qkv_dim;
        q_out.insert(q_out.end(), row, row + qd);
        k_out.insert(k_out.end(), row + qd, row + qd + kd);
        for (int j = 0; j < kd; ++j) ASSERT_EQ(row[qd + kd + j], v[size_t(t) * kd + j]) << "v changed, token " << t;
      }
      EXPECT_TRUE(test::close_to(q_out, ref::rope(q, tokens, qh, pos, p), tol)) << "strided q";
      EXPECT_TRUE(test::close_to(k_out, ref::rope(k, tokens, kh, pos, p), tol)) << "strided k";
    }
  }
}

TYPED_TEST(SmallOpsGpu, SiluMulAndEmbedding) {
  SPW_REQUIRE_GPU();
  using T = TypeParam;
  const DType dt = DTypeTraits<T>::dtype;
  auto rng = test::make_rng();
  const int rows = 3, inter = 1536;
  auto gu = test::random_floats(rng, rows * 2 * inter, -4.f, 4.f, dt);
  DeviceBuffer<T> dgu(test::to_storage<T>(gu)), dout(rows * inter);
  dout.fill_bytes(test::kPoisonByte);
  small_ops::silu_mul({dt, rows, inter, dgu.get(), dout.get()}, nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(test::close_to(test::to_floats(dout.download()), ref::silu_mul(gu, rows, inter), test::tolerance_for(dt)));

  const int vocab = 100, hidden = 64;
  auto table = test::random_floats(rng, vocab * hidden, -1.f, 1.f, dt);
  std::vector<int32_t> ids = {5, 99, 0, 100};  // the last is out of range
  DeviceBuffer<T> dtable(test::to_storage<T>(table)), demb(ids.size() * hidden);
  DeviceBuffer<int32_t> dids(ids);
  DeviceBuffer<int> flag(std::vector<int>{0});
  demb.fill_bytes(test::kPoisonByte);
  small_ops::embedding({dt, int(ids.size()), vocab, hidden, dids.get(), dtable.get(), demb.get(), flag.get()}, nullptr);
  SPW_CUDA_CHECK(cudaDeviceSynchronize());
  auto emb = test::to_floats(demb.download());
  for (int t = 0; t < 3; ++t)
    for (int j = 0; j < hidden; ++j) ASSERT_EQ(emb[t * hidden + j], table[ids[t] * hidden + j]);
  for (int j = 0; j < hidden; ++j) ASSERT_EQ(emb[3 * hidden + j], 0.f);
  EXPECT_EQ(flag.download()[0], 1);
}

TEST(SmallOpsGpuArgmax, MatchesReferenceWithTies) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  for (int vocab : {1, 7, 32000, 49152, 128256}) {
    const int rows = 4;
    auto logits = test::random_floats(rng, size_t(rows) * vocab, -10.f, 10.f);
    if (vocab > 10) {  // a tie between two far-apart positions in row 1
      logits[size_t(vocab) + 3] = 50.f;
      logits[size_t(vocab) + vocab - 2] = 50.f;
    }
    if (vocab > 1) {  // NaN never wins (row 2), except at index 0, which the CPU keeps (row 3)
      for (size_t j : {size_t(1), size_t(vocab) / 2, size_t(vocab) - 1}) logits[2 * size_t(vocab) + j] = NAN;
      logits[3 * size_t(vocab)] = NAN;
    }
    if (vocab == 7) std::fill(logits.begin(), logits.begin() + vocab, -INFINITY);  // all -inf: index 0
    DeviceBuffer<float> dl(logits);
    DeviceBuffer<int32_t> dout(rows);
    dout.fill_bytes(test::kPoisonByte);
    small_ops::argmax(dl.get(), rows, vocab, dout.get(), nullptr);
    SPW_CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_EQ(dout.download(), ref::argmax(logits, rows, vocab)) << vocab;
  }
}

namespace {
// Row r of a top-k test: random logits shaped by one of kTopkKinds patterns, each aimed at a
// part of the rule (ties, NaN, infinities, the per-thread lists' worst case).
constexpr int kTopkKinds = 11;
void shape_topk_row(std::mt19937_64& rng, float* x, int vocab, int kind) {
  std::uniform_int_distribution<int> pick(0, vocab - 1);
  switch (kind) {
    case 0: break;                                                     // plain random
    case 1: for (int j = 0; j < vocab; ++j) x[j] = std::round(x[j] / 4); break;  // ~5 values: ties
    case 2: x[0] = NAN; for (int i = 0; i < 4; ++i) x[pick(rng)] = NAN; break;    // NaN at 0 and elsewhere
    case 3:                                                            // NaN and -inf, not at 0
      for (int i = 0; i < 6; ++i) x[pick(rng)] = NAN, x[pick(rng)] = -INFINITY;
      if (vocab > 1) x[vocab - 1] = NAN;
      break;
    case 4: for (int j = 0; j < vocab; ++j) x[j] = static_cast<float>(j) * 1e-3f; break;  // ascending
    case 5: std::fill(x, x + vocab, 0.5f); break;                      // all equal
    case 6:                                                            // fewer numbers than k, x[0] NaN
      std::fill(x, x + vocab, NAN);
      for (int i = 0; i < 3; ++i) x[pick(rng)] = static_cast<float>(i);
      x[0] = NAN;
      break;
    case 7: std::fill(x, x + vocab, -INFINITY); x[pick(rng)] = NAN; break;  // no finite maximum
    case 8: x[pick(rng)] = INFINITY; break;                            // +inf: no finite maximum
    case 9:                                                            // a tie at the top, far apart
      x[vocab / 3] = x[vocab - 1] = 50.f;
      for (int i = 0; i < 3; ++i) x[pick(rng)] = -INFINITY;
      break;
    case 10:  // the top all in one thread's strided slice (the kernel's 256 threads), rising, tied in fours
      for (int j = 0; j < vocab; j += 256) x[j] = 20.f + static_cast<float>(j / 1024);
      break;
  }
}

// Token t's probability in fp64 from the same fp32 differences x - m (m the largest non-NaN
// logit): 0 for a NaN logit or a row without a finite maximum.
double softmax_prob(const float* x, int vocab, int t) {
  float m = -INFINITY;
  for (int j = 0; j < vocab; ++j)
    if (!std::isnan(x[j])) m = std::max(m, x[j]);
  if (!std::isfinite(m) || std::isnan(x[t])) return 0.0;
  double sum = 0;
  for (int j = 0; j < vocab; ++j)
    if (!std::isnan(x[j])) sum += std::exp(double(x[j] - m));
  return std::exp(double(x[t] - m)) / sum;
}
// Both the kernel (256 fp32 partial sums, then a tree) and top_tokens (fp32 terms in 8 double
// lanes) are within ~3e-7 relative of fp64; held to 1e-5 against fp64 and against each other.
constexpr double kTopTokensRel = 1e-5;
}  // namespace

TEST(SmallOpsGpuTopk, MatchesTopTokens) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng();
  int case_index = 0;
  for (int vocab : {1, 7, 8, 1000, 49152, 128256}) {
    for (int rows : {0, 1, 3, 17}) {
      for (int k : {1, 4, 8}) {
        if (k > vocab) continue;
        auto logits = test::random_floats(rng, size_t(rows) * vocab, -10.f, 10.f);
        std::vector<int> kinds(rows);
        for (int r = 0; r < rows; ++r) {
          kinds[r] = (case_index + r) % kTopkKinds;
          shape_topk_row(rng, logits.data() + size_t(r) * vocab, vocab, kinds[r]);
        }
        ++case_index;
        std::vector<TopToken> want(size_t(rows) * k);
        for (int r = 0; r < rows; ++r) top_tokens(logits.data() + size_t(r) * vocab, vocab, k, want.data() + size_t(r) * k);

        DeviceBuffer<float> dl(rows ? logits : std::vector<float>{1.f});  // rows = 0: a valid pointer, no launch
        const size_t tail = 4;  // entries past rows * k that must stay poisoned
        DeviceBuffer<TopToken> dout(size_t(rows) * k + tail);
        dout.fill_bytes(test::kPoisonByte);
        small_ops::topk(dl.get(), rows, vocab, k, dout.get(), nullptr);
        SPW_CUDA_CHECK(cudaDeviceSynchronize());
        const auto got = dout.download();
        for (int r = 0; r < rows; ++r)
          for (int i = 0; i < k; ++i) {
            const TopToken g = got[size_t(r) * k + i], w = want[size_t(r) * k + i];
            ASSERT_EQ(g.token, w.token) << "vocab " << vocab << " rows " << rows << " k " << k << " row " << r
                                        << " (kind " << kinds[r] << ") i " << i;
            const double exact = softmax_prob(logits.data() + size_t(r) * vocab, vocab, g.token);
            EXPECT_NEAR(g.prob, exact, 1e-5 * exact + 1e-30)
                << "vocab " << vocab << " k " << k << " row " << r << " (kind " << kinds[r] << ") i " << i;
            EXPECT_NEAR(g.prob, w.prob, kTopTokensRel * w.prob + 1e-30)
                << "vocab " << vocab << " k " << k << " row " << r << " (kind " << kinds[r] << ") i " << i;
          }
        const auto poison = test::poisoned<TopToken>(tail);
        EXPECT_EQ(std::memcmp(got.data() + size_t(rows) * k, poison.data(), tail * sizeof(TopToken)), 0)
            << "wrote past rows * k: vocab " << vocab << " rows " << rows << " k " << k;

        // Deterministic: a second run gives the same bytes.
        dout.fill_bytes(test::kPoisonByte);
        small_ops::topk(dl.get(), rows, vocab, k, dout.get(), nullptr);
        SPW_CUDA_CHECK(cudaDeviceSynchronize());
        const auto again = dout.download();
        EXPECT_EQ(std::memcmp(again.data(), got.data(), got.size() * sizeof(TopToken)), 0)
            << "vocab " << vocab << " rows " << rows << " k " << k;
      }
    }
  }
}

TEST(SmallOpsGpuTopk, ReplaysInACudaGraph) {
  SPW_REQUIRE_GPU();
  auto rng = test::make_rng(3);
  const int rows = 5, vocab = 3000, k = 8;
  auto logits = test::random_floats(rng, size_t(rows) * vocab, -10.f, 10.f);
  logits[0] = NAN;
  DeviceBuffer<float> dl(logits);
  DeviceBuffer<TopToken> dout(size_t(rows) * k);
  test::CapturedGraph graph([&](cudaStream_t s) { small_ops::topk(dl.get(), rows, vocab, k, dout.get(), s); });
  dout.fill_bytes(test::kPoisonByte);
  graph.replay(2);
  const auto got = dout.download();
  std::vector<TopToken> want(size_t(rows) * k);
  for (int r = 0; r < rows; ++r) top_tokens(logits.data() + size_t(r) * vocab, vocab, k, want.data() + size_t(r) * k);
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].token, want[i].token) << i;
    EXPECT_NEAR(got[i].prob, want[i].prob, 1e-5 * want[i].prob + 1e-30) << i;
  }
}

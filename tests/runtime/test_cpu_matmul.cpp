// The CPU backend's matrix product (runtime/cpu_matmul.h) on every instruction set this CPU
// and build can run: against an fp64 reference over shapes that exercise every remainder
// (rows not a multiple of the row block, tokens not a multiple of the token block, columns
// not a multiple of the vector width), bias and accumulate; batch invariance (a token's
// outputs are bit-identical whatever T, token block and row range); bad ISA names. Encoded
// weights (every GGUF tensor type, dequantised on the fly): bit-identical to the product over
// dequantize()'s fp32 values on every instruction set, and their argument checks. The
// vectorised softmax and SiLU gate against fp64; attention's scores over the tile-transposed key
// cache (key_scores). (The thread pool: test_thread_pool.cpp.)
#include <cmath>
#include <cstdlib>

#include "runtime/cpu_matmul.h"
#include "runtime/dequant.h"
#include "runtime/gguf_writer.h"
#include "runtime/llama_weights.h"
#include "tests/common/helpers.h"

using namespace spw;
using namespace spw::rt;

namespace {

std::vector<const char*> runnable_isas() {
  std::vector<const char*> out;
  for (const char* isa : {"avx512", "avx2", "generic"})
    if (matmul_isa_supported(isa)) out.push_back(isa);
  return out;
}

struct Case {
  int rows, cols, T;
};

std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                              const std::vector<float>& y0, const Case& c, bool accumulate) {
  std::vector<double> y(static_cast<size_t>(c.T) * c.rows);
  for (int t = 0; t < c.T; ++t)
    for (int r = 0; r < c.rows; ++r) {
      double s = bias.empty() ? 0.0 : bias[r];
      for (int k = 0; k < c.cols; ++k) s += double(x[size_t(t) * c.cols + k]) * w[size_t(r) * c.cols + k];
      y[size_t(t) * c.rows + r] = (accumulate ? y0[size_t(t) * c.rows + r] : 0.0) + s;
    }
  return y;
}

TEST(CpuMatmul, GenericIsAlwaysRunnableAndChosenIsaIsOneOfThem) {
  EXPECT_TRUE(matmul_isa_supported("generic"));
  EXPECT_FALSE(matmul_isa_supported("sse9"));
  const std::string chosen = matmul_isa();
  EXPECT_TRUE(chosen == "avx512" || chosen == "avx2" || chosen == "generic") << chosen;
  EXPECT_TRUE(matmul_isa_supported(chosen.c_str()));
}

// SPW_CPU_ISA names the instruction set to use when the CPU supports it; otherwise (unset, a set
// this CPU lacks, or no such set) the fastest supported one is used. ctest runs this file again
// under several values (runtime_cpu_isa_*, tests/runtime/tests.cmake).
TEST(CpuMatmul, IsaFollowsTheEnvironment) {
  const char* want = std::getenv("SPW_CPU_ISA");
  std::string fastest;
  for (const char* isa : {"avx512", "avx2", "generic"})
    if (fastest.empty() && matmul_isa_supported(isa)) fastest = isa;
  const std::string expected = want && matmul_isa_supported(want) ? want : fastest;
  EXPECT_EQ(matmul_isa(), expected) << "SPW_CPU_ISA=" << (want ? want : "(unset)");
}

TEST(CpuMatmul, MatchesFp64ReferenceOnEveryIsaAndRemainderShape) {
  auto rng = test::make_rng();
  const Case cases[] = {{1, 1, 1},   {3, 7, 1},   {4, 16, 4},   {5, 17, 3},   {17, 15, 5},  {64, 64, 8},
                        {9, 576, 9}, {33, 1000, 2}, {8, 33, 17}, {130, 48, 1}, {7, 576, 64}};
  for (const char* isa : runnable_isas())
    for (const Case& c : cases)
      for (int variant = 0; variant < 3; ++variant) {  // plain, bias, bias + accumulate
        const bool with_bias = variant >= 1, accumulate = variant == 2;
        const auto x = test::random_floats(rng, size_t(c.T) * c.cols);
        const auto w = test::random_floats(rng, size_t(c.rows) * c.cols);
        const auto bias = with_bias ? test::random_floats(rng, c.rows) : std::vector<float>{};
        const auto y0 = test::random_floats(rng, size_t(c.T) * c.rows);
        std::vector<float> y = accumulate ? y0 : test::poisoned<float>(y0.size());
        MatmulArgs a{x.data(), c.T, w.data(), c.rows, c.cols, with_bias ? bias.data() : nullptr, y.data(), accumulate};
        matmul_rows_isa(isa, a, 0, c.rows);
        // fp32 accumulation of cols products of magnitude <= 1: error ~ cols * 2^-24 per term.
        const double bound = 1e-6 * (c.cols + 4);
        EXPECT_TRUE(test::close_to(y, reference(x, w, bias, y0, c, accumulate), {bound, bound}))
            << isa << " rows " << c.rows << " cols " << c.cols << " T " << c.T << " variant " << variant;
      }
}

TEST(CpuMatmul, TokenOutputsAreBitIdenticalWhateverTheBatchAndRowSplit) {
  auto rng = test::make_rng();
  const int rows = 37, cols = 203, T = 11;  // no dimension a multiple of any block
  const auto x = test::random_floats(rng, size_t(T) * cols);
  const auto w = test::random_floats(rng, size_t(rows) * cols);
  const auto bias = test::random_floats(rng, rows);
  for (const char* isa : runnable_isas()) {
    std::vector<float> all(size_t(T) * rows);
    matmul_rows_isa(isa, {x.data(), T, w.data(), rows, cols, bias.data(), all.data(), false}, 0, rows);
    for (int t0 = 0; t0 < T; ++t0)
      for (int n = 1; t0 + n <= T; n += 3) {  // tokens [t0, t0 + n) alone, rows split at odd places
        std::vector<float> part(size_t(n) * rows);
        const MatmulArgs a{x.data() + size_t(t0) * cols, n, w.data(), rows, cols, bias.data(), part.data(), false};
        for (auto [r0, r1] : {std::pair{0, 5}, std::pair{5, 6}, std::pair{6, 23}, std::pair{23, rows}})
          matmul_rows_isa(isa, a, r0, r1);
        for (int t = 0; t < n; ++t)
          for (int r = 0; r < rows; ++r)
            ASSERT_EQ(std::memcmp(&part[size_t(t) * rows + r], &all[size_t(t0 + t) * rows + r], sizeof(float)), 0)
                << isa << " token " << t0 + t << " of a batch of " << n << " row " << r;
      }
  }
}

TEST(CpuMatmul, RowStridesSelectSlicesOfWiderMatrices) {
  // x, w and y as column slices of wider row-major arrays (e.g. one head of a KV cache row).
  auto rng = test::make_rng();
  const int rows = 13, cols = 40, T = 5, xs = 57, ws = 96, ys = 21, w_off = 32;
  const auto xbig = test::random_floats(rng, size_t(T) * xs);
  const auto wbig = test::random_floats(rng, size_t(rows) * ws);
  std::vector<float> x, w;
  for (int t = 0; t < T; ++t) x.insert(x.end(), xbig.begin() + t * xs, xbig.begin() + t * xs + cols);
  for (int r = 0; r < rows; ++r) w.insert(w.end(), wbig.begin() + r * ws + w_off, wbig.begin() + r * ws + w_off + cols);
  const auto ref = reference(x, w, {}, {}, {rows, cols, T}, false);
  for (const char* isa : runnable_isas()) {
    auto ybig = test::poisoned<float>(size_t(T) * ys);
    MatmulArgs a{xbig.data(), T, wbig.data() + w_off, rows, cols, nullptr, ybig.data(), false};
    a.x_stride = xs;
    a.w_stride = ws;
    a.y_stride = ys;
    matmul_rows_isa(isa, a, 0, rows);
    std::vector<float> y;
    for (int t = 0; t < T; ++t) {
      y.insert(y.end(), ybig.begin() + t * ys, ybig.begin() + t * ys + rows);
      for (int c = rows; c < ys; ++c) EXPECT_TRUE(std::isnan(ybig[size_t(t) * ys + c])) << isa << " wrote past the row";
    }
    EXPECT_TRUE(test::close_to(y, ref, {1e-5, 1e-5})) << isa;
  }
}

TEST(CpuMatmul, EncodedWeightsGiveTheBitsOfTheirDequantisedValues) {
  // Every type on every ISA: the on-the-fly panel must hold exactly dequantize()'s values, so
  // the outputs equal the fp32 product bit for bit. Shapes: rows not a multiple of the row
  // block, T past the token block, F16/BF16/F32 columns with a vector tail; values include
  // fp16 subnormals (F16) and every nibble (the quantisers' random blocks).
  auto rng = test::make_rng();
  struct TypeCase {
    TensorType type;
    int cols;
  };
  const TypeCase types[] = {{TensorType::F16, 37},  {TensorType::F16, 576}, {TensorType::BF16, 23}, {TensorType::BF16, 64},
                            {TensorType::Q8_0, 96}, {TensorType::Q4_0, 64}, {TensorType::Q4_1, 576},
                            // past one 64-block chunk of scales converted ahead (AVX-512, blocks of 4+ rows)
                            {TensorType::Q4_0, 2080}, {TensorType::Q4_1, 4128},
                            {TensorType::Q4_K, 256}, {TensorType::Q4_K, 512}, {TensorType::Q6_K, 256}, {TensorType::Q6_K, 768}};
  for (const TypeCase& tc : types)
    for (int rows : {1, 6, 13, 37})
      // T <= kFusedTokens (4 on AVX2, 8 generic, 16 AVX-512): in-register dequantisation (Q8_0,
      // Q4_0, Q4_1) in token blocks (AVX-512: 8 rows x 1, 4 x 2, 4 x 4, one 4 x 6 for T = 5, 6,
      // else 4 x 4 blocks and a remainder: 6 and 13 rows leave partial row blocks, the two row
      // ranges of 37 start mid-block); above it, the panel
      for (int T : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17}) {
        const uint32_t type = static_cast<uint32_t>(tc.type);
        auto values = test::random_floats(rng, size_t(rows) * tc.cols);
        if (tc.type == TensorType::F16)
          for (size_t i = 0; i < values.size(); i += 5) values[i] *= 1e-5f;  // fp16 subnormals
        const std::vector<uint8_t> enc = quantize(type, values.data(), int64_t(rows) * tc.cols);
        std::vector<float> w(values.size());
        dequantize(type, enc.data(), int64_t(w.size()), w.data());
        const auto x = test::random_floats(rng, size_t(T) * tc.cols);
        const auto bias = test::random_floats(rng, rows);
        for (const char* isa : runnable_isas()) {
          std::vector<float> want(size_t(T) * rows), got = test::poisoned<float>(size_t(T) * rows);
          matmul_rows_isa(isa, {x.data(), T, w.data(), rows, tc.cols, bias.data(), want.data(), false}, 0, rows);
          MatmulArgs a{x.data(), T, nullptr, rows, tc.cols, bias.data(), got.data(), false};
          a.wq = enc.data();
          a.wq_type = type;
          matmul_rows_isa(isa, a, 0, rows / 2);  // two row ranges: the second starts mid-matrix
          matmul_rows_isa(isa, a, rows / 2, rows);
          ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << isa << " " << tensor_type_name(type) << " rows " << rows << " cols " << tc.cols << " T " << T;
        }
      }
}

TEST(CpuMatmul, EncodedWeightArgumentsAreChecked) {
  const std::vector<float> x(64, 1.f), w(64, 1.f);
  const std::vector<uint8_t> enc = quantize(static_cast<uint32_t>(TensorType::Q4_1), w.data(), 64);
  std::vector<float> y(2);
  auto args = [&] {
    MatmulArgs a{x.data(), 1, nullptr, 1, 64, nullptr, y.data(), false};
    a.wq = enc.data();
    a.wq_type = static_cast<uint32_t>(TensorType::Q4_1);
    return a;
  };
  MatmulArgs both = args();
  both.w = w.data();
  EXPECT_THROW_MSG(matmul_rows(both, 0, 1), "w and wq are both set");
  MatmulArgs neither = args();
  neither.wq = nullptr;
  EXPECT_THROW_MSG(matmul_rows(neither, 0, 1), "w and wq are both null (rows = 1)");
  MatmulArgs type = args();
  type.wq_type = 7;
  EXPECT_THROW_MSG(matmul_rows(type, 0, 1), "wq_type = 7: not a supported tensor type");
  MatmulArgs cols = args();
  cols.cols = 48;
  EXPECT_THROW_MSG(matmul_rows(cols, 0, 1), "cols = 48: not a whole number of 32-element blocks");
  MatmulArgs stride = args();
  stride.w_stride = 128;
  EXPECT_THROW_MSG(matmul_rows_isa("generic", stride, 0, 1), "w_stride = 128: encoded weights (wq) must be packed");
  EXPECT_NO_THROW(matmul_rows(args(), 0, 1));
  EXPECT_FLOAT_EQ(y[0], 64.f);  // Q4_1 stores an all-ones block exactly (min 1, scale 0)
}

TEST(CpuMatmul, MatrixRowsDequantiseLikeTheWholeTensor) {
  auto rng = test::make_rng();
  const int rows = 5, cols = 256;
  const auto values = test::random_floats(rng, size_t(rows) * cols);
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.type = static_cast<uint32_t>(TensorType::Q4_K);
  m.data = quantize(m.type, values.data(), int64_t(values.size()));
  EXPECT_EQ(m.row_bytes(), 144u);
  const std::vector<float> all = m.to_f32();
  std::vector<float> two(2 * cols);
  m.dequantize_rows(3, 2, two.data());
  EXPECT_EQ(std::memcmp(two.data(), all.data() + 3 * cols, two.size() * sizeof(float)), 0);
  EXPECT_THROW_MSG(m.dequantize_rows(4, 2, two.data()), "rows [4, 6) of a 5-row matrix");
  const Matrix f = Matrix::from_f32(2, 3, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(f.to_f32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_THROW_MSG(Matrix::from_f32(2, 3, {1, 2}), "Matrix::from_f32: 2 values for [2, 3]");
}

TEST(CpuMatmul, WeightedRowSumsEqualTheScalarLoopBitForBit) {
  // Attention's value sum: out[d] += p[j] * v[j][d] in j order, vectorised over d; row widths
  // below, at and past the vector widths and the 4-vector register block, strided rows, and
  // two calls over consecutive j ranges (the CPU backend's contiguous run + scattered keys).
  auto rng = test::make_rng();
  for (int n : {1, 7, 16, 64, 100, 256})
    for (int count : {1, 3, 50}) {
      const long stride = n + 5;
      const auto p = test::random_floats(rng, count);
      const auto v = test::random_floats(rng, size_t(count) * stride);
      const auto out0 = test::random_floats(rng, n);
      std::vector<float> want = out0;
      for (int j = 0; j < count; ++j)
        for (int d = 0; d < n; ++d) {
          volatile float prod = p[j] * v[size_t(j) * stride + d];  // one rounding each: no contraction
          want[d] = want[d] + prod;
        }
      for (const char* isa : runnable_isas()) {
        std::vector<float> got = out0;
        const int first = count / 2;
        accumulate_weighted_rows_isa(isa, p.data(), first, v.data(), stride, n, got.data());
        accumulate_weighted_rows_isa(isa, p.data() + first, count - first, v.data() + size_t(first) * stride, stride, n,
                                     got.data());
        ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(float)), 0) << isa << " n " << n << " count " << count;
      }
    }
  float x = 0;
  EXPECT_THROW_MSG(accumulate_weighted_rows_isa("sse9", &x, 1, &x, 0, 1, &x), "accumulate_weighted_rows_isa: isa = sse9");
}

// Attention's softmax (softmax_rows): against an fp64 softmax of the same scaled scores, for
// row lengths below, at and past the vector widths, scores spread over 1 to 200 units (the
// smallest probabilities then underflow towards 1e-38, never to NaN); each row's bits are the
// same alone, among other rows, and at another offset in memory; a NaN poisons its row only.
TEST(CpuSoftmax, MatchesFp64ReferenceAndKeepsEachRowsBitsOnEveryIsa) {
  auto rng = test::make_rng();
  for (const char* isa : runnable_isas())
    for (int n : {1, 2, 7, 8, 9, 15, 16, 17, 33, 64, 100, 1000, 4097})
      for (float spread : {1.f, 20.f, 200.f}) {
        const int rows = 3;
        const long stride = n + 3;
        const float scale = 0.125f;
        const auto in = test::random_floats(rng, size_t(rows) * stride, -spread / scale, spread / scale);
        std::vector<float> got = in;
        softmax_rows_isa(isa, got.data(), rows, n, stride, scale);
        for (int r = 0; r < rows; ++r) {
          const float* x = &in[size_t(r) * stride];
          double m = -INFINITY, sum = 0, got_sum = 0;
          for (int j = 0; j < n; ++j) m = std::max(m, double(x[j] * scale));
          for (int j = 0; j < n; ++j) sum += std::exp(double(x[j] * scale) - m);
          for (int j = 0; j < n; ++j) {
            const double arg = double(x[j] * scale) - m;
            const double want = std::exp(arg) / sum, p = got[size_t(r) * stride + j];
            got_sum += p;
            // relative: a few ulp (exp, the sum, the reciprocal) plus the rounding of the fp32
            // argument x - max (an ulp of |arg| is an error of ~1.2e-7 |arg| in e^arg);
            // absolute: the underflow floor
            ASSERT_LE(std::abs(p - want), (1e-6 + 1.2e-7 * std::abs(arg)) * want + 2e-38)
                << isa << " n " << n << " spread " << spread << " j " << j;
          }
          ASSERT_NEAR(got_sum, 1.0, 2e-6) << isa << " n " << n;
          // the gap after the row (stride > n) is left alone
          for (long j = n; j < stride && size_t(r) * stride + j < got.size(); ++j)
            ASSERT_EQ(got[size_t(r) * stride + j], in[size_t(r) * stride + j]);
          // the same row alone, one float further on in memory: the same bits
          std::vector<float> alone(n + 1);
          std::copy_n(x, n, alone.begin() + 1);
          softmax_rows_isa(isa, alone.data() + 1, 1, n, 0, scale);
          ASSERT_EQ(std::memcmp(alone.data() + 1, &got[size_t(r) * stride], n * sizeof(float)), 0) << isa << " n " << n;
        }
      }
  for (const char* isa : runnable_isas()) {
    std::vector<float> s = {1, 2, NAN, 4, 5, 1, 2, 3, 4, 5};
    softmax_rows_isa(isa, s.data(), 2, 5, 5, 1.f);
    for (int j = 0; j < 5; ++j) EXPECT_TRUE(std::isnan(s[j])) << isa << " " << j;
    for (int j = 5; j < 10; ++j) EXPECT_TRUE(std::isfinite(s[j]) && s[j] > 0) << isa << " " << j;
    std::vector<float> equal(37, 3.5f);  // equal scores: 1 / n each
    softmax_rows_isa(isa, equal.data(), 1, 37, 0, 1.f);
    for (float p : equal) EXPECT_NEAR(p, 1.0 / 37, 1e-8) << isa;
  }
  float x = 0;
  EXPECT_THROW_MSG(softmax_rows_isa("sse9", &x, 1, 1, 0, 1.f), "softmax_rows_isa: isa = sse9: unknown");
}

// The MLP's gate (silu_mul): against fp64 g / (1 + e^-g) * u over g in [-100, 100] and every
// tail length; silu(0) = 0, large negative g gives (nearly) 0, NaN stays NaN.
TEST(CpuSoftmax, SiluMulMatchesFp64ReferenceOnEveryIsa) {
  auto rng = test::make_rng();
  for (const char* isa : runnable_isas())
    for (size_t n : {size_t(1), size_t(5), size_t(16), size_t(23), size_t(1536), size_t(4099)})
      for (float range : {4.f, 100.f}) {
        const auto g0 = test::random_floats(rng, n, -range, range), u = test::random_floats(rng, n, -3.f, 3.f);
        std::vector<float> g = g0;
        silu_mul_isa(isa, g.data(), u.data(), n);
        for (size_t i = 0; i < n; ++i) {
          const double want = double(g0[i]) / (1.0 + std::exp(-double(g0[i]))) * u[i];
          ASSERT_LE(std::abs(g[i] - want), 2e-6 * std::abs(want) + 1e-30) << isa << " g " << g0[i] << " u " << u[i];
        }
      }
  for (const char* isa : runnable_isas()) {
    std::vector<float> g = {0.f, -100.f, -1000.f, 90.f, NAN}, u = {5.f, 1.f, 1.f, 2.f, 1.f};
    silu_mul_isa(isa, g.data(), u.data(), g.size());
    EXPECT_EQ(g[0], 0.f) << isa;
    EXPECT_LE(std::abs(g[1]), 1e-30f) << isa;
    EXPECT_LE(std::abs(g[2]), 1e-30f) << isa;
    EXPECT_FLOAT_EQ(g[3], 180.f) << isa;
    EXPECT_TRUE(std::isnan(g[4])) << isa;
  }
  float x = 0;
  EXPECT_THROW_MSG(silu_mul_isa("sse9", &x, &x, 1), "silu_mul_isa: isa = sse9: unknown");
}

// Attention's scores over a tile-transposed key cache (key_scores): keys placed in tiles of
// kKeyTile as the header says, on every instruction set: against fp64 for head dims 16..256
// (one vector, several, a non-power of two), 1..25 query rows (every block shape and a second
// block of rows), ranges that start and end inside tiles and rows with their own limits. What
// is outside [k0, min(k1, limit)) stays untouched (the outputs are poisoned first). A score's
// bits are the same whichever rows and range compute it: alone, among other rows, split in two
// ranges, and one key at a time into another row (out_shift), as the CPU backend's batch
// invariance and its tree keys need.
TEST(CpuKeyScores, MatchFp64ReferenceAndKeepTheirBitsOnEveryIsa) {
  auto rng = test::make_rng();
  for (const char* isa : runnable_isas())
    for (int hd : {16, 64, 80, 128, 256})
      for (int rows : {1, 2, 3, 4, 5, 8, 9, 24, 25}) {
        const int keys = 3 * kKeyTile + 21;  // 3 whole tiles and a part
        const int tiles = (keys + kKeyTile - 1) / kKeyTile;
        const auto kv = test::random_floats(rng, size_t(keys) * hd);  // key j, dim d: kv[j * hd + d]
        std::vector<float> kt(size_t(tiles) * kKeyTile * hd, NAN);    // past the last key: NaN
        for (int j = 0; j < keys; ++j)
          for (int d = 0; d < hd; ++d) kt[size_t(j / kKeyTile) * kKeyTile * hd + size_t(d) * kKeyTile + j % kKeyTile] = kv[size_t(j) * hd + d];
        const auto qv = test::random_floats(rng, size_t(rows) * hd);
        std::vector<const float*> q(rows);
        std::vector<int> limit(rows);
        for (int r = 0; r < rows; ++r) q[r] = &qv[size_t(r) * hd], limit[r] = keys - (r * 7) % 40;
        const int k0 = 5, k1 = keys - 2;
        std::vector<float> out(size_t(rows) * keys, NAN);
        std::vector<float*> o(rows);
        for (int r = 0; r < rows; ++r) o[r] = &out[size_t(r) * keys];
        key_scores_isa(isa, {q.data(), o.data(), limit.data(), rows, kt.data(), hd, k0, k1, 0});
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < keys; ++j) {
            const float got = out[size_t(r) * keys + j];
            if (j < k0 || j >= std::min(k1, limit[r])) {
              ASSERT_TRUE(std::isnan(got)) << isa << " hd " << hd << " rows " << rows << " r " << r << " j " << j;
              continue;
            }
            double want = 0, mag = 0;
            for (int d = 0; d < hd; ++d) {
              want += double(qv[size_t(r) * hd + d]) * kv[size_t(j) * hd + d];
              mag += std::abs(double(qv[size_t(r) * hd + d]) * kv[size_t(j) * hd + d]);
            }
            ASSERT_LE(std::abs(got - want), 1.2e-7 * hd * mag) << isa << " hd " << hd << " rows " << rows << " j " << j;
          }
        // each row alone over two ranges split inside a tile, and key by key into another row
        for (int r = 0; r < rows; ++r) {
          const int end = std::min(k1, limit[r]), mid = (k0 + end) / 2 + 3;
          std::vector<float> alone(keys, NAN), single(keys + 9, NAN);
          float* a1 = alone.data();
          key_scores_isa(isa, {&q[r], &a1, nullptr, 1, kt.data(), hd, k0, mid, 0});
          key_scores_isa(isa, {&q[r], &a1, nullptr, 1, kt.data(), hd, mid, end, 0});
          ASSERT_EQ(std::memcmp(alone.data() + k0, &out[size_t(r) * keys + k0], (end - k0) * sizeof(float)), 0)
              << isa << " hd " << hd << " rows " << rows << " r " << r;
          float* s1 = single.data();
          for (int j = k0; j < end; j += 13) {
            key_scores_isa(isa, {&q[r], &s1, nullptr, 1, kt.data(), hd, j, j + 1, long(j) - (j + 9 - k0) % keys});
            ASSERT_EQ(std::memcmp(&single[(j + 9 - k0) % keys], &out[size_t(r) * keys + j], sizeof(float)), 0)
                << isa << " hd " << hd << " key " << j;
          }
        }
      }
  float x = 0;
  const float* xp = &x;
  float* yp = &x;
  EXPECT_THROW_MSG(key_scores_isa("sse9", {&xp, &yp, nullptr, 1, &x, 1, 0, 1, 0}), "key_scores_isa: isa = sse9: unknown");
}

TEST(CpuMatmul, UnknownOrUnsupportedIsaIsRejectedByName) {
  float x = 1, w = 1, y = 0;
  const MatmulArgs a{&x, 1, &w, 1, 1, nullptr, &y, false};
  EXPECT_THROW_MSG(matmul_rows_isa("sse9", a, 0, 1), "isa = sse9: unknown");
  for (const char* isa : {"avx512", "avx2"})
    if (!matmul_isa_supported(isa)) EXPECT_THROW_MSG(matmul_rows_isa(isa, a, 0, 1), "not supported");
}

}  // namespace

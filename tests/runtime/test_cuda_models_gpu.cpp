// CUDA backend on larger shapes (skipped without a usable GPU): random-weight models generated on
// the device (deterministic for a seed; the Llama-2-7B shape with 2 layers runs and stays
// finite), and SmolLM2-135M against the CPU backend when models/ has it (skipped otherwise).
#include <cmath>

#include "tests/runtime/cuda_vs_cpu.h"

using namespace spw;
using namespace spw::rt;

namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.name = "small random";
  c.vocab_size = 1000;
  c.hidden = 512;
  c.intermediate = 1024;
  c.num_layers = 3;
  c.num_heads = 8;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_context = 1024;
  c.attention_bias = true;  // zero biases: the bias epilogue runs
  return c;
}

std::vector<float> run(Model& m, const std::vector<int32_t>& prompt, int steps) {
  const int s = m.create_sequence();
  std::vector<float> logits, all;
  m.forward(std::vector<SeqInput>{{s, prompt, {}}}, logits);
  all = logits;
  const int V = m.config().vocab_size;
  for (int i = 0; i < steps; ++i) {
    const int32_t next = test::argmax(logits.data() + logits.size() - V, V);
    m.forward(std::vector<SeqInput>{{s, std::span(&next, 1), {}}}, logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  m.free_sequence(s);
  return all;
}

size_t non_finite(const std::vector<float>& v) {
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); }));
}

TEST(CudaRandomModel, DeterministicForASeed) {
  SPW_REQUIRE_GPU();
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 999, 0, 17, 33, 64, 128, 256, 512};
  for (DType dt : {DType::f16, DType::bf16}) {
    auto a = make_cuda_model_random(small_config(), 5, {.dtype = dt});
    auto b = make_cuda_model_random(small_config(), 5, {.dtype = dt});
    auto c = make_cuda_model_random(small_config(), 6, {.dtype = dt});
    EXPECT_EQ(a->backend_name(), "cuda");
    EXPECT_EQ(a->config().hidden, 512);
    const auto la = run(*a, prompt, 8), lb = run(*b, prompt, 8), lc = run(*c, prompt, 8);
    EXPECT_EQ(non_finite(la), 0u);
    EXPECT_EQ(la, lb) << "same seed, same shape: bitwise identical logits";
    EXPECT_NE(la, lc) << "another seed gives other weights";
    EXPECT_EQ(run(*a, prompt, 8), la) << "a rerun on a fresh sequence of the same model is identical";
  }
}

TEST(CudaRandomModel, Llama2ShapeTwoLayersRuns) {
  SPW_REQUIRE_GPU();
  SPW_SKIP_ON_SIMULATOR("a 100-token prefill through 1.2 GB of Llama-2-7B-shaped weights takes hours there");
  ModelConfig c = llama2_7b_config();
  c.num_layers = 2;  // the full shape of every product, 2 of 32 layers (about 1.2 GB of fp16 weights)
  auto m = make_cuda_model_random(c, 1, {.kv_cache_bytes = 256LL << 20});
  std::vector<int32_t> prompt(100);
  for (int i = 0; i < 100; ++i) prompt[i] = (i * 977 + 1) % 32000;
  // Batch 2: a 100-token prefill (cuBLASLt for the 100-row products) beside a short one, then
  // decode steps (GEMV), then an 8-token chain (tensor-core flat GEMM).
  const int a = m->create_sequence(), b = m->create_sequence();
  std::vector<float> logits;
  const std::vector<int32_t> shortp = {3, 4, 5};
  m->forward(std::vector<SeqInput>{{a, prompt, {}}, {b, shortp, {}}}, logits);
  ASSERT_EQ(logits.size(), 103u * 32000);
  EXPECT_EQ(non_finite(logits), 0u);
  const std::vector<float> first_b(logits.end() - 3 * 32000, logits.end());
  for (int step = 0; step < 4; ++step) {
    const int32_t ta = 11 + step, tb = 22 + step;
    m->forward(std::vector<SeqInput>{{a, std::span(&ta, 1), {}}, {b, std::span(&tb, 1), {}}}, logits);
    EXPECT_EQ(non_finite(logits), 0u);
  }
  const std::vector<int32_t> chain = {7, 8, 9, 10, 11, 12, 13, 14};
  m->forward(std::vector<SeqInput>{{a, chain, {}}}, logits);
  EXPECT_EQ(non_finite(logits), 0u);
  // The same 3 tokens alone on a new sequence: the same logits as inside the batch.
  const int d = m->create_sequence();
  m->forward(std::vector<SeqInput>{{d, shortp, {}}}, logits);
  EXPECT_TRUE(test::close_to(logits, std::vector<double>(first_b.begin(), first_b.end()),
                             test::model_tolerance(DType::f16)));
}

// The default model, fp16: the fluent continuation of the CPU backend's test, and 16 further
// greedy steps teacher-forced with the CPU's tokens (same token or a near tie).
TEST(CudaSmolLM2, MatchesCpuBackend) {
  SPW_REQUIRE_GPU();
  SPW_SKIP_ON_SIMULATOR("SmolLM2's 135M parameters per step take tens of minutes there");
  const std::string model = std::string(SPW_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " is absent (tools/fetch_model.sh fetches it)";
  EXPECT_EQ(read_llama_config(GgufFile::open(model)).head_dim, 64);
  test::Both m{load_model(model, {.max_tokens = 256}), load_model(model, {.backend = "cuda", .max_tokens = 256})};
  const test::Tolerance tol{3e-2, 3e-2};
  const int V = m.vocab(), s = m.create();
  std::vector<int32_t> ids = {504, 3575, 282, 4649, 314};  // "The capital of France is"
  std::vector<int32_t> generated;
  int near_ties = 0;
  for (int step = 0; step < 19; ++step) {
    m.forward({{s, ids, {}}});
    ASSERT_TRUE(m.rows_close(tol)) << "step " << step;
    const float* c = m.lc.data() + m.lc.size() - V;
    ASSERT_TRUE(test::same_greedy(c, m.lg.data() + m.lg.size() - V, V, tol, &near_ties)) << "step " << step;
    generated.push_back(test::argmax(c, V));
    ids = {generated.back()};
  }
  EXPECT_EQ(std::vector<int32_t>(generated.begin(), generated.begin() + 3), (std::vector<int32_t>{7042, 30, 198}));
  std::printf("SmolLM2: %d near ties in 19 greedy steps\n", near_ties);
}

}  // namespace

// Shared by the CUDA-backend GPU tests: tiny head_dim-64 random models (the attention kernels
// need head_dim 64/128/256, the default tiny model has 16), a CPU and a CUDA model driven
// through the same calls, and the comparisons with their per-dtype tolerances.
//
// Tolerances: sized with a NumPy emulation of the CUDA backend's rounding points (weights,
// RMSNorm outputs, Q|K|V, RoPE, attention output, residual stream and SwiGLU output stored in
// fp16/bf16, fp32 math) against fp64 on these tiny models (worst row over 300 positions:
// fp16 rel_l2 1.2e-3, max_abs 1.5e-3 of max|logit|; bf16 9.4e-3 and 1.3e-2) with ~4x margin.
// SmolLM2-135M (30 layers, fp16): rel_l2 8.3e-3, max_abs 5.4e-3.
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cuda_backend.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/model_loader.h"
#include "tests/common/helpers.h"

namespace spw::test {

inline Tolerance model_tolerance(DType dt) { return dt == DType::f16 ? Tolerance{5e-3, 8e-3} : Tolerance{3e-2, 5e-2}; }

/// The tiny models of the GPU tests, written once per test binary run.
struct TinyModels {
  std::filesystem::path dir;
  std::string tied, untied, qwen2;  // llama tied lm_head, llama untied, qwen2 (biases, NeoX RoPE) untied
  TinyModels() {
    dir = std::filesystem::temp_directory_path() / ("spw_cuda_backend_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    rt::TinyLlamaSpec s;
    s.hidden = 256;  // 4 heads x 64, 2 KV heads (GQA group 2)
    s.intermediate = 512;
    s.context = 512;
    tied = (dir / "tied.gguf").string();
    rt::write_tiny_llama(tied, s);
    s.tied = false;
    s.seed = 2;
    untied = (dir / "untied.gguf").string();
    rt::write_tiny_llama(untied, s);
    s.arch = "qwen2";
    s.seed = 3;
    qwen2 = (dir / "qwen2.gguf").string();
    rt::write_tiny_llama(qwen2, s);
  }
  ~TinyModels() { std::filesystem::remove_all(dir); }
};

/// The CUDA model of a GGUF file with explicit options (debug page-table checks on).
inline std::unique_ptr<rt::Model> cuda_model(const std::string& path, rt::CudaBackendOptions o) {
  o.debug_checks = true;
  return rt::make_cuda_model(rt::load_llama_weights(rt::GgufFile::open(path)), o);
}

inline std::vector<double> as_double(const float* p, size_t n) { return {p, p + n}; }

/// A CPU and a CUDA model receiving the same calls; the last logits of each.
struct Both {
  Both(std::unique_ptr<rt::Model> c, std::unique_ptr<rt::Model> g) : cpu(std::move(c)), gpu(std::move(g)) {}
  std::unique_ptr<rt::Model> cpu, gpu;
  std::vector<float> lc, lg;
  int vocab() const { return cpu->config().vocab_size; }

  int create() {
    const int a = cpu->create_sequence(), b = gpu->create_sequence();
    EXPECT_EQ(a, b) << "both backends hand out ids the same way";
    return a;
  }
  void forward(const std::vector<rt::SeqInput>& batch) {
    cpu->forward(batch, lc);
    gpu->forward(batch, lg);
    ASSERT_EQ(lc.size(), lg.size());
  }
  void rollback(int s, int n) {
    cpu->rollback(s, n);
    gpu->rollback(s, n);
  }
  void keep(int s, int base, const std::vector<int32_t>& offsets) {
    cpu->keep_tokens(s, base, offsets);
    gpu->keep_tokens(s, base, offsets);
  }
  void free(int s) {
    cpu->free_sequence(s);
    gpu->free_sequence(s);
  }
  void expect_same_lengths(std::initializer_list<int> seqs) {
    for (int s : seqs) EXPECT_EQ(gpu->cached_tokens(s), cpu->cached_tokens(s)) << "seq " << s;
  }
  /// Every row of the last logits within `tol` of the CPU's.
  ::testing::AssertionResult rows_close(Tolerance tol) const {
    const size_t V = cpu->config().vocab_size;
    for (size_t r = 0; r * V < lc.size(); ++r) {
      std::vector<float> g(lg.begin() + r * V, lg.begin() + (r + 1) * V);
      auto res = close_to(g, as_double(lc.data() + r * V, V), tol);
      if (!res) return ::testing::AssertionFailure() << "row " << r << ": " << res.message();
    }
    return ::testing::AssertionSuccess();
  }
};

/// Row argmax (lowest index on ties, like small_ops::argmax and the decoders).
inline int32_t argmax(const float* row, int vocab) {
  return static_cast<int32_t>(std::max_element(row, row + vocab) - row);
}

/// The greedy choices agree: the same token, or a near tie on the CPU side (the CPU logits of
/// both choices closer than twice the allowed error), which `near_ties` counts.
inline ::testing::AssertionResult same_greedy(const float* cpu_row, const float* gpu_row, int vocab, Tolerance tol,
                                              int* near_ties) {
  const int32_t c = argmax(cpu_row, vocab), g = argmax(gpu_row, vocab);
  if (c == g) return ::testing::AssertionSuccess();
  float ref_max = 0;
  for (int i = 0; i < vocab; ++i) ref_max = std::max(ref_max, std::fabs(cpu_row[i]));
  const double gap = cpu_row[c] - cpu_row[g], limit = 2 * tol.max_abs * std::max(1.f, ref_max);
  if (gap <= limit) {
    ++*near_ties;
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "greedy token cpu " << c << " vs cuda " << g << ", cpu logit gap " << gap
                                       << " > " << limit;
}

}  // namespace spw::test

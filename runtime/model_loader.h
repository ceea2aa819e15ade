// load_model: a GGUF file to a ready Model on the chosen backend.
#pragma once

#include <memory>
#include <string>

#include "kernels/common/dtype.h"
#include "runtime/model.h"

namespace spw::rt {

struct LoadOptions {
  std::string backend = "cpu";  // "cpu" (fp32 reference) or "cuda" (runtime/cuda_backend.h)
  int max_layers = -1;          // only the first L layers (+ final norm + lm_head): self-speculative drafter
  int max_tokens = 0;           // per-sequence context limit; 0: the model's context length
  int threads = 0;              // CPU threads; 0: all
  int device = 0;               // cuda: device ordinal
  DType dtype = DType::f16;     // cuda: weights / activations / KV cache (f16 or bf16)
  int cuda_graph_tokens = 128;  // cuda: passes of at most this many tokens run as CUDA graphs
                                // (CudaBackendOptions::cuda_graph_tokens); 0: none
  bool batch_invariant = false; // cuda: logits bitwise independent of the pass a token is in
                                // (CudaBackendOptions::batch_invariant); the CPU backend always is
};

/// Loads `path` (GGUF) and returns the model; throws spw::Error naming what is wrong
/// (including, for backend "cuda", why no GPU can be used).
std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options = {});

}  // namespace spw::rt

#include "kernels/common/families.h"

namespace spw {

const std::vector<KernelFamily>& kernel_families() {
  static const std::vector<KernelFamily> families = {
      {"decode_attention", "split-KV (Flash-Decoding) paged decode attention + LSE merge"},
      {"flat_gemm", "skinny GEMM Y = X W^T for M = 1..64, double-buffered, heuristic dispatch"},
      {"tree_attention", "attention of a token tree over a shared prefix (speculative verification)"},
      {"sgmv", "batched multi-LoRA shrink/expand over segments (Punica semantics)"},
      {"small_ops", "RMSNorm, RoPE, SwiGLU, argmax/sampling for the CUDA backend"},
  };
  return families;
}

bool built_with_cuda() { return SPW_HAVE_CUDA != 0; }

}  // namespace spw

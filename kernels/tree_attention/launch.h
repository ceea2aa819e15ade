// Internal: the kernel parameters run() (tree_attention.cu) fills once for either kernel, and
// the launcher of the mma kernel (tree_attention_mma.cu). CUDA translation units only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/tree_attention/tree_attention.h"

namespace spw::tree_attention::detail {

struct KernelParams {
  const void *q, *k_tree, *v_tree, *k_pages, *v_pages;
  const int32_t *indptr, *indices;
  const int32_t *tree_indptr, *prefix_lens;  // workspace copies of the plan's metadata
  const AncestorMask* masks;
  float* partial_o;    // [num_states, total_rows, head_dim]
  float* partial_lse;  // [num_states, total_rows]
  int qo_heads, kv_heads, page_size, chunk, num_states, total_rows;
  int batch_heads, rows_per_cta, row_blocks;  // mma launch shape (Plan)
  float sm_scale, scale_log2, soft_cap;       // scale_log2 = sm_scale * log2(e)
};

/// Partial states of every (prefix chunk | tree part) with the tensor-core kernel.
void launch_mma(const Plan& plan, const KernelParams& params, cudaStream_t stream);

}  // namespace spw::tree_attention::detail

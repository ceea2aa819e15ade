/* Tree attention C ABI: thin wrappers over kernels/tree_attention/tree_attention.h (semantics,
 * layouts and the 128-token limit there). Every function returns SPW_OK or an error status;
 * spw_last_error() gives the message.
 * spw_tree_attention_run launches the kernel the plan chose (tensor-core mma unless the options
 * of spw_tree_attention_plan_ex ask for v0). The handle owns the host metadata every run (and
 * every captured graph) copies: destroy it after those are done. */
#ifndef SPILLWAY_TREE_ATTENTION_C_API_H
#define SPILLWAY_TREE_ATTENTION_C_API_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/common/c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spw_tree_attention_problem {
  int batch, qo_heads, kv_heads, head_dim; /* head_dim 64, 128 or 256 */
  int dtype;                               /* SPW_FP16 or SPW_BF16 */
  int page_size;
  float sm_scale; /* 0 = 1/sqrt(head_dim) */
  float soft_cap; /* 0 = off */
} spw_tree_attention_problem;

typedef struct spw_tree_attention_handle spw_tree_attention_handle;

/* Kernel choice and tuning overrides (tree_attention::Problem::impl / chunk_tokens /
 * max_rows_per_cta); all zeros = what spw_tree_attention_plan does. */
enum { SPW_TREE_ATTENTION_AUTO = 0, SPW_TREE_ATTENTION_V0 = 1, SPW_TREE_ATTENTION_MMA = 2 };
typedef struct spw_tree_attention_options {
  int impl;             /* SPW_TREE_ATTENTION_AUTO (= MMA), _V0 or _MMA */
  int chunk_tokens;     /* prefix tokens per partial state; 0 = planner's choice, else >= 16 */
  int max_rows_per_cta; /* mma: 0 = kernel limit, else a multiple of 16 */
} spw_tree_attention_options;

/* What a plan chose (for benchmarks' records). */
typedef struct spw_tree_attention_plan_info {
  int impl;                /* SPW_TREE_ATTENTION_V0 or _MMA */
  int prefix_chunk_tokens; /* 0 = no prefix */
  int num_states;          /* partial states per row: prefix chunks + 1 */
  int rows_per_cta, row_blocks, warps, smem_bytes;
} spw_tree_attention_plan_info;

/* Host arrays: prefix_lens [batch], tree_sizes [batch], parents [sum tree_sizes] (request-local,
 * -1 = child of the prefix). sm_count <= 0: query CUDA device 0. */
int spw_tree_attention_plan(const spw_tree_attention_problem* problem, const int32_t* prefix_lens,
                            const int32_t* tree_sizes, const int32_t* parents, int sm_count,
                            spw_tree_attention_handle** out);
/* Same with options (NULL = defaults). */
int spw_tree_attention_plan_ex(const spw_tree_attention_problem* problem, const int32_t* prefix_lens,
                               const int32_t* tree_sizes, const int32_t* parents, int sm_count,
                               const spw_tree_attention_options* options, spw_tree_attention_handle** out);
/* Same, with the metadata carved from `arena` (NULL = a fresh pinned block; see spw_plan_arena). */
int spw_tree_attention_plan_in_arena(const spw_tree_attention_problem* problem, const int32_t* prefix_lens,
                                     const int32_t* tree_sizes, const int32_t* parents, int sm_count,
                                     const spw_tree_attention_options* options, spw_plan_arena* arena,
                                     spw_tree_attention_handle** out);
/* What the plan chose, into *out. */
int spw_tree_attention_plan_info_get(const spw_tree_attention_handle* plan, spw_tree_attention_plan_info* out);
/* Device workspace bytes that spw_tree_attention_run needs for this plan (into *out). */
int spw_tree_attention_workspace_size(const spw_tree_attention_handle* plan, size_t* out);
/* Position ids (prefix_len + depth) per tree token, written to positions [total_tokens]. */
int spw_tree_attention_positions(const spw_tree_attention_handle* plan, int32_t* positions, size_t capacity);
/* O [total_tokens, qo_heads, head_dim] and LSE (may be NULL) of every tree token: q, k_tree and
 * v_tree hold the tree tokens (request after request), k_pages / v_pages with indptr / indices /
 * last_page_len the paged prefix (device pointers; unused where every prefix is empty). stream
 * is a cudaStream_t. No allocation, no sync, graph-capturable. */
int spw_tree_attention_run(const spw_tree_attention_handle* plan, const void* q, const void* k_tree,
                           const void* v_tree, const void* k_pages, const void* v_pages, const int32_t* indptr,
                           const int32_t* indices, const int32_t* last_page_len, void* o, float* lse,
                           void* workspace, size_t workspace_bytes, void* stream);
/* Frees the plan (NULL is a no-op); no run or graph that copies its metadata may still be pending. */
void spw_tree_attention_destroy(spw_tree_attention_handle* plan);

#ifdef __cplusplus
}
#endif
#endif /* SPILLWAY_TREE_ATTENTION_C_API_H */

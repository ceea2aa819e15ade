/* Decode attention (split-KV, paged or contiguous KV) C ABI: thin wrappers over
 * kernels/decode_attention/decode_attention.h (semantics and layouts there).
 * Every function returns SPW_OK or an error status; spw_last_error() gives the message.
 * The plan handle owns the host copy of the work list that every run (and every CUDA graph
 * that captured a run) copies into the workspace: destroy it only after those are done. */
#ifndef SPILLWAY_DECODE_ATTENTION_C_API_H
#define SPILLWAY_DECODE_ATTENTION_C_API_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/common/c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct spw_decode_attention_problem {
  int batch, qo_heads, kv_heads, head_dim; /* head_dim 64, 128 or 256 */
  int dtype;                               /* spw_dtype: SPW_FP16 or SPW_BF16 */
  int layout;                              /* 0 paged, 1 contiguous */
  int page_size;                           /* paged */
  int kv_len_max;                          /* contiguous */
  float sm_scale;                          /* 0 = 1/sqrt(head_dim) */
  float soft_cap;                          /* 0 = off */
  int disable_split;                       /* 1: one chunk per request */
  int fixed_chunk_tokens;                  /* > 0: batch-invariant split at multiples of it (of 64) */
} spw_decode_attention_problem;

typedef struct spw_decode_attention_handle spw_decode_attention_handle;

/* Plans from the host copy of kv_lens [batch]. sm_count <= 0: query CUDA device 0. */
int spw_decode_attention_plan(const spw_decode_attention_problem* problem, const int32_t* kv_lens, int sm_count,
                              spw_decode_attention_handle** out);
/* Same, with the work list carved from `arena` (NULL = a fresh pinned block, as above). */
int spw_decode_attention_plan_in_arena(const spw_decode_attention_problem* problem, const int32_t* kv_lens,
                                       int sm_count, spw_plan_arena* arena, spw_decode_attention_handle** out);
/* Same, where extends_previous (host, [batch], NULL = none) flags the requests whose KV is the
 * previous request's plus one row in the same pages (decode_attention.h: plan): their CTAs share
 * KV reads, with the same output bits. */
int spw_decode_attention_plan_shared(const spw_decode_attention_problem* problem, const int32_t* kv_lens,
                                     const uint8_t* extends_previous, int sm_count, spw_plan_arena* arena,
                                     spw_decode_attention_handle** out);
/* Device workspace bytes that spw_decode_attention_run needs for this plan (into *out). */
int spw_decode_attention_workspace_size(const spw_decode_attention_handle* plan, size_t* out);
/* Paged: k/v are k_pages/v_pages and indptr/indices/last_page_len the device page table;
 * contiguous: k/v are [batch, kv_len_max, kv_heads, head_dim] and the table pointers are unused.
 * lse may be NULL. stream is a cudaStream_t. */
int spw_decode_attention_run(const spw_decode_attention_handle* plan, const void* q, const void* k, const void* v,
                             const int32_t* indptr, const int32_t* indices, const int32_t* last_page_len, void* o,
                             float* lse, void* workspace, size_t workspace_bytes, void* stream);
/* Frees the plan (NULL is a no-op); no run or graph that copies its work list may still be pending. */
void spw_decode_attention_destroy(spw_decode_attention_handle* plan);

#ifdef __cplusplus
}
#endif
#endif /* SPILLWAY_DECODE_ATTENTION_C_API_H */

/* SGMV (batched multi-LoRA) C ABI: thin wrappers over kernels/sgmv/sgmv.h (layouts there).
 * Every function returns SPW_OK or an error status; spw_last_error() gives the message. */
#ifndef SPILLWAY_SGMV_C_API_H
#define SPILLWAY_SGMV_C_API_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/common/c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPW_SGMV_MAX_SLICES 4

typedef struct spw_sgmv_problem {
  int dtype; /* spw_dtype: SPW_FP16 or SPW_BF16 */
  int tokens, segments, num_adapters, hidden, rank_max, num_slices;
  int slice_out_offset[SPW_SGMV_MAX_SLICES];
  int slice_out_size[SPW_SGMV_MAX_SLICES];
  int y_cols;
  long long x_stride, y_stride; /* elements, 0 = packed */
  int path; /* 0 automatic, 1 gemv (decode), 2 tiled (CUDA cores), 3 tensor cores */
} spw_sgmv_problem;

typedef struct spw_sgmv_plan spw_sgmv_plan;

/* Plans from host copies of seg_starts [segments+1], adapter_ids [segments], ranks
 * [num_adapters]. sm_count <= 0: query CUDA device 0. */
int spw_sgmv_plan_create(const spw_sgmv_problem* problem, const int32_t* seg_starts, const int32_t* adapter_ids,
                         const int32_t* ranks, int sm_count, spw_sgmv_plan** out);
/* Device workspace bytes that shrink / apply need for this plan (into *out). */
int spw_sgmv_plan_workspace_bytes(const spw_sgmv_plan* plan, size_t* out);
/* Frees the plan (NULL is a no-op); no run or graph that copies its metadata may still be pending. */
void spw_sgmv_plan_destroy(spw_sgmv_plan* plan);

/* v = x · A^T (fp32). Exactly one of a_ptrs (device array of device pointers) and a_stacked. */
int spw_sgmv_shrink(const spw_sgmv_plan* plan, const int32_t* seg_starts, const int32_t* adapter_ids,
                    const int32_t* ranks, const void* x, const void* const* a_ptrs, const void* a_stacked, float* v,
                    void* workspace, size_t workspace_bytes, void* stream);

/* y += scale · adapter_scales[a] · v · B (adapter_scales may be NULL). */
int spw_sgmv_expand(const spw_sgmv_plan* plan, const int32_t* seg_starts, const int32_t* adapter_ids,
                    const int32_t* ranks, const float* v, const void* const* b_ptrs, const void* b_stacked, void* y,
                    float scale, const float* adapter_scales, void* stream);

/* shrink then expand (y += scale · adapter_scales[a] · (x · A^T) · B, v is the fp32 scratch
 * [tokens, slices, rank_max]); on sm_90 expand overlaps shrink's tail (programmatic launch). */
int spw_sgmv_apply(const spw_sgmv_plan* plan, const int32_t* seg_starts, const int32_t* adapter_ids,
                   const int32_t* ranks, const void* x, const void* const* a_ptrs, const void* a_stacked, float* v,
                   const void* const* b_ptrs, const void* b_stacked, void* y, float scale,
                   const float* adapter_scales, void* workspace, size_t workspace_bytes, void* stream);

/* BENCHMARK BASELINE ONLY (not part of the SGMV API): cublasGemmGroupedBatchedEx with one
 * group per problem, row-major C[m,n] = alpha · A[m,k] · op(B) + beta · C, op(B) = B^T when
 * trans_b (B stored [n,k]) else B (stored [k,n]). a/b/c are DEVICE arrays of device pointers;
 * m, n, k, lda, ldb, ldc are host arrays of `count`. A, B dtype = dtype; C is fp32 when
 * c_fp32 else dtype; fp32 accumulation. Uses one cuBLAS handle per thread. */
int spw_sgmv_baseline_cublas_grouped(int dtype, int count, const int* m, const int* n, const int* k,
                                     const void* const* a, const int* lda, const void* const* b, const int* ldb,
                                     int trans_b, void* const* c, const int* ldc, int c_fp32, float alpha,
                                     float beta, void* stream);

#ifdef __cplusplus
}
#endif
#endif /* SPILLWAY_SGMV_C_API_H */

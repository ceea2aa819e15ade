/* Flat GEMM C ABI: thin wrappers over kernels/flat_gemm/flat_gemm.h (semantics, layouts and
 * epilogue order there): Y[M, N_out] = epilogue(X[M, K] · W[N, K]^T).
 * Every function returns SPW_OK or an error status; spw_last_error() gives the message. */
#ifndef SPILLWAY_FLAT_GEMM_C_API_H
#define SPILLWAY_FLAT_GEMM_C_API_H

#include <stddef.h>

#include "kernels/common/c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* impl values */
#define SPW_FLAT_GEMM_AUTO 0
#define SPW_FLAT_GEMM_GEMV 1
#define SPW_FLAT_GEMM_MMA 2
#define SPW_FLAT_GEMM_CUBLASLT 3

typedef struct spw_flat_gemm_problem {
  int dtype;        /* spw_dtype: SPW_FP16 or SPW_BF16 (X, W, bias) */
  int out_dtype;    /* dtype or SPW_FP32 (Y, residual) */
  int m, n, k;      /* n = weight rows (gate + up rows with swiglu) */
  int has_bias, has_residual, swiglu; /* 0 / 1 */
  int impl;         /* SPW_FLAT_GEMM_*: 0 = dispatcher; others force the impl (tests, autotune, baselines) */
  int split_k;      /* 0 = dispatcher, 1..16 forces the mma impl with that split (gemv and
                       cublaslt accept only 1: no split) */
  int cublaslt_algo; /* cuBLASLt impl: index in its heuristic list (0 = top; 0..7) */
  int batch_invariant; /* 1: rows bitwise independent of m (mma impl, split from n and k, 64-row slices) */
} spw_flat_gemm_problem;

typedef struct spw_flat_gemm_plan spw_flat_gemm_plan;

/* Plans for CUDA device 0 (its name selects the dispatch-table rows) when sm_count <= 0,
 * else for a made-up device with sm_count SMs (rules only). */
int spw_flat_gemm_plan_create(const spw_flat_gemm_problem* problem, int sm_count, spw_flat_gemm_plan** out);
/* What the plan chose; any output pointer may be NULL. */
int spw_flat_gemm_plan_info(const spw_flat_gemm_plan* plan, int* impl, int* split_k, int* from_table,
                            size_t* workspace_bytes);
/* Frees the plan (NULL is a no-op). */
void spw_flat_gemm_plan_destroy(spw_flat_gemm_plan* plan);

/* Launches on `stream` (cudaStream_t): no allocation, no sync, graph-capturable.
 * bias / residual: NULL unless the problem enables them. cublaslt_handle: a cublasLtHandle_t
 * from spw_flat_gemm_cublaslt_create (or the caller's own), required when the plan's impl is
 * cuBLASLt, else may be NULL. */
int spw_flat_gemm_run(const spw_flat_gemm_plan* plan, const void* x, const void* w, const void* bias,
                      const void* residual, void* y, void* workspace, size_t workspace_bytes, void* cublaslt_handle,
                      void* stream);

/* A cuBLASLt handle for the cuBLASLt impl (created once by the caller, never inside run). */
int spw_flat_gemm_cublaslt_create(void** handle);
/* Destroys a handle from spw_flat_gemm_cublaslt_create (NULL is a no-op). */
int spw_flat_gemm_cublaslt_destroy(void* handle);

#ifdef __cplusplus
}
#endif
#endif /* SPILLWAY_FLAT_GEMM_C_API_H */

// Checked cuBLAS / cuBLASLt calls (see cuda_check.h for the CUDA runtime twin).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/common/error.h"

namespace spw::detail {
[[noreturn]] inline void cublas_fail(cublasStatus_t st, const char* call, const char* file, int line) {
  fail("cuBLAS error {} ({}) in `{}` at {}:{}", cublasGetStatusName(st), cublasGetStatusString(st),
       call, file, line);
}
}  // namespace spw::detail

/// Evaluates a cublasStatus_t expression and throws spw::Error unless CUBLAS_STATUS_SUCCESS.
#define SPW_CUBLAS_CHECK(call)                                                         \
  do {                                                                                 \
    cublasStatus_t spw_st_ = (call);                                                   \
    if (spw_st_ != CUBLAS_STATUS_SUCCESS)                                              \
      ::spw::detail::cublas_fail(spw_st_, #call, __FILE__, __LINE__);                  \
  } while (0)

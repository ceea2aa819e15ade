// Checked CUDA runtime / cuBLAS calls: a failure throws spw::Error naming the call, the
// error string, the file and the line. Include only from CUDA-enabled translation units.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/error.h"

namespace spw::detail {
[[noreturn]] inline void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
  fail("CUDA error {} ({}) in `{}` at {}:{}", cudaGetErrorName(err), cudaGetErrorString(err), call,
       file, line);
}
}  // namespace spw::detail

/// Evaluates a cudaError_t expression and throws spw::Error if it is not cudaSuccess.
#define SPW_CUDA_CHECK(call)                                                      \
  do {                                                                            \
    cudaError_t spw_err_ = (call);                                                \
    if (spw_err_ != cudaSuccess) ::spw::detail::cuda_fail(spw_err_, #call, __FILE__, __LINE__); \
  } while (0)

/// Checks the launch that just happened (configuration errors surface here, not later).
#define SPW_CUDA_CHECK_LAUNCH() SPW_CUDA_CHECK(cudaGetLastError())

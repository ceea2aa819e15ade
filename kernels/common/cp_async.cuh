// Asynchronous global -> shared copies (cp.async, sm_80+): the multi-stage pipelines of the
// attention and GEMM kernels keep several 16-byte tiles in flight with these.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/platform.h"

namespace spw {

/// Copies 16 bytes gmem -> smem without passing through registers; when !valid the 16 shared
/// bytes are zero-filled instead (out-of-range rows of a tile).
__device__ SPW_FORCEINLINE void cp_async16(void* smem, const void* gmem, bool valid) {
#if defined(SPW_SIM)
  ::spw::sim::cp_async_issue(smem, gmem, valid);
#else
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
#endif
}
/// Closes the group of copies issued since the last commit.
__device__ SPW_FORCEINLINE void cp_async_commit() {
#if defined(SPW_SIM)
  ::spw::sim::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
/// Waits until at most N committed groups are still in flight.
template <int N>
__device__ SPW_FORCEINLINE void cp_async_wait() {
#if defined(SPW_SIM)
  ::spw::sim::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace spw

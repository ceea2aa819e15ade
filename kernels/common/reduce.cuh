// Warp and block reductions (device only). The host side of the same math is a plain loop:
// reductions reorder additions, so tests compare against fp64 with a tolerance.
#pragma once

#include <cuda_runtime.h>

#include "kernels/common/platform.h"

namespace spw {

inline constexpr int kWarpSize = 32;

/// Sum over the `width` lanes of a (sub)warp; every lane gets the result.
template <int width = kWarpSize>
__device__ SPW_FORCEINLINE float warp_reduce_sum(float v) {
SPW_UNROLL
  for (int offset = width / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// Max over the `width` lanes of a (sub)warp; every lane gets the result.
template <int width = kWarpSize>
__device__ SPW_FORCEINLINE float warp_reduce_max(float v) {
SPW_UNROLL
  for (int offset = width / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

/// Block-wide sum; every thread gets the result. `scratch` holds >= 32 floats of shared
/// memory. blockDim.x must be a multiple of 32. Contains __syncthreads: call from all threads.
__device__ SPW_FORCEINLINE float block_reduce_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_reduce_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_reduce_sum(v);
}

/// Block-wide max; same contract as block_reduce_sum.
__device__ SPW_FORCEINLINE float block_reduce_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  v = warp_reduce_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_reduce_max(v);
}

}  // namespace spw

// Tensor-core fragment helpers of the tree-attention mma kernel (sm_80+): the ldmatrix and
// mma.sync m16n8k16 instructions of kernels/common/mma.cuh (fragment layouts there), and the
// fp32 -> 16-bit packing that turns a score accumulator into an A operand.
//
// The accumulators of two adjacent n8 score tiles are exactly the A operand of a k16 step
// over those 16 keys (FlashAttention-2's register reuse): pack_a().
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/common/mma.cuh"
#include "kernels/common/platform.h"

namespace spw::tree_attention::mma {

using ::spw::mma::ldmatrix_x4;
using ::spw::mma::ldmatrix_x4_trans;
using ::spw::mma::smem_u32;

/// d += a . b over one m16n8k16 step (kernels/common/mma.cuh).
template <typename T>
__device__ SPW_FORCEINLINE void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  ::spw::mma::mma_m16n8k16<T>(d, a, b0, b1);
}

/// Two floats rounded to T (nearest even) in one register, `lo` in the low half.
template <typename T>
__device__ SPW_FORCEINLINE uint32_t pack2(float lo, float hi) {
  uint32_t r;
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    memcpy(&r, &h, sizeof(r));
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    memcpy(&r, &h, sizeof(r));
  }
  return r;
}

/// A operand for keys [16 kk, 16 kk + 16) from the fp32 accumulators of score tiles 2 kk
/// (s0) and 2 kk + 1 (s1).
template <typename T>
__device__ SPW_FORCEINLINE void pack_a(uint32_t (&a)[4], const float (&s0)[4], const float (&s1)[4]) {
  a[0] = pack2<T>(s0[0], s0[1]);
  a[1] = pack2<T>(s0[2], s0[3]);
  a[2] = pack2<T>(s1[0], s1[1]);
  a[3] = pack2<T>(s1[2], s1[3]);
}

}  // namespace spw::tree_attention::mma

// Tensor-core fragment helpers of the tree-attention mma kernel (sm_80+): ldmatrix loads from
// shared-memory tiles, mma.sync m16n8k16 (fp16 / bf16 in, fp32 accumulate) and
// the fp32 -> 16-bit packing that turns a score accumulator into an A operand.
//
// Fragment layouts (PTX ISA, mma.m16n8k16; g = lane / 4, c = lane % 4):
//   A 16x16 row-major, 4 regs of 2 elements: a0 (row g, k 2c..2c+1), a1 (row g+8, same k),
//                                            a2 (row g, k 2c+8..), a3 (row g+8, k 2c+8..)
//   B 16x8 "col", 2 regs:                    b0 (k 2c..2c+1, col g), b1 (k 2c+8.., col g)
//   C/D 16x8 fp32, 4 regs:                   d0, d1 (row g, cols 2c, 2c+1), d2, d3 (row g+8, same)
// So the accumulators of two adjacent n8 score tiles are exactly the A operand of a k16 step
// over those 16 keys (FlashAttention-2's register reuse): pack_a().
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common/platform.h"

namespace spw::tree_attention::mma {

/// Four 8x8 b16 matrices; lane l supplies the row address of matrix l / 8 (row l % 8).
/// volatile: the tile behind the address changes between barriers, the compiler must not
/// merge or hoist two loads of one address.
__device__ SPW_FORCEINLINE void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}
/// Same, each matrix transposed (B operand from a row-major [k][n] tile).
__device__ SPW_FORCEINLINE void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
}

/// d += a . b over one m16n8k16 step (T = half or __nv_bfloat16), fp32 accumulators.
template <typename T>
__device__ SPW_FORCEINLINE void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "fp16 or bf16");
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

/// Two floats rounded to T (nearest even) in one register, `lo` in the low half.
template <typename T>
__device__ SPW_FORCEINLINE uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
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

__device__ SPW_FORCEINLINE uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

}  // namespace spw::tree_attention::mma

// Warp-level tensor-core instructions (sm_80+), written once for every kernel family:
// ldmatrix loads of 8x8 b16 matrices from shared memory and mma.sync m16n8k16 (fp16 / bf16 in,
// fp32 accumulate). In SPW_SIM builds (tests/sim) the same calls run on the CPU simulator.
//
// Fragment layouts (PTX ISA, mma.m16n8k16; g = lane / 4, c = lane % 4):
//   A 16x16 row-major, 4 regs of 2 elements: a0 (row g, k 2c..2c+1), a1 (row g+8, same k),
//                                            a2 (row g, k 2c+8..), a3 (row g+8, k 2c+8..)
//   B 16x8 "col", 2 regs:                    b0 (k 2c..2c+1, col g), b1 (k 2c+8.., col g)
//   C/D 16x8 fp32, 4 regs:                   d0, d1 (row g, cols 2c, 2c+1), d2, d3 (row g+8, same)
// ldmatrix: lane l supplies the (16-byte aligned) address of row l % 8 of matrix l / 8; register
// i of lane l receives elements 2c, 2c+1 of row g of matrix i (.trans: of column g).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/common/platform.h"

namespace spw::mma {

/// Shared-space address of a pointer into shared memory (the operand of ldmatrix/cp.async).
__device__ SPW_FORCEINLINE uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// volatile: the tile behind an address changes between barriers; the compiler must not merge
// or hoist two loads of one address.
/// Four 8x8 b16 matrices from a shared-space address.
__device__ SPW_FORCEINLINE void ldmatrix_x4(uint32_t (&r)[4], uint32_t smem_addr) {
#if defined(SPW_SIM)
  ::spw::sim::ldmatrix(r, 4, false, ::spw::sim::shared_ptr(smem_addr));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
#endif
}
/// Same, each matrix transposed (B operand from a row-major [k][n] tile).
__device__ SPW_FORCEINLINE void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t smem_addr) {
#if defined(SPW_SIM)
  ::spw::sim::ldmatrix(r, 4, true, ::spw::sim::shared_ptr(smem_addr));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr));
#endif
}
/// Two 8x8 b16 matrices (lanes 0-15 supply the row addresses).
__device__ SPW_FORCEINLINE void ldmatrix_x2(uint32_t (&r)[2], uint32_t smem_addr) {
#if defined(SPW_SIM)
  ::spw::sim::ldmatrix(r, 2, false, ::spw::sim::shared_ptr(smem_addr));
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(smem_addr));
#endif
}
__device__ SPW_FORCEINLINE void ldmatrix_x4(uint32_t (&r)[4], const void* p) { ldmatrix_x4(r, smem_u32(p)); }
__device__ SPW_FORCEINLINE void ldmatrix_x2(uint32_t (&r)[2], const void* p) { ldmatrix_x2(r, smem_u32(p)); }

/// d += a . b over one m16n8k16 step (T = half or __nv_bfloat16), fp32 accumulators.
template <typename T>
__device__ SPW_FORCEINLINE void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "fp16 or bf16");
#if defined(SPW_SIM)
  const uint32_t b[2] = {b0, b1};
  ::spw::sim::mma_m16n8k16(d, a, b, std::is_same_v<T, __nv_bfloat16>);
#else
  if constexpr (std::is_same_v<T, __half>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

}  // namespace spw::mma

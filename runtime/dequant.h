// Tensor element formats of GGUF and their conversion to fp32: F32, F16, BF16, the block
// quantisations Q8_0, Q4_0, Q4_1 (32 elements per block, one fp16 scale — and for Q4_1 an
// fp16 minimum — per block) and the k-quants Q4_K and Q6_K (256-element super-blocks: Q4_K 8
// sub-blocks of 32 with 6-bit scales and mins under fp16 d / dmin, Q6_K 16 sub-blocks of 16
// with int8 scales under an fp16 d; the two types of the usual Q4_K_M files), computed in
// ggml's order of operations. The loops live once, in runtime/dequant_kernels.h: the CPU
// matrix product runs the same code on the fly (compiled per instruction set), and every
// copy gives the same fp32 bits as dequantize().
#pragma once

#include <cstddef>
#include <cstdint>

namespace spw::rt {

/// Tensor element types that Spillway reads (numbered as in ggml).
enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30,
};

/// Elements per block of a tensor type (1 for plain floats), 0 if unsupported.
int64_t type_block_elements(uint32_t type);
/// Bytes per block of a tensor type, 0 if unsupported.
int64_t type_block_bytes(uint32_t type);
/// Bytes of `elements` elements; throws if the type is unsupported or elements is not a
/// multiple of the block size.
uint64_t tensor_bytes(uint32_t type, int64_t elements);

/// Converts `elements` elements of `type` at src to fp32 at dst (validated as tensor_bytes).
void dequantize(uint32_t type, const uint8_t* src, int64_t elements, float* dst);

}  // namespace spw::rt

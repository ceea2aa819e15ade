#include "runtime/dequant.h"

#include <cstring>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "runtime/gguf.h"

namespace spw::rt {
namespace {
constexpr int kQK = 32;  // elements per quantisation block
uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
float load_half(const uint8_t* p) { return half_bits_to_float(load_u16(p)); }
}  // namespace

int64_t type_block_elements(uint32_t type) {
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32: case TensorType::F16: case TensorType::BF16: return 1;
    case TensorType::Q8_0: case TensorType::Q4_0: case TensorType::Q4_1: return kQK;
  }
  return 0;
}

int64_t type_block_bytes(uint32_t type) {
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32: return 4;
    case TensorType::F16: case TensorType::BF16: return 2;
    case TensorType::Q8_0: return 2 + kQK;       // fp16 d, 32 x int8
    case TensorType::Q4_0: return 2 + kQK / 2;   // fp16 d, 32 x 4 bit
    case TensorType::Q4_1: return 4 + kQK / 2;   // fp16 d, fp16 m, 32 x 4 bit
  }
  return 0;
}

uint64_t tensor_bytes(uint32_t type, int64_t elements) {
  const int64_t be = type_block_elements(type);
  SPW_CHECK(be > 0, "tensor type {} ({}) is not supported", type, tensor_type_name(type));
  SPW_CHECK(elements >= 0 && elements % be == 0, "{} elements is not a multiple of the {} block size {}",
            elements, tensor_type_name(type), be);
  return static_cast<uint64_t>(elements / be) * static_cast<uint64_t>(type_block_bytes(type));
}

void dequantize(uint32_t type, const uint8_t* src, int64_t n, float* dst) {
  (void)tensor_bytes(type, n);  // validates type and block multiple
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_bits_to_float(load_u16(src + 2 * i));
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_bits_to_float(load_u16(src + 2 * i));
      return;
    case TensorType::Q8_0:
      for (int64_t b = 0; b < n / kQK; ++b, src += 34) {
        const float d = load_half(src);
        for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = static_cast<int8_t>(src[2 + j]) * d;
      }
      return;
    case TensorType::Q4_0:
      // Byte j holds element j (low nibble) and element j + 16 (high nibble), offset by 8.
      for (int64_t b = 0; b < n / kQK; ++b, src += 18) {
        const float d = load_half(src);
        for (int j = 0; j < kQK / 2; ++j) {
          dst[b * kQK + j] = (static_cast<int>(src[2 + j] & 0x0f) - 8) * d;
          dst[b * kQK + j + 16] = (static_cast<int>(src[2 + j] >> 4) - 8) * d;
        }
      }
      return;
    case TensorType::Q4_1:
      for (int64_t b = 0; b < n / kQK; ++b, src += 20) {
        const float d = load_half(src), m = load_half(src + 2);
        for (int j = 0; j < kQK / 2; ++j) {
          dst[b * kQK + j] = (src[4 + j] & 0x0f) * d + m;
          dst[b * kQK + j + 16] = (src[4 + j] >> 4) * d + m;
        }
      }
      return;
  }
}

}  // namespace spw::rt

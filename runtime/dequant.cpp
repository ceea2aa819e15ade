#include "runtime/dequant.h"

#include <cstring>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "runtime/gguf.h"

namespace spw::rt {
namespace {
constexpr int kQK = 32;     // elements per quantisation block
constexpr int kQK_K = 256;  // elements per k-quant super-block
#include "runtime/dequant_portable.h"
#include "runtime/dequant_kernels.h"
}  // namespace

int64_t type_block_elements(uint32_t type) {
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32: case TensorType::F16: case TensorType::BF16: return 1;
    case TensorType::Q8_0: case TensorType::Q4_0: case TensorType::Q4_1: return kQK;
    case TensorType::Q4_K: case TensorType::Q6_K: return kQK_K;
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
    case TensorType::Q4_K: return 4 + 12 + kQK_K / 2;            // d, dmin, 12 scale bytes, 256 x 4 bit
    case TensorType::Q6_K: return kQK_K / 2 + kQK_K / 4 + 16 + 2;  // ql, qh, 16 int8 scales, d
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
  dq_run(type, src, n, dst);
}

}  // namespace spw::rt

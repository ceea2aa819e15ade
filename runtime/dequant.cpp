#include "runtime/dequant.h"

#include <cstring>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "runtime/gguf.h"

namespace spw::rt {
namespace {
constexpr int kQK = 32;    // elements per quantisation block
constexpr int kQK_K = 256;  // elements per k-quant super-block
uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
float load_half(const uint8_t* p) { return half_bits_to_float(load_u16(p)); }

// Q4_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (ggml's layout:
// bytes 0-3 hold scales 0-3 and the top bits of scales 4-7, 4-7 the mins likewise, 8-11 the low
// nibbles of scales / mins 4-7).
void q4k_scale_min(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}
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
    case TensorType::Q4_K:
      // Per 64 elements: 32 low nibbles (sub-block 2i), then the 32 high nibbles (2i + 1) of
      // the same 32 bytes; value = d * scale * q - dmin * min.
      for (int64_t b = 0; b < n / kQK_K; ++b, src += 144) {
        const float d = load_half(src), dmin = load_half(src + 2);
        const uint8_t* scales = src + 4;
        const uint8_t* q = src + 16;
        float* y = dst + b * kQK_K;
        for (int j = 0; j < kQK_K; j += 64, q += 32) {
          int sc, m;
          q4k_scale_min(j / 32, scales, sc, m);
          const float d1 = d * sc, m1 = dmin * m;
          q4k_scale_min(j / 32 + 1, scales, sc, m);
          const float d2 = d * sc, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0x0f) - m1;
          for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
        }
      }
      return;
    case TensorType::Q6_K:
      // Per 128 elements: 64 bytes of low nibbles (ql), 32 bytes of 2-bit high parts (qh), 8
      // scales; the 6-bit value minus 32 times d * scale (scale per 16 elements).
      for (int64_t b = 0; b < n / kQK_K; ++b, src += 210) {
        const uint8_t* ql = src;
        const uint8_t* qh = src + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        const float d = load_half(src + 208);
        float* y = dst + b * kQK_K;
        for (int h = 0; h < kQK_K; h += 128, y += 128, ql += 64, qh += 32, sc += 8) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
          }
        }
      }
      return;
  }
}

}  // namespace spw::rt

// The portable definitions of runtime/dequant_kernels.h's primitives (private): included,
// inside an anonymous namespace, by the translation units compiled with the baseline flags
// (dequant.cpp, and cpu_matmul.cpp for the generic instruction set), before that header.
// Needs <cstring> and kernels/common/dtype.h.

float dq_half(uint16_t bits) { return half_bits_to_float(bits); }

void dq_f16(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = half_bits_to_float(h);
  }
}

void dq_nibbles16(const uint8_t* q, float* lo, float* hi) {
  for (int j = 0; j < 16; ++j) {
    lo[j] = static_cast<float>(q[j] & 0x0f);
    hi[j] = static_cast<float>(q[j] >> 4);
  }
}

void dq_q6_16(const uint8_t* ql, const uint8_t* qh, int ls, int hs, float* out) {
  for (int j = 0; j < 16; ++j) out[j] = static_cast<float>((((ql[j] >> ls) & 0x0f) | (((qh[j] >> hs) & 3) << 4)) - 32);
}

// The conversion loops of runtime/dequant.h (private). Included inside an anonymous namespace
// by dequant.cpp (baseline flags) and by each runtime/cpu_matmul_<isa>.cpp (that set's flags),
// which first declare (and define, before or after)
//   float dq_half(uint16_t bits);                                 // one fp16 value
//   void dq_f16(const uint8_t* src, int64_t n, float* dst);       // n fp16 values
//   void dq_nibbles16(const uint8_t* q, float* lo, float* hi);    // lo[j] = q[j] & 15, hi[j] = q[j] >> 4, j < 16
//   void dq_q6_16(const uint8_t* ql, const uint8_t* qh, int ls, int hs, float* out);
//        // out[j] = ((ql[j] >> ls) & 15 | ((qh[j] >> hs) & 3) << 4) - 32, j < 16 (Q6_K's 6-bit values)
// (portable code in runtime/dequant_portable.h, intrinsics in the instruction-set files, which
// must not call a shared inline function; compilers do not vectorise the nibble split well by
// themselves).
// Otherwise plain loops that the compiler vectorises; each value is the same
// IEEE operations in the same order in every copy (all compiled with -ffp-contract=off), so
// the on-the-fly dequantisation of the matrix product equals dequantize() bit for bit.
// Callers have validated the type and that n is a whole number of blocks.

// dq_f16 over vectors of W values: cvt(src, dst) converts W fp16 values at src to fp32 at
// dst; the tail goes through a zero-padded block.
template <int W, class Cvt>
void dq_f16_vectors(const uint8_t* src, int64_t n, float* dst, Cvt cvt) {
  int64_t i = 0;
  for (; i + W <= n; i += W) cvt(src + 2 * i, dst + i);
  if (i < n) {
    alignas(64) uint16_t h[W] = {};
    alignas(64) float f[W];
    __builtin_memcpy(h, src + 2 * i, static_cast<size_t>(n - i) * 2);
    cvt(reinterpret_cast<const uint8_t*>(h), f);
    __builtin_memcpy(dst + i, f, static_cast<size_t>(n - i) * 4);
  }
}

inline uint16_t dq_u16(const uint8_t* p) {
  uint16_t v;
  __builtin_memcpy(&v, p, 2);
  return v;
}

// Q4_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes (ggml's layout:
// bytes 0-3 hold scales 0-3 and the top bits of scales 4-7, 4-7 the mins likewise, 8-11 the low
// nibbles of scales / mins 4-7).
inline void dq_q4k_scale_min(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dq_run(uint32_t type, const uint8_t* src, int64_t n, float* dst) {
  constexpr int QK = 32, QK_K = 256;
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32:
      __builtin_memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case TensorType::F16:
      dq_f16(src, n, dst);
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = static_cast<uint32_t>(dq_u16(src + 2 * i)) << 16;
        __builtin_memcpy(dst + i, &bits, 4);
      }
      return;
    case TensorType::Q8_0:
      for (int64_t b = 0; b < n / QK; ++b, src += 34, dst += QK) {
        const float d = dq_half(dq_u16(src));
        const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
        for (int j = 0; j < QK; ++j) dst[j] = static_cast<float>(q[j]) * d;
      }
      return;
    case TensorType::Q4_0:
      // Byte j holds element j (low nibble) and element j + 16 (high nibble), offset by 8.
      // (q - 8 is exact in fp32, so lo[j] - 8 equals the integer subtraction.)
      for (int64_t b = 0; b < n / QK; ++b, src += 18, dst += QK) {
        const float d = dq_half(dq_u16(src));
        alignas(64) float lo[16], hi[16];
        dq_nibbles16(src + 2, lo, hi);
        for (int j = 0; j < 16; ++j) dst[j] = (lo[j] - 8.f) * d;
        for (int j = 0; j < 16; ++j) dst[j + 16] = (hi[j] - 8.f) * d;
      }
      return;
    case TensorType::Q4_1:
      for (int64_t b = 0; b < n / QK; ++b, src += 20, dst += QK) {
        const float d = dq_half(dq_u16(src)), m = dq_half(dq_u16(src + 2));
        alignas(64) float lo[16], hi[16];
        dq_nibbles16(src + 4, lo, hi);
        for (int j = 0; j < 16; ++j) dst[j] = lo[j] * d + m;
        for (int j = 0; j < 16; ++j) dst[j + 16] = hi[j] * d + m;
      }
      return;
    case TensorType::Q4_K:
      // Per 64 elements: 32 low nibbles (sub-block 2i), then the 32 high nibbles (2i + 1) of
      // the same 32 bytes; value = d * scale * q - dmin * min.
      for (int64_t b = 0; b < n / QK_K; ++b, src += 144) {
        const float d = dq_half(dq_u16(src)), dmin = dq_half(dq_u16(src + 2));
        const uint8_t* scales = src + 4;
        const uint8_t* q = src + 16;
        for (int j = 0; j < QK_K; j += 64, q += 32, dst += 64) {
          int sc, m;
          dq_q4k_scale_min(j / 32, scales, sc, m);
          const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
          dq_q4k_scale_min(j / 32 + 1, scales, sc, m);
          const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
          alignas(64) float lo[32], hi[32];
          dq_nibbles16(q, lo, hi);
          dq_nibbles16(q + 16, lo + 16, hi + 16);
          for (int l = 0; l < 32; ++l) dst[l] = d1 * lo[l] - m1;
          for (int l = 0; l < 32; ++l) dst[l + 32] = d2 * hi[l] - m2;
        }
      }
      return;
    case TensorType::Q6_K:
      // Per 128 elements: 64 bytes of low nibbles (ql), 32 bytes of 2-bit high parts (qh), 8
      // scales; the 6-bit value minus 32 times d * scale (scale per 16 elements).
      for (int64_t b = 0; b < n / QK_K; ++b, src += 210) {
        const uint8_t* ql = src;
        const uint8_t* qh = src + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(src + 192);
        const float d = dq_half(dq_u16(src + 208));
        for (int h = 0; h < QK_K; h += 128, dst += 128, ql += 64, qh += 32, sc += 8) {
          for (int half = 0; half < 2; ++half) {  // l in [0, 16) uses scales is = 0, [16, 32) is = 1
            const float s1 = d * sc[half], s2 = d * sc[half + 2], s3 = d * sc[half + 4], s4 = d * sc[half + 6];
            const int l0 = half * 16;
            alignas(64) float q1[16], q2[16], q3[16], q4[16];
            dq_q6_16(ql + l0, qh + l0, 0, 0, q1);       // low nibbles of ql[0..32), qh bits 0-1
            dq_q6_16(ql + l0 + 32, qh + l0, 0, 2, q2);  // low nibbles of ql[32..64), bits 2-3
            dq_q6_16(ql + l0, qh + l0, 4, 4, q3);       // high nibbles of ql[0..32), bits 4-5
            dq_q6_16(ql + l0 + 32, qh + l0, 4, 6, q4);  // high nibbles of ql[32..64), bits 6-7
            for (int l = 0; l < 16; ++l) {
              dst[l0 + l] = s1 * q1[l];
              dst[l0 + l + 32] = s2 * q2[l];
              dst[l0 + l + 64] = s3 * q3[l];
              dst[l0 + l + 96] = s4 * q4[l];
            }
          }
        }
      }
      return;
  }
}

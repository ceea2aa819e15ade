// Element types: the runtime tag (DType), the storage types (half, bfloat16, float) and
// bit-exact round-to-nearest-even conversions that behave the same on host and device.
//
// With the CUDA toolkit the storage types are CUDA's own (__half, __nv_bfloat16) so kernels
// use the hardware conversions; in a CPU-only build they are 16-bit structs with the same
// layout. The host conversions below are written in integer arithmetic so CPU references
// round exactly as the GPU does (ties to even, NaN kept NaN, overflow to inf).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "kernels/common/platform.h"

#if SPW_HAVE_CUDA
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace spw {

/// Runtime element-type tag used in every Problem/params struct.
enum class DType : int { f16 = 0, bf16 = 1, f32 = 2 };

/// "fp16", "bf16", "fp32": the names used in errors, benchmarks and the CLI.
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
    case DType::f32: return "fp32";
  }
  return "unknown-dtype";
}

/// Bytes per element.
constexpr int dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }

#if SPW_HAVE_CUDA
using half = __half;
using bfloat16 = __nv_bfloat16;
#else
/// IEEE binary16 storage (CPU-only build).
struct half { uint16_t bits; };
/// bfloat16 storage (CPU-only build).
struct bfloat16 { uint16_t bits; };
#endif
static_assert(sizeof(half) == 2 && sizeof(bfloat16) == 2);

// ---- bit-level conversions (host and device, integer only) ---------------------------

SPW_HD inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u; std::memcpy(&u, &f, 4); return u;
#endif
}
SPW_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f; std::memcpy(&f, &u, 4); return f;
#endif
}

/// fp32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN.
SPW_HD inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
SPW_HD inline float bf16_bits_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

/// fp32 -> IEEE fp16 bits, round to nearest even, overflow to inf, subnormals kept.
SPW_HD inline uint16_t float_to_half_bits(float f) {
  uint32_t u = float_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);        // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);       // >= 65520 -> inf
  if (a < 0x38800000u) {                                                    // < 2^-14: subnormal
    if (a < 0x33000000u) return static_cast<uint16_t>(sign);               // < 2^-25 -> 0
    uint32_t exp = a >> 23, mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - exp;                                            // 14..24 -> 113-exp+13
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u), mid = 1u << (shift - 1u);
    if (rem > mid || (rem == mid && (half_mant & 1u))) ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t r = a - 0x38000000u;                                              // rebias 127 -> 15
  uint32_t h = r >> 13, rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

/// IEEE fp16 bits -> fp32 (exact).
SPW_HD inline float half_bits_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    float v = static_cast<float>(mant) * (1.0f / 16777216.0f);  // mant * 2^-24
    return sign ? -v : v;
  }
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// ---- element traits ------------------------------------------------------------------

/// DTypeTraits<T>: the runtime tag of a storage type and its float conversions.
/// On the device the CUDA intrinsics are used; on the host the integer code above.
template <typename T> struct DTypeTraits;

template <> struct DTypeTraits<float> {
  static constexpr DType dtype = DType::f32;
  SPW_HD static float to_float(float x) { return x; }
  SPW_HD static float from_float(float x) { return x; }
};

template <> struct DTypeTraits<half> {
  static constexpr DType dtype = DType::f16;
  SPW_HD static float to_float(half x) {
#if defined(__CUDA_ARCH__)
    return __half2float(x);
#else
    uint16_t b; std::memcpy(&b, static_cast<const void*>(&x), 2); return half_bits_to_float(b);
#endif
  }
  SPW_HD static half from_float(float f) {
#if defined(__CUDA_ARCH__)
    return __float2half_rn(f);
#else
    uint16_t b = float_to_half_bits(f); half h; std::memcpy(static_cast<void*>(&h), &b, 2); return h;
#endif
  }
};

template <> struct DTypeTraits<bfloat16> {
  static constexpr DType dtype = DType::bf16;
  SPW_HD static float to_float(bfloat16 x) {
#if defined(__CUDA_ARCH__)
    return __bfloat162float(x);
#else
    uint16_t b; std::memcpy(&b, static_cast<const void*>(&x), 2); return bf16_bits_to_float(b);
#endif
  }
  SPW_HD static bfloat16 from_float(float f) {
#if defined(__CUDA_ARCH__)
    return __float2bfloat16_rn(f);
#else
    uint16_t b = float_to_bf16_bits(f); bfloat16 h; std::memcpy(static_cast<void*>(&h), &b, 2); return h;
#endif
  }
};

/// Shorthands: spw::to_float(x), spw::from_float<T>(f).
template <typename T> SPW_HD inline float to_float(T x) { return DTypeTraits<T>::to_float(x); }
template <typename T> SPW_HD inline T from_float(float f) { return DTypeTraits<T>::from_float(f); }

/// Rounds a float through T and back: what storing in T then reading does to a value.
template <typename T> SPW_HD inline float round_to(float f) { return to_float(from_float<T>(f)); }

/// Same rounding selected by a runtime tag (host code: references, random inputs).
inline float round_to(DType t, float f) {
  switch (t) {
    case DType::f16: return half_bits_to_float(float_to_half_bits(f));
    case DType::bf16: return bf16_bits_to_float(float_to_bf16_bits(f));
    case DType::f32: return f;
  }
  return f;
}

}  // namespace spw

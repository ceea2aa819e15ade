// Vec<T, N>: N elements moved as one aligned access (16 bytes for 8 halves or 4 floats),
// the way FlashInfer's vec_t hides wide loads. Usable on host (tests) and device.
#pragma once

#include <cstdint>

#include "kernels/common/dtype.h"
#include "kernels/common/platform.h"

namespace spw {

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec {
  static_assert((N & (N - 1)) == 0, "Vec length must be a power of two");
  static constexpr int size = N;
  T data[N];

  SPW_HD T& operator[](int i) { return data[i]; }
  SPW_HD const T& operator[](int i) const { return data[i]; }

  /// One aligned load of N elements from ptr (ptr must be aligned to sizeof(Vec)).
  SPW_HD SPW_FORCEINLINE void load(const T* ptr) { *this = *reinterpret_cast<const Vec*>(ptr); }
  /// One aligned store of N elements to ptr.
  SPW_HD SPW_FORCEINLINE void store(T* ptr) const { *reinterpret_cast<Vec*>(ptr) = *this; }

  /// Loads N elements of S and converts each to T (e.g. half -> float).
  template <typename S>
  SPW_HD SPW_FORCEINLINE void cast_load(const S* ptr) {
    Vec<S, N> src;
    src.load(ptr);
SPW_UNROLL
    for (int i = 0; i < N; ++i) data[i] = from_float<T>(to_float(src[i]));
  }
  /// Converts each element to S and stores them with one wide store.
  template <typename S>
  SPW_HD SPW_FORCEINLINE void cast_store(S* ptr) const {
    Vec<S, N> dst;
SPW_UNROLL
    for (int i = 0; i < N; ++i) dst[i] = from_float<S>(to_float(data[i]));
    dst.store(ptr);
  }
  SPW_HD void fill(T v) {
SPW_UNROLL
    for (int i = 0; i < N; ++i) data[i] = v;
  }
};

/// Elements of T in one 16-byte access.
template <typename T>
inline constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));

/// True if ptr is aligned to `bytes` (used by API checks before launch).
inline bool is_aligned(const void* ptr, std::uintptr_t bytes) {
  return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0;
}

}  // namespace spw

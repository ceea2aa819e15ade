// Compile-environment glue shared by every Spillway kernel family.
//
// Headers under kernels/ are included both by nvcc (device code) and by a plain C++
// compiler (CPU references, host planning, a CPU-only build without the CUDA toolkit).
// SPW_HD marks functions written once for both sides.
#pragma once

#if defined(__CUDACC__)
#define SPW_HD __host__ __device__
#define SPW_DEVICE __device__
#define SPW_FORCEINLINE __forceinline__
#define SPW_UNROLL _Pragma("unroll")
#else
#define SPW_HD
#define SPW_DEVICE
#define SPW_FORCEINLINE inline
#define SPW_UNROLL
#endif

// SPW_HAVE_CUDA is defined (to 1) by the build when the CUDA toolkit was found.
#ifndef SPW_HAVE_CUDA
#define SPW_HAVE_CUDA 0
#endif

// A CUDA stream without including the CUDA headers: cudaStream_t is `CUstream_st*`, so
// this alias is the same type and public headers stay includable in CPU-only builds.
struct CUstream_st;
namespace spw {
using Stream = CUstream_st*;

/// ceil(a / b) for positive integers.
template <typename T>
SPW_HD constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

/// Smallest multiple of b that is >= a.
template <typename T>
SPW_HD constexpr T round_up(T a, T b) { return ceil_div(a, b) * b; }
}  // namespace spw

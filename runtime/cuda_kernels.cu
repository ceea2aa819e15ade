// Kernels of the CUDA backend that belong to no kernel family (see cuda_kernels.cuh).
#include <algorithm>

#include "kernels/common/cuda_check.h"
#include "kernels/common/error.h"
#include "kernels/common/launch.cuh"
#include "runtime/cuda_kernels.cuh"

namespace spw::rt::cuda {
namespace {

constexpr int kThreads = 256;

int grid_for(long long work) {
  return static_cast<int>(std::clamp<long long>((work + kThreads - 1) / kThreads, 1, 65535LL * 16));
}

template <typename T>
__global__ void convert_kernel(const float* __restrict__ src, T* __restrict__ dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = from_float<T>(src[i]);
}

// splitmix64 finaliser: a well-mixed 64-bit hash of a counter.
__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void uniform_kernel(T* __restrict__ dst, size_t n, uint64_t seed, float scale) {
  const uint64_t key = mix64(seed + 0x9e3779b97f4a7c15ULL);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const uint64_t h = mix64(key ^ (i * 0x9e3779b97f4a7c15ULL + 1));
    const float u = static_cast<float>(h >> 40) * (1.f / 16777216.f);  // [0, 1), 24 bits
    dst[i] = from_float<T>((2.f * u - 1.f) * scale);
  }
}

template <typename T>
__global__ void value_kernel(T* __restrict__ dst, size_t n, float value) {
  const T v = from_float<T>(value);
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) dst[i] = v;
}

// One thread per 16-byte chunk of a qkv row.
__global__ void store_qkv_kernel(StoreQkvArgs a) {
  const int q8 = a.q_dim / 8, kv8 = a.kv_dim / 8, per_row = q8 + 2 * kv8;
  const long long total = static_cast<long long>(a.tokens) * per_row;
  const uint4* src = static_cast<const uint4*>(a.qkv);
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(idx / per_row), c = static_cast<int>(idx % per_row);
    const uint4 val = src[idx];
    if (c < q8) {
      static_cast<uint4*>(a.q)[static_cast<size_t>(t) * q8 + c] = val;
    } else if (c < q8 + kv8) {
      const int j = c - q8;
      static_cast<uint4*>(a.k_pool)[static_cast<size_t>(a.rows[t]) * kv8 + j] = val;
      if (a.k) static_cast<uint4*>(a.k)[static_cast<size_t>(t) * kv8 + j] = val;
    } else {
      const int j = c - q8 - kv8;
      static_cast<uint4*>(a.v_pool)[static_cast<size_t>(a.rows[t]) * kv8 + j] = val;
      if (a.v) static_cast<uint4*>(a.v)[static_cast<size_t>(t) * kv8 + j] = val;
    }
  }
}

// Thread = (plane, 16-byte column); it walks the moves in order, so a row is read before the
// later move that overwrites it (the column belongs to this thread alone).
__global__ void move_rows_kernel(uint4* pool, int planes, size_t plane_chunks, int row_chunks,
                                 const int32_t* __restrict__ src, const int32_t* __restrict__ dst, int moves) {
  const long long total = static_cast<long long>(planes) * row_chunks;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int plane = static_cast<int>(idx / row_chunks), c = static_cast<int>(idx % row_chunks);
    uint4* base = pool + static_cast<size_t>(plane) * plane_chunks + c;
    for (int i = 0; i < moves; ++i) {
      const uint4 v = base[static_cast<size_t>(src[i]) * row_chunks];
      base[static_cast<size_t>(dst[i]) * row_chunks] = v;
    }
  }
}

void check_dtype16(const char* where, DType d) {
  SPW_CHECK_ARG(d == DType::f16 || d == DType::bf16, where, "dtype", dtype_name(d), "must be fp16 or bf16");
}
bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void convert_from_f32(const float* src, void* dst, DType dtype, size_t n, cudaStream_t s) {
  check_dtype16("convert_from_f32", dtype);
  if (n == 0) return;
  if (dtype == DType::f16)
    spw::launch(convert_kernel<half>, grid_for(n), kThreads, 0, s, src, static_cast<half*>(dst), n);
  else
    spw::launch(convert_kernel<bfloat16>, grid_for(n), kThreads, 0, s, src, static_cast<bfloat16*>(dst), n);
  SPW_CUDA_CHECK_LAUNCH();
}

void fill_uniform(void* dst, DType dtype, size_t n, uint64_t seed, float scale, cudaStream_t s) {
  check_dtype16("fill_uniform", dtype);
  if (n == 0) return;
  if (dtype == DType::f16)
    spw::launch(uniform_kernel<half>, grid_for(n), kThreads, 0, s, static_cast<half*>(dst), n, seed, scale);
  else
    spw::launch(uniform_kernel<bfloat16>, grid_for(n), kThreads, 0, s, static_cast<bfloat16*>(dst), n, seed, scale);
  SPW_CUDA_CHECK_LAUNCH();
}

void fill_value(void* dst, DType dtype, size_t n, float value, cudaStream_t s) {
  check_dtype16("fill_value", dtype);
  if (n == 0) return;
  if (dtype == DType::f16)
    spw::launch(value_kernel<half>, grid_for(n), kThreads, 0, s, static_cast<half*>(dst), n, value);
  else
    spw::launch(value_kernel<bfloat16>, grid_for(n), kThreads, 0, s, static_cast<bfloat16*>(dst), n, value);
  SPW_CUDA_CHECK_LAUNCH();
}

void store_qkv(const StoreQkvArgs& a, cudaStream_t s) {
  constexpr const char* w = "store_qkv";
  SPW_CHECK_ARG(a.tokens >= 0, w, "tokens", a.tokens, "must be >= 0");
  SPW_CHECK_ARG(a.q_dim > 0 && a.q_dim % 8 == 0, w, "q_dim", a.q_dim, "must be a positive multiple of 8");
  SPW_CHECK_ARG(a.kv_dim > 0 && a.kv_dim % 8 == 0, w, "kv_dim", a.kv_dim, "must be a positive multiple of 8");
  auto ptr = [&](const void* p, const char* name, bool required) {
    if (!p) {
      SPW_CHECK_ARG(!required, w, name, "null", "must be a device pointer");
      return;
    }
    SPW_CHECK_ARG(aligned16(p), w, name, fmt::ptr(p), "must be 16-byte aligned");
  };
  ptr(a.qkv, "qkv", true);
  ptr(a.q, "q", true);
  ptr(a.k, "k", false);
  ptr(a.v, "v", false);
  ptr(a.k_pool, "k_pool", true);
  ptr(a.v_pool, "v_pool", true);
  SPW_CHECK_ARG(a.rows != nullptr, w, "rows", "null", "must be a device pointer");
  if (a.tokens == 0) return;
  const long long work = static_cast<long long>(a.tokens) * (a.q_dim + 2 * a.kv_dim) / 8;
  spw::launch(store_qkv_kernel, grid_for(work), kThreads, 0, s, a);
  SPW_CUDA_CHECK_LAUNCH();
}

void move_rows(void* pool, int planes, size_t plane_elems, int row_elems, const int32_t* src, const int32_t* dst,
               int moves, cudaStream_t s) {
  constexpr const char* w = "move_rows";
  SPW_CHECK_ARG(planes >= 1, w, "planes", planes, "must be >= 1");
  SPW_CHECK_ARG(row_elems > 0 && row_elems % 8 == 0, w, "row_elems", row_elems, "must be a positive multiple of 8");
  SPW_CHECK_ARG(plane_elems % 8 == 0, w, "plane_elems", plane_elems, "must be a multiple of 8");
  SPW_CHECK_ARG(pool != nullptr && aligned16(pool), w, "pool", fmt::ptr(pool), "must be a 16-byte aligned device pointer");
  SPW_CHECK_ARG(moves >= 0, w, "moves", moves, "must be >= 0");
  if (moves == 0) return;
  SPW_CHECK_ARG(src != nullptr && dst != nullptr, w, "src / dst", "null", "must be device pointers");
  const long long work = static_cast<long long>(planes) * (row_elems / 8);
  spw::launch(move_rows_kernel, grid_for(work), kThreads, 0, s, static_cast<uint4*>(pool), planes, plane_elems / 8,
              row_elems / 8, src, dst, moves);
  SPW_CUDA_CHECK_LAUNCH();
}

}  // namespace spw::rt::cuda

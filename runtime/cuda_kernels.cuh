// The few kernels of the CUDA backend that are not a kernel family's: weight conversion and
// random initialisation (load time), the Q|K|V split that also stores K/V into the paged cache,
// and the row moves of keep_tokens. Internal to runtime/*.cu. Every launcher checks its launch.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common/dtype.h"

namespace spw::rt::cuda {

/// dst[i] = src[i] rounded to `dtype` (fp16 / bf16, round to nearest even) for i < n.
void convert_from_f32(const float* src, void* dst, DType dtype, size_t n, cudaStream_t stream);

/// dst[i] = uniform in [-scale, scale], a pure function of (seed, i): the same values for the
/// same seed on any device and launch configuration.
void fill_uniform(void* dst, DType dtype, size_t n, uint64_t seed, float scale, cudaStream_t stream);

/// dst[i] = value rounded to `dtype`, i < n.
void fill_value(void* dst, DType dtype, size_t n, float value, cudaStream_t stream);

/// Splits qkv [tokens, q_dim + 2 kv_dim] (Q | K | V per row, RoPE already applied) into packed
/// q [tokens, q_dim] and, when k / v are not null, k / v [tokens, kv_dim], and writes the K and
/// V rows of token t to pool row rows[t] of k_pool / v_pool ([pool rows, kv_dim]). 16-bit
/// elements; q_dim and kv_dim multiples of 8, every pointer 16-byte aligned.
struct StoreQkvArgs {
  int tokens = 0, q_dim = 0, kv_dim = 0;
  const void* qkv = nullptr;
  void* q = nullptr;
  void* k = nullptr;  // optional
  void* v = nullptr;  // optional
  void* k_pool = nullptr;
  void* v_pool = nullptr;
  const int32_t* rows = nullptr;  // [tokens] device
};
void store_qkv(const StoreQkvArgs& args, cudaStream_t stream);

/// keep_tokens: in each of `planes` planes (plane p starts at pool + p * plane_elems, rows of
/// row_elems 16-bit elements), copies row src[i] to row dst[i] for i = 0, 1, ..., moves - 1 IN
/// THAT ORDER (each thread owns one 16-byte column of a plane and walks the moves
/// sequentially), which is correct for the move lists of PagedKvBook::keep: a row is read
/// before the later move that overwrites it. row_elems multiple of 8.
void move_rows(void* pool, int planes, size_t plane_elems, int row_elems, const int32_t* src, const int32_t* dst,
               int moves, cudaStream_t stream);

}  // namespace spw::rt::cuda

// Tile shape of the tensor-core tree-attention kernel (tree_attention_mma.cu), shared with the
// planner (plan.cpp), which derives rows per CTA, warps and shared memory from it. Host and
// device constexpr, no CUDA headers.
#pragma once

#include "kernels/common/platform.h"

namespace spw::tree_attention::mma {

struct Shape {
  int keys;      // K/V rows per shared-memory stage (a multiple of 16)
  int m_tiles;   // 16-row query tiles a warp keeps in registers (fp32 O accumulators)
  int stages;    // depth of the cp.async K/V ring
  int sub_keys;  // keys per score tile (S = Q K^T, softmax, O += P V): divides keys
};

// Registers bound the rows: a warp's O accumulators are m_tiles * head_dim / 2 floats per lane
// (128 for every head_dim below), the score tile m_tiles * sub_keys / 2 more.
// head_dim 128 (ptxas, sm_90, CUDA 13): 64-key score tiles (192 accumulator floats per lane)
// spill 104 bytes (255 registers); 32-key tiles 20; 16-key tiles none (236 registers). But every
// score tile reloads the warp's Q fragments from shared memory (D / 16 ldmatrix.x4 per m-tile):
// per 64-key stage a warp issues 80 ldmatrix.x4 with one score tile, 96 with two, 128 with four,
// while the spilled code holds 124 bytes of reloads per lane (ptxas' static count). Where the
// kernel is bound by shared memory (8 warps, 2 m-tiles, a long prefix) that makes 16-key tiles
// the slower choice on paper, so head_dim 128 keeps one score tile per stage until a GPU
// measures both (bench/tree_attention.py; change sub_keys here).
SPW_HD constexpr Shape shape(int head_dim) {
  return head_dim == 256 ? Shape{32, 1, 2, 32} : head_dim == 128 ? Shape{64, 2, 2, 64} : Shape{64, 2, 3, 64};
}

inline constexpr int kMinWarps = 4;  // loaders: a small row count still gets 128 threads of cp.async
inline constexpr int kMaxWarps = 8;

/// Most query rows one CTA holds (8 warps x m_tiles x 16): 256 for head_dim 64/128, 128 for 256.
SPW_HD constexpr int max_rows(int head_dim) { return kMaxWarps * 16 * shape(head_dim).m_tiles; }

/// Shared-memory row stride in elements: head_dim + 8 (16 bytes of padding), so the 8 rows of an
/// ldmatrix phase start in 8 different 16-byte bank groups (conflict-free) while every address
/// stays base + immediate (no per-lane swizzle registers).
SPW_HD constexpr int row_stride(int head_dim) { return head_dim + 8; }

/// Bytes of the K/V ring (K and V tiles of `keys` rows per stage, 2-byte elements).
SPW_HD constexpr int kv_smem_bytes(int head_dim) {
  return shape(head_dim).stages * 2 * shape(head_dim).keys * row_stride(head_dim) * 2;
}

/// Dynamic shared memory of a CTA holding q_rows (multiple of 16) query rows: Q tile + K/V ring.
SPW_HD constexpr int smem_bytes(int head_dim, int q_rows) {
  return q_rows * row_stride(head_dim) * 2 + kv_smem_bytes(head_dim);
}

/// Warps of a CTA for `rows` query rows: one per m_tiles 16-row tiles, within [kMinWarps, kMaxWarps].
SPW_HD constexpr int warps(int head_dim, int rows) {
  const int m = (rows + 15) / 16, mt = shape(head_dim).m_tiles;
  const int w = (m + mt - 1) / mt;
  return w < kMinWarps ? kMinWarps : w > kMaxWarps ? kMaxWarps : w;
}

static_assert(max_rows(64) == 256 && max_rows(128) == 256 && max_rows(256) == 128);
static_assert(smem_bytes(128, 256) == 136 * 1024 && smem_bytes(256, 128) == 132 * 1024 && smem_bytes(64, 256) == 90 * 1024);

}  // namespace spw::tree_attention::mma

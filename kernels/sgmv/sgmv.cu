// SGMV kernels: shrink (v = x · A^T, split-K) and expand (y += scale · v · B, split-N).
//
// Design (see sgmv.h for layouts): one block per (segment, token tile, slice, split). Both
// kernels are written for the memory-bound decode case: A rows and B rows are streamed with
// 16-byte loads, each byte of an adapter is read by exactly one block, and the split
// factors come from plan() so that even 1..8 segments put ~4 blocks on every SM.
//   shrink: 8 warps; warp w owns rank rows w, w+8, ... (two at a time so each lane keeps 4+
//     independent 16-byte loads in flight); lanes walk hidden; a warp shuffle reduces. With
//     k_split > 1, partials go to the workspace and the last block of a group (atomic counter,
//     reset by that block) sums them in split order: deterministic, one launch.
//   expand: 128 threads x 8 outputs; v of the tile sits in shared memory; each thread loads
//     one 16-byte row piece of B per rank and does one 16-byte read-modify-write of y.
// Token tiles: 1 token per block for decode (x row stays in L1, no wasted lanes), 8 tokens for
// long segments (each A/B load reused 8 times; CUDA cores, not yet tensor cores).
// Adapter ids / ranks are re-checked on the device (out of range => segment skipped), so a
// stale device array can never read outside the weights.
#include <cuda_runtime.h>

#include "kernels/common/cuda_check.h"
#include "kernels/common/reduce.cuh"
#include "kernels/common/vec.h"
#include "kernels/sgmv/sgmv.h"

namespace spw::sgmv {
namespace {

constexpr int kShrinkThreads = 256;
constexpr int kExpandThreads = 128;
constexpr int kV = 8;  // elements per 16-byte access of fp16/bf16

struct SegmentView {
  const int32_t* seg_starts;
  const int32_t* adapter_ids;
  const int32_t* ranks;
  int num_adapters, rank_max;
};

// Adapter a, token range [t0, t0 + nt) of this block's tile, rank; false if nothing to do.
template <int TM>
__device__ SPW_FORCEINLINE bool block_work(const SegmentView& s, int* a, int* t0, int* nt, int* rank) {
  *a = s.adapter_ids[blockIdx.x];
  if (*a < 0 || *a >= s.num_adapters) return false;
  const int begin = s.seg_starts[blockIdx.x] + static_cast<int>(blockIdx.y) * TM;
  const int end = s.seg_starts[blockIdx.x + 1];
  if (begin >= end) return false;
  *t0 = begin;
  *nt = min(TM, end - begin);
  *rank = min(s.ranks[*a], s.rank_max);
  return *rank > 0;
}

template <typename T>
struct ShrinkParams {
  SegmentView seg;
  const T* x;
  long long x_stride;
  int hidden, num_slices, k_split, k_chunk, token_tiles, tokens;
  const void* const* a_ptrs;
  const T* a_stacked;
  float* v;
  float* partial;
  int* counters;
};

template <typename T, int TM>
__global__ void __launch_bounds__(kShrinkThreads) shrink_kernel(ShrinkParams<T> p) {
  int a, t0, nt, rank;
  if (!block_work<TM>(p.seg, &a, &t0, &nt, &rank)) return;
  const int slice = blockIdx.z % p.num_slices, split = blockIdx.z / p.num_slices;
  const int S = p.num_slices, R = p.seg.rank_max;
  const T* A = p.a_ptrs ? static_cast<const T*>(p.a_ptrs[a * S + slice])
                        : p.a_stacked + (static_cast<long long>(a) * S + slice) * R * p.hidden;
  const int k0 = split * p.k_chunk, k1 = min(p.hidden, k0 + p.k_chunk);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kWarps = kShrinkThreads / 32;
  const bool direct = p.k_split == 1;
  float* out = direct ? p.v : p.partial + static_cast<long long>(split) * p.tokens * S * R;

  for (int r = warp; r < rank; r += 2 * kWarps) {
    const int r2 = r + kWarps;
    const bool two = r2 < rank;
    const T* row0 = A + static_cast<long long>(r) * p.hidden;
    const T* row1 = A + static_cast<long long>(two ? r2 : r) * p.hidden;
    float acc0[TM], acc1[TM];
    SPW_UNROLL for (int t = 0; t < TM; ++t) acc0[t] = acc1[t] = 0.f;
#pragma unroll 2
    for (int k = k0 + lane * kV; k < k1; k += 32 * kV) {
      Vec<float, kV> w0, w1;
      w0.cast_load(row0 + k);
      w1.cast_load(row1 + k);
      SPW_UNROLL for (int t = 0; t < TM; ++t) {
        if (t < nt) {
          Vec<float, kV> xv;
          xv.cast_load(p.x + (t0 + t) * p.x_stride + k);
          SPW_UNROLL for (int i = 0; i < kV; ++i) {
            acc0[t] = fmaf(xv[i], w0[i], acc0[t]);
            acc1[t] = fmaf(xv[i], w1[i], acc1[t]);
          }
        }
      }
    }
    SPW_UNROLL for (int t = 0; t < TM; ++t) {
      const float s0 = warp_reduce_sum<32>(acc0[t]);
      const float s1 = warp_reduce_sum<32>(acc1[t]);
      if (lane == 0 && t < nt) {
        float* o = out + (static_cast<long long>(t0 + t) * S + slice) * R;
        o[r] = s0;
        if (two) o[r2] = s1;
      }
    }
  }
  if (direct) return;

  // Split-K: the last block of this (segment, tile, slice) sums the partials in split order.
  __shared__ int is_last;
  __threadfence();
  __syncthreads();
  int* counter = p.counters + (static_cast<long long>(blockIdx.x) * p.token_tiles + blockIdx.y) * S + slice;
  if (threadIdx.x == 0) {
    const int done = atomicAdd(counter, 1);
    is_last = done == p.k_split - 1;
    if (is_last) *counter = 0;  // ready for the next run (and graph replay)
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  const long long split_stride = static_cast<long long>(p.tokens) * S * R;
  for (int i = threadIdx.x; i < nt * rank; i += kShrinkThreads) {
    const int t = i / rank, r = i % rank;
    const long long idx = (static_cast<long long>(t0 + t) * S + slice) * R + r;
    float sum = 0.f;
    for (int s = 0; s < p.k_split; ++s) sum += __ldcg(p.partial + s * split_stride + idx);
    p.v[idx] = sum;
  }
}

template <typename T>
struct ExpandParams {
  SegmentView seg;
  const float* v;
  T* y;
  long long y_stride;
  int num_slices;
  int out_offset[kMaxSlices], out_size[kMaxSlices];
  long long b_slice_offset[kMaxSlices];  // stacked: rank_max * (out sizes of earlier slices)
  long long b_adapter_stride;            // stacked: rank_max * sum of out sizes
  const void* const* b_ptrs;
  const T* b_stacked;
  float scale;
  const float* adapter_scales;
};

template <typename T, int TM>
__global__ void __launch_bounds__(kExpandThreads) expand_kernel(ExpandParams<T> p) {
  int a, t0, nt, rank;
  if (!block_work<TM>(p.seg, &a, &t0, &nt, &rank)) return;
  const int S = p.num_slices, R = p.seg.rank_max;
  const int slice = blockIdx.z % S, chunk = blockIdx.z / S;
  const int out_size = p.out_size[slice];
  const int n = chunk * (kExpandThreads * kV) + threadIdx.x * kV;
  if (chunk * kExpandThreads * kV >= out_size) return;  // whole block past this slice

  __shared__ float vs[TM][kMaxRank];
  for (int i = threadIdx.x; i < nt * rank; i += kExpandThreads) {
    const int t = i / rank, r = i % rank;
    vs[t][r] = p.v[(static_cast<long long>(t0 + t) * S + slice) * R + r];
  }
  __syncthreads();
  if (n >= out_size) return;

  const T* B = p.b_ptrs ? static_cast<const T*>(p.b_ptrs[a * S + slice])
                        : p.b_stacked + a * p.b_adapter_stride + p.b_slice_offset[slice];
  float acc[TM][kV];
  SPW_UNROLL for (int t = 0; t < TM; ++t) SPW_UNROLL for (int j = 0; j < kV; ++j) acc[t][j] = 0.f;
  // Issue kRU independent 16-byte loads of B before the FMAs that use them: at decode batch
  // sizes there are few warps per SM, so bytes in flight per thread decide the bandwidth.
  constexpr int kRU = TM == 1 ? 16 : 4;
  for (int r0 = 0; r0 < rank; r0 += kRU) {
    Vec<T, kV> braw[kRU];
    SPW_UNROLL for (int u = 0; u < kRU; ++u)
      if (r0 + u < rank) braw[u].load(B + static_cast<long long>(r0 + u) * out_size + n);
    SPW_UNROLL for (int u = 0; u < kRU; ++u) {
      if (r0 + u < rank) {
        SPW_UNROLL for (int t = 0; t < TM; ++t) {
          const float vt = vs[t][r0 + u];
          SPW_UNROLL for (int j = 0; j < kV; ++j) acc[t][j] = fmaf(vt, to_float(braw[u][j]), acc[t][j]);
        }
      }
    }
  }
  const float s = p.scale * (p.adapter_scales ? p.adapter_scales[a] : 1.f);
  SPW_UNROLL for (int t = 0; t < TM; ++t) {
    if (t < nt) {
      T* yr = p.y + (t0 + t) * p.y_stride + p.out_offset[slice] + n;
      Vec<float, kV> yv;
      yv.cast_load(yr);
      SPW_UNROLL for (int j = 0; j < kV; ++j) yv[j] = fmaf(s, acc[t][j], yv[j]);
      yv.cast_store(yr);
    }
  }
}

SegmentView view(const Segments& s, const Problem& p) {
  return {s.seg_starts, s.adapter_ids, s.ranks, p.num_adapters, p.rank_max};
}

template <typename T>
void launch_shrink(const Plan& pl, const ShrinkArgs& a, void* ws, Stream stream) {
  const Problem& pb = pl.problem;
  ShrinkParams<T> p{};
  p.seg = view(a.seg, pb);
  p.x = static_cast<const T*>(a.x);
  p.x_stride = x_row_stride(pb);
  p.hidden = pb.hidden;
  p.num_slices = pb.num_slices;
  p.k_split = pl.k_split;
  p.k_chunk = pl.k_chunk;
  p.token_tiles = pl.token_tiles;
  p.tokens = pb.tokens;
  p.a_ptrs = a.A.ptrs;
  p.a_stacked = static_cast<const T*>(a.A.stacked);
  p.v = a.v;
  if (pl.k_split > 1) {
    p.partial = reinterpret_cast<float*>(static_cast<char*>(ws) + pl.partial_offset);
    p.counters = reinterpret_cast<int*>(static_cast<char*>(ws) + pl.counter_offset);
  }
  const dim3 grid(pb.segments, pl.token_tiles, pb.num_slices * pl.k_split);
  if (pl.token_tile == 1) shrink_kernel<T, 1><<<grid, kShrinkThreads, 0, stream>>>(p);
  else shrink_kernel<T, 8><<<grid, kShrinkThreads, 0, stream>>>(p);
  SPW_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_expand(const Plan& pl, const ExpandArgs& a, Stream stream) {
  const Problem& pb = pl.problem;
  ExpandParams<T> p{};
  p.seg = view(a.seg, pb);
  p.v = a.v;
  p.y = static_cast<T*>(a.y);
  p.y_stride = y_row_stride(pb);
  p.num_slices = pb.num_slices;
  long long prefix = 0;
  for (int s = 0; s < pb.num_slices; ++s) {
    p.out_offset[s] = pb.slices[s].out_offset;
    p.out_size[s] = pb.slices[s].out_size;
    p.b_slice_offset[s] = static_cast<long long>(pb.rank_max) * prefix;
    prefix += pb.slices[s].out_size;
  }
  p.b_adapter_stride = static_cast<long long>(pb.rank_max) * prefix;
  p.b_ptrs = a.B.ptrs;
  p.b_stacked = static_cast<const T*>(a.B.stacked);
  p.scale = a.scale;
  p.adapter_scales = a.adapter_scales;
  const dim3 grid(pb.segments, pl.token_tiles, pb.num_slices * pl.n_chunks);
  if (pl.token_tile == 1) expand_kernel<T, 1><<<grid, kExpandThreads, 0, stream>>>(p);
  else expand_kernel<T, 8><<<grid, kExpandThreads, 0, stream>>>(p);
  SPW_CUDA_CHECK_LAUNCH();
}

bool nothing_to_do(const Plan& pl) { return pl.used_segments == 0 || pl.problem.tokens == 0; }

}  // namespace

void shrink(const Plan& pl, const ShrinkArgs& a, void* ws, size_t ws_bytes, Stream stream) {
  check_shrink(pl, a, ws, ws_bytes);
  if (nothing_to_do(pl)) return;
  if (pl.problem.dtype == DType::f16) launch_shrink<half>(pl, a, ws, stream);
  else launch_shrink<bfloat16>(pl, a, ws, stream);
}

void expand(const Plan& pl, const ExpandArgs& a, Stream stream) {
  check_expand(pl, a);
  if (nothing_to_do(pl)) return;
  if (pl.problem.dtype == DType::f16) launch_expand<half>(pl, a, stream);
  else launch_expand<bfloat16>(pl, a, stream);
}

}  // namespace spw::sgmv

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
//   expand: 32..128 threads x 8 outputs (plan.n_chunk_cols); v of the tile sits in shared
//     memory; each thread issues 16 (decode) 16-byte loads of B rows before using them, then
//     does one 16-byte read-modify-write of y.
// Token tiles: 1 token per block for decode (x row stays in L1, no wasted lanes), 8 tokens for
// medium segments (each A/B load reused 8 times, CUDA cores), 64 tokens on tensor cores for
// long segments (WMMA; prefill is compute bound at rank >= 64 on CUDA cores).
// Adapter ids / ranks are re-checked on the device (out of range => segment skipped), so a
// stale device array can never read outside the weights.
#include <cuda_runtime.h>
#include <mma.h>

#include "kernels/common/cuda_check.h"
#include "kernels/common/launch.cuh"
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

// Programmatic dependent launch (spw::pdl_launch_dependents / pdl_wait, sm_90): shrink lets the
// expand that apply() launches behind it start early; expand prefetches its B rows into L2
// (inputs that were complete before shrink started) and waits for shrink's v only where it reads it.
__device__ SPW_FORCEINLINE void prefetch_l2(const void* ptr) {
#if defined(SPW_SIM)
  (void)ptr;
#else
  asm volatile("prefetch.global.L2 [%0];" ::"l"(ptr));
#endif
}

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

// Split-K: the last block of this (segment, tile, slice) sums the partials in split order.
template <typename T>
__device__ void finish_split_k(const ShrinkParams<T>& p, int t0, int nt, int rank, int slice) {
  const int S = p.num_slices, R = p.seg.rank_max;
  SPW_STATIC_SMEM(int, is_last, );
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
  for (int i = threadIdx.x; i < nt * rank; i += blockDim.x) {
    const int t = i / rank, r = i % rank;
    const long long idx = (static_cast<long long>(t0 + t) * S + slice) * R + r;
    float sum = 0.f;
    for (int s = 0; s < p.k_split; ++s) sum += __ldcg(p.partial + s * split_stride + idx);
    p.v[idx] = sum;
  }
}

template <typename T, int TM>
__global__ void __launch_bounds__(kShrinkThreads) shrink_kernel(ShrinkParams<T> p) {
  pdl_launch_dependents();
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
  if (!direct) finish_split_k(p, t0, nt, rank, slice);
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
  bool prefetch_b;  // launched behind shrink by apply(): prefetch B into L2 before waiting for v
};

template <typename T, int TM>
__global__ void __launch_bounds__(kExpandThreads) expand_kernel(ExpandParams<T> p) {
  int a, t0, nt, rank;
  if (!block_work<TM>(p.seg, &a, &t0, &nt, &rank)) return;
  const int S = p.num_slices, R = p.seg.rank_max;
  const int slice = blockIdx.z % S, chunk = blockIdx.z / S;
  const int out_size = p.out_size[slice];
  const int n = chunk * (blockDim.x * kV) + threadIdx.x * kV;
  if (chunk * blockDim.x * kV >= out_size) return;  // whole block past this slice
  const bool active = n < out_size;
  const T* B = p.b_ptrs ? static_cast<const T*>(p.b_ptrs[a * S + slice])
                        : p.b_stacked + a * p.b_adapter_stride + p.b_slice_offset[slice];
  // The first kRU rows of B are loaded before v is: B does not depend on shrink, so at decode
  // (rank <= 16 fits in one batch) every B byte is in flight before the v round trip, and
  // behind apply() while shrink is still running; later rows are prefetched into L2.
  constexpr int kRU = TM == 1 ? 16 : 4;
  Vec<T, kV> braw[kRU];
  SPW_UNROLL for (int u = 0; u < kRU; ++u)
    if (active && u < rank) braw[u].load(B + static_cast<long long>(u) * out_size + n);
  if (p.prefetch_b && active)
    for (int r = kRU; r < rank; ++r) prefetch_l2(B + static_cast<long long>(r) * out_size + n);
  pdl_wait();

  SPW_STATIC_SMEM(float, vs, [TM][kMaxRank]);
  for (int i = threadIdx.x; i < nt * rank; i += blockDim.x) {
    const int t = i / rank, r = i % rank;
    vs[t][r] = p.v[(static_cast<long long>(t0 + t) * S + slice) * R + r];
  }
  __syncthreads();
  if (!active) return;
  Vec<T, kV> yraw[TM];  // y is read early too: one more round trip hidden behind B
  SPW_UNROLL for (int t = 0; t < TM; ++t)
    if (t < nt) yraw[t].load(p.y + (t0 + t) * p.y_stride + p.out_offset[slice] + n);

  float acc[TM][kV];
  SPW_UNROLL for (int t = 0; t < TM; ++t) SPW_UNROLL for (int j = 0; j < kV; ++j) acc[t][j] = 0.f;
  for (int r0 = 0; r0 < rank; r0 += kRU) {
    if (r0 > 0) {
      SPW_UNROLL for (int u = 0; u < kRU; ++u)
        if (r0 + u < rank) braw[u].load(B + static_cast<long long>(r0 + u) * out_size + n);
    }
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
      Vec<float, kV> yv;
      SPW_UNROLL for (int j = 0; j < kV; ++j) yv[j] = fmaf(s, acc[t][j], to_float(yraw[t][j]));
      yv.cast_store(p.y + (t0 + t) * p.y_stride + p.out_offset[slice] + n);
    }
  }
}

// ---- tensor-core path (long segments): 64-token tiles, 4 warps, WMMA 16x16x16, fp32 accum ----
constexpr int kTcTokens = 64, kTcThreads = 128;
constexpr int kTcK = 32, kTcRanks = 64;     // shrink: hidden step, ranks per pass
constexpr int kTcCols = 128, kTcR = 16;     // expand: outputs per block, rank step

template <typename T>
__device__ SPW_FORCEINLINE Vec<T, kV> zero_vec() {
  Vec<T, kV> z;
  z.fill(from_float<T>(0.f));
  return z;
}

// v tile = x tile [64, hidden chunk] · A^T [hidden chunk, 64 ranks]: x and A tiles are staged
// in shared memory with 16-byte loads (zero past the segment, the rank and the chunk), warp w
// owns tokens 16w..16w+15 and all 64 ranks (4 accumulator fragments).
template <typename T>
__global__ void __launch_bounds__(kTcThreads) shrink_tc_kernel(ShrinkParams<T> p) {
  using namespace nvcuda;
  pdl_launch_dependents();
  int a, t0, nt, rank;
  if (!block_work<kTcTokens>(p.seg, &a, &t0, &nt, &rank)) return;
  const int slice = blockIdx.z % p.num_slices, split = blockIdx.z / p.num_slices;
  const int S = p.num_slices, R = p.seg.rank_max;
  const T* A = p.a_ptrs ? static_cast<const T*>(p.a_ptrs[a * S + slice])
                        : p.a_stacked + (static_cast<long long>(a) * S + slice) * R * p.hidden;
  const int k0 = split * p.k_chunk, k1 = min(p.hidden, k0 + p.k_chunk);
  const bool direct = p.k_split == 1;
  float* out = direct ? p.v : p.partial + static_cast<long long>(split) * p.tokens * S * R;
  constexpr int LD = kTcK + 8, LDC = kTcRanks + 4;  // padding against bank conflicts
  SPW_STATIC_SMEM(__align__(128) T, xs, [kTcTokens][LD]);
  SPW_STATIC_SMEM(__align__(128) T, as, [kTcRanks][LD]);
  SPW_STATIC_SMEM(__align__(128) float, cs, [kTcTokens][LDC]);
  const int warp = threadIdx.x / 32;

  for (int r0 = 0; r0 < rank; r0 += kTcRanks) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kTcRanks / 16];
    SPW_UNROLL for (int j = 0; j < kTcRanks / 16; ++j) wmma::fill_fragment(acc[j], 0.f);
    for (int k = k0; k < k1; k += kTcK) {
      for (int i = threadIdx.x; i < kTcTokens * kTcK / kV; i += kTcThreads) {
        const int row = i / (kTcK / kV), col = (i % (kTcK / kV)) * kV;
        const bool in_k = k + col < k1;
        Vec<T, kV> xv = zero_vec<T>(), av = zero_vec<T>();
        if (row < nt && in_k) xv.load(p.x + (t0 + row) * p.x_stride + k + col);
        if (r0 + row < rank && in_k) av.load(A + static_cast<long long>(r0 + row) * p.hidden + k + col);
        xv.store(&xs[row][col]);
        av.store(&as[row][col]);
      }
      __syncthreads();
      SPW_UNROLL for (int kk = 0; kk < kTcK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
        wmma::load_matrix_sync(fa, &xs[warp * 16][kk], LD);
        SPW_UNROLL for (int j = 0; j < kTcRanks / 16; ++j) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;  // (k, r) = as[r][k]
          wmma::load_matrix_sync(fb, &as[j * 16][kk], LD);
          wmma::mma_sync(acc[j], fa, fb, acc[j]);
        }
      }
      __syncthreads();
    }
    SPW_UNROLL for (int j = 0; j < kTcRanks / 16; ++j)
      wmma::store_matrix_sync(&cs[warp * 16][j * 16], acc[j], LDC, wmma::mem_row_major);
    __syncthreads();
    for (int i = threadIdx.x; i < nt * kTcRanks; i += kTcThreads) {
      const int t = i / kTcRanks, r = i % kTcRanks;
      if (r0 + r < rank) out[(static_cast<long long>(t0 + t) * S + slice) * R + r0 + r] = cs[t][r];
    }
    __syncthreads();
  }
  if (!direct) finish_split_k(p, t0, nt, rank, slice);
}

// y tile [64, 128] += scale · v tile [64, rank] · B [rank, 128]. v is fp32: it is split into
// hi + lo 16-bit parts (two MMAs), so the tensor cores see ~16 (bf16) / 22 (fp16) bits of it.
template <typename T>
__global__ void __launch_bounds__(kTcThreads) expand_tc_kernel(ExpandParams<T> p) {
  using namespace nvcuda;
  int a, t0, nt, rank;
  if (!block_work<kTcTokens>(p.seg, &a, &t0, &nt, &rank)) return;
  const int S = p.num_slices, R = p.seg.rank_max;
  const int slice = blockIdx.z % S, chunk = blockIdx.z / S;
  const int out_size = p.out_size[slice], n0 = chunk * kTcCols;
  if (n0 >= out_size) return;
  const T* B = p.b_ptrs ? static_cast<const T*>(p.b_ptrs[a * S + slice])
                        : p.b_stacked + a * p.b_adapter_stride + p.b_slice_offset[slice];
  pdl_wait();
  constexpr int LDV = kTcR + 8, LDB = kTcCols + 8, LDC = kTcCols + 4;
  SPW_STATIC_SMEM(__align__(128) T, vh, [kTcTokens][LDV]);
  SPW_STATIC_SMEM(__align__(128) T, vl, [kTcTokens][LDV]);
  SPW_STATIC_SMEM(__align__(128) T, bs, [kTcR][LDB]);
  SPW_STATIC_SMEM(__align__(128) float, cs, [kTcTokens][LDC]);
  const int warp = threadIdx.x / 32;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kTcCols / 16];
  SPW_UNROLL for (int j = 0; j < kTcCols / 16; ++j) wmma::fill_fragment(acc[j], 0.f);

  for (int r0 = 0; r0 < rank; r0 += kTcR) {
    for (int i = threadIdx.x; i < kTcTokens * kTcR; i += kTcThreads) {
      const int t = i / kTcR, r = i % kTcR;
      const float x = t < nt && r0 + r < rank ? p.v[(static_cast<long long>(t0 + t) * S + slice) * R + r0 + r] : 0.f;
      const T hi = from_float<T>(x);
      vh[t][r] = hi;
      vl[t][r] = from_float<T>(x - to_float(hi));
    }
    for (int i = threadIdx.x; i < kTcR * kTcCols / kV; i += kTcThreads) {
      const int r = i / (kTcCols / kV), c = (i % (kTcCols / kV)) * kV;
      Vec<T, kV> b = zero_vec<T>();
      if (r0 + r < rank && n0 + c < out_size) b.load(B + static_cast<long long>(r0 + r) * out_size + n0 + c);
      b.store(&bs[r][c]);
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fh, fl;
    wmma::load_matrix_sync(fh, &vh[warp * 16][0], LDV);
    wmma::load_matrix_sync(fl, &vl[warp * 16][0], LDV);
    SPW_UNROLL for (int j = 0; j < kTcCols / 16; ++j) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
      wmma::load_matrix_sync(fb, &bs[0][j * 16], LDB);
      wmma::mma_sync(acc[j], fh, fb, acc[j]);
      wmma::mma_sync(acc[j], fl, fb, acc[j]);
    }
    __syncthreads();
  }
  SPW_UNROLL for (int j = 0; j < kTcCols / 16; ++j)
    wmma::store_matrix_sync(&cs[warp * 16][j * 16], acc[j], LDC, wmma::mem_row_major);
  __syncthreads();
  const float s = p.scale * (p.adapter_scales ? p.adapter_scales[a] : 1.f);
  for (int i = threadIdx.x; i < kTcTokens * kTcCols / kV; i += kTcThreads) {
    const int t = i / (kTcCols / kV), c = (i % (kTcCols / kV)) * kV;
    if (t < nt && n0 + c < out_size) {
      T* yr = p.y + (t0 + t) * p.y_stride + p.out_offset[slice] + n0 + c;
      Vec<float, kV> yv;
      yv.cast_load(yr);
      SPW_UNROLL for (int j = 0; j < kV; ++j) yv[j] = fmaf(s, cs[t][c + j], yv[j]);
      yv.cast_store(yr);
    }
  }
}

// With `pdl`, programmatic stream serialization (spw::launch_pdl): the kernel may start while
// the previous kernel in the stream finishes; it calls pdl_wait() before reading that one's output.
template <typename P>
void launch_kernel(void (*kernel)(P), dim3 grid, int threads, Stream stream, bool pdl, const P& p) {
  SPW_CUDA_CHECK(spw::launch_pdl(kernel, grid, threads, 0, stream, pdl, p));
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
  switch (pl.path) {
    case Path::gemv: spw::launch(shrink_kernel<T, 1>, grid, kShrinkThreads, 0, stream, p); break;
    case Path::tiled: spw::launch(shrink_kernel<T, 8>, grid, kShrinkThreads, 0, stream, p); break;
    case Path::tensor_core: spw::launch(shrink_tc_kernel<T>, grid, kTcThreads, 0, stream, p); break;
    default: fail("sgmv::shrink: plan.path = {}: not a kernel path (was the plan made by sgmv::plan?)",
                  static_cast<int>(pl.path));
  }
  SPW_CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch_expand(const Plan& pl, const ExpandArgs& a, Stream stream, bool pdl) {
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
  p.prefetch_b = pdl;
  SPW_CHECK(pl.path == Path::tensor_core ? pl.n_chunk_cols == kTcCols
                                         : pl.n_chunk_cols % (32 * kV) == 0 && pl.n_chunk_cols <= kExpandThreads * kV,
            "sgmv::expand: plan.n_chunk_cols = {}: does not match the kernel (was the plan made by sgmv::plan?)",
            pl.n_chunk_cols);
  const dim3 grid(pb.segments, pl.token_tiles, pb.num_slices * pl.n_chunks);
  switch (pl.path) {
    case Path::gemv: launch_kernel(expand_kernel<T, 1>, grid, pl.n_chunk_cols / kV, stream, pdl, p); break;
    case Path::tiled: launch_kernel(expand_kernel<T, 8>, grid, pl.n_chunk_cols / kV, stream, pdl, p); break;
    case Path::tensor_core: launch_kernel(expand_tc_kernel<T>, grid, kTcThreads, stream, pdl, p); break;
    default: fail("sgmv::expand: plan.path = {}: not a kernel path (was the plan made by sgmv::plan?)",
                  static_cast<int>(pl.path));
  }
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
  if (pl.problem.dtype == DType::f16) launch_expand<half>(pl, a, stream, false);
  else launch_expand<bfloat16>(pl, a, stream, false);
}

void apply(const Plan& pl, const ShrinkArgs& s, const ExpandArgs& e, void* ws, size_t ws_bytes, Stream stream) {
  check_apply(pl, s, e, ws, ws_bytes);
  if (nothing_to_do(pl)) return;
  if (pl.problem.dtype == DType::f16) {
    launch_shrink<half>(pl, s, ws, stream);
    launch_expand<half>(pl, e, stream, pl.pdl);
  } else {
    launch_shrink<bfloat16>(pl, s, ws, stream);
    launch_expand<bfloat16>(pl, e, stream, pl.pdl);
  }
}

}  // namespace spw::sgmv

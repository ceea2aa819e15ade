// Split-KV decode attention kernels (Flash-Decoding) and the deterministic LSE merge.
//
// Design (see decode_attention.h): one CTA of 128 threads per work item (request, kv head,
// head sub-group, KV chunk). Why it is fast:
//  - KV is read once per CTA for the whole GQA group (up to 8 query heads): the q rows live in
//    registers, each K/V row in shared memory is used by every head of the group.
//  - K and V tiles (16 KB per stage, 64/32/16 rows for head_dim 64/128/256) stream through a
//    3-stage cp.async ring with 16-byte copies, so two tiles are in flight while one is used.
//  - a row of head_dim is owned by head_dim/8 lanes (one 16-byte vector each), so q.k is 8
//    FMAs + a log2(head_dim/8)-step xor-shuffle; head_dim/8 lanes x (128 / (head_dim/8)) row
//    groups give every thread 4 rows per tile.
//  - softmax is online in the log2 domain (kernels/common/softmax_state.h): one max update per
//    4 rows, exp2 only. fp32 accumulation everywhere.
//  - the row groups' states are merged through shared memory in a fixed order; the chunk's
//    output is written directly (unsplit request) or as an fp32 partial + LSE that the merge
//    kernel combines in chunk order, so the result is bitwise reproducible.
// Templates: head_dim {64, 128, 256} x dtype {half, bfloat16} = 6 attention kernels, plus
// merge kernels over (input, output) element types.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/common/cp_async.cuh"
#include "kernels/common/cuda_check.h"
#include "kernels/common/dispatch.cuh"
#include "kernels/common/dtype.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/softmax_state.h"
#include "kernels/common/vec.h"
#include "kernels/decode_attention/decode_attention.h"

namespace spw::decode_attention {
namespace {

constexpr int kThreads = 128;
constexpr int kStages = 3;
constexpr int kStageBytes = 16384;                      // K tile + V tile
constexpr int kSmemBytes = kStages * kStageBytes;       // 48 KB: no opt-in needed
constexpr int kH = kMaxHeadsPerCta;

template <int D>
struct Cfg {
  static constexpr int kTx = D / 8;                    // lanes per KV row (16 B each)
  static constexpr int kTy = kThreads / kTx;           // rows in parallel
  static constexpr int kTileRows = kStageBytes / (4 * D);  // K and V rows of 2 bytes
  static constexpr int kRows = kTileRows / kTy;        // rows per thread per tile
  static constexpr int kLoads = kTileRows * kTx / kThreads;  // 16-byte copies per thread per tensor
  static_assert(kRows == 4 && kLoads == 4, "tile shape");
  static_assert(kTy * kH * D * 4 + 2 * kTy * kH * 4 <= kSmemBytes, "reduction fits in the KV ring");
};

struct Params {
  const void* q;
  const void* k;  // k_pages or contiguous k
  const void* v;
  const int32_t* indptr;
  const int32_t* indices;
  void* o;
  float* lse;
  const WorkItem* items;
  const RequestSplit* splits;
  float* partial_o;
  float* partial_lse;
  int qo_heads, kv_heads, page_size, kv_len_max;
  int paged;
  float sm_scale, soft_cap;
};

template <typename T>
__device__ SPW_FORCEINLINE void load8(const T* p, float* f) {
  Vec<T, 8> x;
  x.load(p);
SPW_UNROLL
  for (int i = 0; i < 8; ++i) f[i] = to_float(x[i]);
}
template <>
__device__ SPW_FORCEINLINE void load8<float>(const float* p, float* f) {
  Vec<float, 4> a, b;
  a.load(p);
  b.load(p + 4);
SPW_UNROLL
  for (int i = 0; i < 4; ++i) f[i] = a[i], f[4 + i] = b[i];
}
template <typename T>
__device__ SPW_FORCEINLINE void store8(T* p, const float* f) {
  Vec<T, 8> x;
SPW_UNROLL
  for (int i = 0; i < 8; ++i) x[i] = from_float<T>(f[i]);
  x.store(p);
}
template <>
__device__ SPW_FORCEINLINE void store8<float>(float* p, const float* f) {
  Vec<float, 4> a, b;
SPW_UNROLL
  for (int i = 0; i < 4; ++i) a[i] = f[i], b[i] = f[4 + i];
  a.store(p);
  b.store(p + 4);
}

template <int D, typename T>
__global__ void __launch_bounds__(kThreads) attention_kernel(Params p) {
  using C = Cfg<D>;
  SPW_DYNAMIC_SMEM(16, smem);
  T* ring = reinterpret_cast<T*>(smem);  // stage s: K rows [kTileRows][D], then V rows
  const WorkItem w = p.items[blockIdx.x];
  const int tx = threadIdx.x % C::kTx, ty = threadIdx.x / C::kTx;
  // CTA head h: query head qo_head_begin + h % per of request w.request + h / per. Several
  // requests share a CTA only where plan() was told each extends the previous one by one row
  // (extends_previous): rows are read through the last request's pages, and head h sees rows
  // j < len0 + h / per, i.e. j - len0 < h / per, i.e. h >= per * (j - len0 + 1) for j >= len0.
  // (No per-head array: the kernel has no registers or shared memory to spare.)
  const int per = w.qo_head_count, hc = per * w.request_count;
  const int b = w.request + w.request_count - 1;  // the request whose pages (or rows) are read
  const int len0 = p.splits[w.request].kv_len;
  const T* K = static_cast<const T*>(p.k);
  const T* V = static_cast<const T*>(p.v);
  const int page_base = p.paged ? p.indptr[b] : 0;

  auto row_offset = [&](int j) -> long long {
    long long row;
    if (p.paged) {
      const int page = p.indices[page_base + j / p.page_size];
      row = static_cast<long long>(page) * p.page_size + j % p.page_size;
    } else {
      row = static_cast<long long>(b) * p.kv_len_max + j;
    }
    return (row * p.kv_heads + w.kv_head) * D;
  };
  auto load_tile = [&](int stage, int t0) {
    T* sk = ring + stage * (2 * C::kTileRows * D);
    T* sv = sk + C::kTileRows * D;
SPW_UNROLL
    for (int i = 0; i < C::kLoads; ++i) {
      const int c = threadIdx.x + i * kThreads;
      const int r = c / C::kTx, col = (c % C::kTx) * 8;
      const int j = t0 + r;
      const bool valid = j < w.kv_end;
      const long long off = valid ? row_offset(j) + col : 0;
      cp_async16(sk + r * D + col, K + off, valid);
      cp_async16(sv + r * D + col, V + off, valid);
    }
  };

  // q of the CTA's heads: 8 elements per lane per head.
  float q[kH][8];
SPW_UNROLL
  for (int h = 0; h < kH; ++h)
    if (h < hc)
      load8(static_cast<const T*>(p.q) +
                (static_cast<long long>(w.request + h / per) * p.qo_heads + w.qo_head_begin + h % per) * D + tx * 8,
            q[h]);
  float acc[kH][8];
  SoftmaxState st[kH];
SPW_UNROLL
  for (int h = 0; h < kH; ++h)
SPW_UNROLL
    for (int e = 0; e < 8; ++e) acc[h][e] = 0.f;

  const int tiles = (w.kv_end - w.kv_begin + C::kTileRows - 1) / C::kTileRows;
SPW_UNROLL
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tiles) load_tile(s, w.kv_begin + s * C::kTileRows);
    cp_async_commit();
  }
  for (int t = 0; t < tiles; ++t) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // tile t landed for everyone; tile t-1's stage is free
    const int nt = t + kStages - 1;
    if (nt < tiles) load_tile(nt % kStages, w.kv_begin + nt * C::kTileRows);
    cp_async_commit();

    const T* sk = ring + (t % kStages) * (2 * C::kTileRows * D);
    const T* sv = sk + C::kTileRows * D;
    const int t0 = w.kv_begin + t * C::kTileRows;
    // Heads h < skip have ended before this tile (their own CTA, whose chunk ends there, never
    // sees it): they skip it. Only in shared CTAs: otherwise t0 < kv_end <= len0.
    const int skip = t0 >= len0 ? per * (t0 - len0 + 1) : 0;
    float s[C::kRows][kH];
SPW_UNROLL
    for (int i = 0; i < C::kRows; ++i) {
      const int r = ty + i * C::kTy;
      float kf[8];
      load8(sk + r * D + tx * 8, kf);
      const int j = t0 + r;
      const int first_valid_head = j >= w.kv_end ? kH : j >= len0 ? per * (j - len0 + 1) : 0;
SPW_UNROLL
      for (int h = 0; h < kH; ++h) {
        if (h >= hc) continue;  // uniform over the CTA: shuffles stay converged
        float dot = 0.f;
SPW_UNROLL
        for (int e = 0; e < 8; ++e) dot = fmaf(q[h][e], kf[e], dot);
SPW_UNROLL
        for (int off = C::kTx / 2; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        s[i][h] = h >= first_valid_head ? soft_cap(dot * p.sm_scale, p.soft_cap) * kLog2e : -INFINITY;
      }
    }
SPW_UNROLL
    for (int h = 0; h < kH; ++h) {
      // A tile past the end of the head's request changes nothing: skipped, as its own CTA
      // (whose chunk ends there) never sees it.
      if (h >= hc || h < skip) continue;
      float m_blk = -INFINITY;
SPW_UNROLL
      for (int i = 0; i < C::kRows; ++i) m_blk = fmaxf(m_blk, s[i][h]);
      const float m_new = fmaxf(st[h].m, m_blk);
      if (m_new == -INFINITY) continue;  // nothing valid seen yet
      const float rescale = fast_exp2(st[h].m - m_new);
      st[h].d *= rescale;
      st[h].m = m_new;
SPW_UNROLL
      for (int e = 0; e < 8; ++e) acc[h][e] *= rescale;
SPW_UNROLL
      for (int i = 0; i < C::kRows; ++i) s[i][h] = fast_exp2(s[i][h] - m_new);  // now the weight
    }
SPW_UNROLL
    for (int i = 0; i < C::kRows; ++i) {
      float vf[8];
      load8(sv + (ty + i * C::kTy) * D + tx * 8, vf);
SPW_UNROLL
      for (int h = 0; h < kH; ++h) {
        if (h >= hc || h < skip || st[h].m == -INFINITY) continue;
        st[h].d += s[i][h];
SPW_UNROLL
        for (int e = 0; e < 8; ++e) acc[h][e] = fmaf(s[i][h], vf[e], acc[h][e]);
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is reused for the row-group reduction

  float* red_o = reinterpret_cast<float*>(smem);      // [kTy][kH][D]
  float* red_m = red_o + C::kTy * kH * D;            // [kTy][kH]
  float* red_d = red_m + C::kTy * kH;
SPW_UNROLL
  for (int h = 0; h < kH; ++h) {
    if (h >= hc) continue;
    store8(red_o + (ty * kH + h) * D + tx * 8, acc[h]);
    if (tx == 0) red_m[ty * kH + h] = st[h].m, red_d[ty * kH + h] = st[h].d;
  }
  __syncthreads();
  for (int h = ty; h < hc; h += C::kTy) {
    SoftmaxState tot;
    float o[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    for (int y = 0; y < C::kTy; ++y) {  // fixed order: deterministic
      const SoftmaxState sy{red_m[y * kH + h], red_d[y * kH + h]};
      float a, c;
      tot.merge(sy, &a, &c);
      float oy[8];
      load8(red_o + (y * kH + h) * D + tx * 8, oy);
SPW_UNROLL
      for (int e = 0; e < 8; ++e) o[e] = o[e] * a + (c != 0.f ? oy[e] * c : 0.f);
    }
    const float inv = tot.inv_sum();
SPW_UNROLL
    for (int e = 0; e < 8; ++e) o[e] *= inv;
    const int req = w.request + h / per, qh = w.qo_head_begin + h % per;
    const RequestSplit sp = p.splits[req];
    if (sp.num_chunks <= 1) {
      store8(static_cast<T*>(p.o) + (static_cast<long long>(req) * p.qo_heads + qh) * D + tx * 8, o);
      if (p.lse && tx == 0) p.lse[static_cast<long long>(req) * p.qo_heads + qh] = tot.lse();
    } else {
      const long long slot = sp.slot_base + w.chunk;
      store8(p.partial_o + (slot * p.qo_heads + qh) * D + tx * 8, o);
      if (tx == 0) p.partial_lse[slot * p.qo_heads + qh] = tot.lse();
    }
  }
}

// Merges n states of one row: v_i = v + i * v_stride, lse_i = lse[i * lse_stride]. `lanes`
// threads share the row, 8 elements each per step. Fixed order over i: deterministic.
template <typename Tin, typename Tout>
__device__ void merge_row(const Tin* v, long long v_stride, const float* lse, long long lse_stride, int n, int d,
                          int lane, int lanes, Tout* out, float* lse_out) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = fmaxf(m, lse[i * lse_stride]);
  float sum = 0.f;
  if (m != -INFINITY)
    for (int i = 0; i < n; ++i) sum += fast_exp2((lse[i * lse_stride] - m) * kLog2e);
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  for (int e0 = lane * 8; e0 < d; e0 += lanes * 8) {
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (m != -INFINITY)
      for (int i = 0; i < n; ++i) {
        const float wgt = fast_exp2((lse[i * lse_stride] - m) * kLog2e) * inv;
        if (wgt == 0.f) continue;  // an empty state may hold anything
        float x[8];
        load8(v + i * v_stride + e0, x);
SPW_UNROLL
        for (int e = 0; e < 8; ++e) acc[e] = fmaf(wgt, x[e], acc[e]);
      }
    store8(out + e0, acc);
  }
  if (lse_out && lane == 0) *lse_out = sum > 0.f ? m + fast_log2(sum) * kLn2 : -INFINITY;
}

constexpr int kMergeLanes = 32;  // one warp per row
constexpr int kMergeRows = kThreads / kMergeLanes;

template <typename T>
__global__ void __launch_bounds__(kThreads) merge_chunks_kernel(Params p, const RequestSplit* splits, int batch, int d) {
  const int row = blockIdx.x * kMergeRows + threadIdx.x / kMergeLanes;
  if (row >= batch * p.qo_heads) return;
  const int b = row / p.qo_heads, h = row % p.qo_heads;
  const RequestSplit sp = splits[b];
  if (sp.num_chunks <= 1) return;  // written by the attention kernel
  merge_row<float, T>(p.partial_o + (static_cast<long long>(sp.slot_base) * p.qo_heads + h) * d,
                      static_cast<long long>(p.qo_heads) * d, p.partial_lse + static_cast<long long>(sp.slot_base) * p.qo_heads + h,
                      p.qo_heads, sp.num_chunks, d, threadIdx.x % kMergeLanes, kMergeLanes,
                      static_cast<T*>(p.o) + static_cast<long long>(row) * d, p.lse ? p.lse + row : nullptr);
}

template <typename Tin, typename Tout>
__global__ void __launch_bounds__(kThreads) merge_states_kernel(const Tin* v_in, const float* lse_in, Tout* v_out,
                                                                float* lse_out, int rows, int n, int d) {
  const int row = blockIdx.x * kMergeRows + threadIdx.x / kMergeLanes;
  if (row >= rows) return;
  merge_row<Tin, Tout>(v_in + static_cast<long long>(row) * d, static_cast<long long>(rows) * d, lse_in + row, rows, n, d,
                       threadIdx.x % kMergeLanes, kMergeLanes, v_out + static_cast<long long>(row) * d,
                       lse_out ? lse_out + row : nullptr);
}

template <int D, typename T>
void launch(const Plan& pl, const Params& prm, const RequestSplit* splits, Stream stream) {
  spw::launch(attention_kernel<D, T>, pl.num_items, kThreads, kSmemBytes, stream, prm);
  SPW_CUDA_CHECK_LAUNCH();
  if (pl.needs_merge) {
    const int rows = pl.problem.batch * pl.problem.qo_heads;
    spw::launch(merge_chunks_kernel<T>, ceil_div(rows, kMergeRows), kThreads, 0, stream, prm, splits, pl.problem.batch,
                D);
    SPW_CUDA_CHECK_LAUNCH();
  }
}

template <typename Tin>
void merge_dispatch_out(const MergeProblem& p, const void* v_in, const float* lse_in, void* v_out, float* lse_out,
                        Stream stream) {
  const int blocks = ceil_div(p.rows, kMergeRows);
  const Tin* in = static_cast<const Tin*>(v_in);
  switch (p.out_dtype) {
    case DType::f32:
      spw::launch(merge_states_kernel<Tin, float>, blocks, kThreads, 0, stream, in, lse_in, static_cast<float*>(v_out),
                  lse_out, p.rows, p.num_states, p.head_dim);
      break;
    case DType::f16:
      spw::launch(merge_states_kernel<Tin, half>, blocks, kThreads, 0, stream, in, lse_in, static_cast<half*>(v_out),
                  lse_out, p.rows, p.num_states, p.head_dim);
      break;
    case DType::bf16:
      spw::launch(merge_states_kernel<Tin, bfloat16>, blocks, kThreads, 0, stream, in, lse_in,
                  static_cast<bfloat16*>(v_out), lse_out, p.rows, p.num_states, p.head_dim);
      break;
  }
  SPW_CUDA_CHECK_LAUNCH();
}

}  // namespace

void run(const Plan& pl, const Args& a, void* ws, size_t ws_bytes, Stream stream) {
  check_args(pl, a, ws, ws_bytes);
  const Problem& pr = pl.problem;
  auto* base = static_cast<unsigned char*>(ws);
  // The work list travels from the Plan's (pinned) host memory: a graph replays this copy.
  if (!a.metadata_in_workspace)
    SPW_CUDA_CHECK(spw::copy_async(base, pl.host_meta.get(), pl.meta_bytes, cudaMemcpyHostToDevice, stream));
  const bool paged = pr.layout == Layout::paged;
  Params prm{a.q,
             paged ? a.k_pages : a.k,
             paged ? a.v_pages : a.v,
             a.indptr,
             a.indices,
             a.o,
             a.lse,
             reinterpret_cast<const WorkItem*>(base + pl.items_offset),
             reinterpret_cast<const RequestSplit*>(base + pl.splits_offset),
             reinterpret_cast<float*>(base + pl.partial_o_offset),
             reinterpret_cast<float*>(base + pl.partial_lse_offset),
             pr.qo_heads,
             pr.kv_heads,
             pr.page_size,
             pr.kv_len_max,
             paged ? 1 : 0,
             pl.sm_scale,
             pr.soft_cap};
  const auto* splits = reinterpret_cast<const RequestSplit*>(base + pl.splits_offset);
  dispatch_dtype_head_dim(pr.dtype, pr.head_dim, "decode_attention::run",
                          [&]<typename T, int D>() { launch<D, T>(pl, prm, splits, stream); });
}

void merge_states(const MergeProblem& p, const void* v_in, const float* lse_in, void* v_out, float* lse_out,
                  Stream stream) {
  check_merge(p, v_in, lse_in, v_out);
  if (p.rows == 0) return;
  switch (p.in_dtype) {
    case DType::f32: merge_dispatch_out<float>(p, v_in, lse_in, v_out, lse_out, stream); break;
    case DType::f16: merge_dispatch_out<half>(p, v_in, lse_in, v_out, lse_out, stream); break;
    case DType::bf16: merge_dispatch_out<bfloat16>(p, v_in, lse_in, v_out, lse_out, stream); break;
  }
}

}  // namespace spw::decode_attention

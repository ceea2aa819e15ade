// Small memory-bound ops of the CUDA backend, one launch each. Rows map to blocks, 16-byte
// vector accesses along the row, fp32 math; the only reductions are per row (block_reduce).
#include <cuda_runtime.h>

#include "kernels/common/cuda_check.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/vec.h"
#include "kernels/small_ops/small_ops.h"

namespace spw::small_ops {
namespace {

constexpr int kThreads = 256;

// One block per row: pass 1 sums squares (and writes x + residual back), pass 2 scales.
template <typename T>
__global__ void rmsnorm_kernel(const T* __restrict__ x, T* __restrict__ residual,
                               const T* __restrict__ weight, T* __restrict__ out, int hidden, float eps) {
  constexpr int V = kVec16<T>;
  SPW_STATIC_SMEM(float, scratch, [32]);
  const size_t row = blockIdx.x;
  const T* xr = x + row * hidden;
  T* rr = residual ? residual + row * hidden : nullptr;
  float ss = 0.f;
  for (int j = threadIdx.x * V; j < hidden; j += blockDim.x * V) {
    Vec<float, V> h;
    h.cast_load(xr + j);
    if (rr) {
      Vec<float, V> r;
      r.cast_load(rr + j);
      SPW_UNROLL for (int i = 0; i < V; ++i) h[i] += r[i];
      h.cast_store(rr + j);
      // Normalise the value as stored, so the next layer's residual and this output agree.
      h.cast_load(rr + j);
    }
    SPW_UNROLL for (int i = 0; i < V; ++i) ss += h[i] * h[i];
  }
  const float inv = rsqrtf(block_reduce_sum(ss, scratch) / hidden + eps);
  for (int j = threadIdx.x * V; j < hidden; j += blockDim.x * V) {
    Vec<float, V> h, w;
    h.cast_load(rr ? rr + j : xr + j);
    w.cast_load(weight + j);
    SPW_UNROLL for (int i = 0; i < V; ++i) h[i] = h[i] * inv * w[i];
    h.cast_store(out + row * hidden + j);
  }
}

// One thread per (token, head, pair); q heads first, then k heads.
template <typename T>
__global__ void rope_kernel(T* q, T* k, long long q_stride, long long k_stride, int q_heads, int kv_heads,
                            const int32_t* __restrict__ positions, RopeParams p, int tokens) {
  const int pairs = p.head_dim / 2;
  const long long total = static_cast<long long>(tokens) * (q_heads + kv_heads) * pairs;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % pairs);
    const int h = static_cast<int>((idx / pairs) % (q_heads + kv_heads));
    const int t = static_cast<int>(idx / (static_cast<long long>(pairs) * (q_heads + kv_heads)));
    T* row = h < q_heads ? q + t * q_stride + static_cast<long long>(h) * p.head_dim
                         : k + t * k_stride + static_cast<long long>(h - q_heads) * p.head_dim;
    int a, b;
    rope_pair(i, p, &a, &b);
    float x0 = to_float(row[a]), x1 = to_float(row[b]);
    rope_rotate(&x0, &x1, static_cast<float>(positions[t]) * rope_inv_freq(i, p));
    row[a] = from_float<T>(x0);
    row[b] = from_float<T>(x1);
  }
}

template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gate_up, T* __restrict__ out, int rows, int inter) {
  constexpr int V = kVec16<T>;
  const long long per_row = inter / V, total = per_row * rows;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = idx / per_row, j = (idx % per_row) * V;
    Vec<float, V> g, u;
    g.cast_load(gate_up + r * 2 * inter + j);
    u.cast_load(gate_up + r * 2 * inter + inter + j);
    SPW_UNROLL for (int i = 0; i < V; ++i) g[i] = g[i] / (1.f + __expf(-g[i])) * u[i];
    g.cast_store(out + r * inter + j);
  }
}

template <typename T>
__global__ void embedding_kernel(const int32_t* __restrict__ ids, const T* __restrict__ table, T* __restrict__ out,
                                 int vocab, int hidden, int* error_flag) {
  constexpr int V = kVec16<T>;
  const int id = ids[blockIdx.x];
  const bool ok = id >= 0 && id < vocab;
  if (!ok && threadIdx.x == 0 && error_flag) *error_flag = 1;
  for (int j = threadIdx.x * V; j < hidden; j += blockDim.x * V) {
    Vec<T, V> v;
    if (ok) v.load(table + static_cast<size_t>(id) * hidden + j);
    else v.fill(from_float<T>(0.f));
    v.store(out + static_cast<size_t>(blockIdx.x) * hidden + j);
  }
}

struct ArgMaxPair {
  float value;
  int index;
};
// The pair that ranks first by spw::ranks_before (top_tokens.h): the larger value; on equal
// values the lower index, so results are order-independent; NaN after every number (the CPU's
// `x[j] > x[best]` never picks one). A total order, so the block reduction is associative.
struct ArgMaxOp {
  __device__ ArgMaxPair operator()(const ArgMaxPair& a, const ArgMaxPair& b) const {
    return ranks_before(a.value, a.index, b.value, b.index) ? a : b;
  }
};

// ArgMaxOp over the warp: every lane gets the result (the order is total, so any tree of
// pairings gives the same pair).
__device__ SPW_FORCEINLINE ArgMaxPair warp_argmax(ArgMaxPair p) {
SPW_UNROLL
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const ArgMaxPair o{__shfl_xor_sync(0xffffffffu, p.value, offset), __shfl_xor_sync(0xffffffffu, p.index, offset)};
    p = ArgMaxOp{}(p, o);
  }
  return p;
}

__global__ void argmax_kernel(const float* __restrict__ logits, int vocab, int32_t* out) {
  static_assert(kThreads % kWarpSize == 0 && kThreads / kWarpSize <= kWarpSize, "one warp reduces the warps");
  SPW_STATIC_SMEM(ArgMaxPair, per_warp, [kThreads / kWarpSize]);
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  ArgMaxPair best{-INFINITY, vocab};
  for (int j = threadIdx.x; j < vocab; j += kThreads) best = ArgMaxOp{}(best, ArgMaxPair{row[j], j});
  best = warp_argmax(best);
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  if (lane == 0) per_warp[warp] = best;
  __syncthreads();
  if (warp != 0) return;
  ArgMaxPair r = warp_argmax(lane < kThreads / kWarpSize ? per_warp[lane] : ArgMaxPair{-INFINITY, vocab});
  // The CPU reference starts from index 0 and keeps it when it is NaN (nothing compares
  // greater); a row of NaN only falls back to 0 the same way.
  if (threadIdx.x == 0) out[blockIdx.x] = r.index < vocab && !isnan(row[0]) ? r.index : 0;
}

// One block per row. Each thread keeps its kMaxTopK best (value, index) sorted in registers
// (every index fixed at compile time, so nothing goes to local memory); the block's top k are
// then k rounds of a block-wide ArgMaxOp over the threads' heads, the winner's thread popping
// its head. A NaN-padded slot (index kNoToken) ranks after every element of the row.
constexpr int kNoToken = 0x7fffffff;

__global__ void topk_kernel(const float* __restrict__ logits, int vocab, int k, TopToken* __restrict__ out) {
  constexpr int K = kMaxTopK, kWarps = kThreads / kWarpSize;
  SPW_STATIC_SMEM(ArgMaxPair, per_warp, [2][kWarps]);  // double-buffered: one __syncthreads per round
  SPW_STATIC_SMEM(ArgMaxPair, win, [K]);  // the block's top k, best first
  SPW_STATIC_SMEM(float, scratch, [kWarpSize]);
  const float* row = logits + static_cast<size_t>(blockIdx.x) * vocab;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;

  float val[K];
  int idx[K];
  SPW_UNROLL for (int p = 0; p < K; ++p) val[p] = NAN, idx[p] = kNoToken;
  for (int j = threadIdx.x; j < vocab; j += kThreads) {
    const float v = row[j];
    if (!ranks_before(v, j, val[K - 1], idx[K - 1])) continue;
    bool before[K];  // (v, j) ranks before slot p: it lands at the first such p
    SPW_UNROLL for (int p = 0; p < K; ++p) before[p] = ranks_before(v, j, val[p], idx[p]);
    SPW_UNROLL for (int p = K - 1; p > 0; --p) {
      const bool shift = before[p - 1], here = before[p] && !shift;
      val[p] = shift ? val[p - 1] : here ? v : val[p];
      idx[p] = shift ? idx[p - 1] : here ? j : idx[p];
    }
    if (before[0]) val[0] = v, idx[0] = j;
  }

  float m = NAN;  // the largest non-NaN logit (NaN if there is none)
  for (int r = 0; r < k; ++r) {
    ArgMaxPair best = warp_argmax(ArgMaxPair{val[0], idx[0]});
    if (lane == 0) per_warp[r & 1][warp] = best;
    __syncthreads();
    best = warp_argmax(lane < kWarps ? per_warp[r & 1][lane] : ArgMaxPair{NAN, kNoToken});
    if (r == 0) m = best.value;
    if (threadIdx.x == 0) win[r] = best;
    if (best.index == idx[0]) {  // indices are unique: this thread held the winner
      SPW_UNROLL for (int p = 0; p < K - 1; ++p) val[p] = val[p + 1], idx[p] = idx[p + 1];
      val[K - 1] = NAN;
      idx[K - 1] = kNoToken;
    }
  }

  // The softmax denominator; m is the same in every thread, so all take the same branch.
  const bool finite_max = isfinite(m);
  float sum = 0.f;
  if (finite_max) {
    for (int j = threadIdx.x; j < vocab; j += kThreads) {
      const float v = row[j];
      if (!isnan(v)) sum += expf(v - m);
    }
    sum = block_reduce_sum(sum, scratch);
  }
  if (threadIdx.x != 0) return;  // thread 0 wrote win
  const bool finite = finite_max && sum > 0.f;
  TopToken* o = out + static_cast<size_t>(blockIdx.x) * k;
  // Greedy's rule (top_tokens): when row[0] is NaN, token 0 first, then the others in order.
  const bool nan0 = isnan(row[0]);
  int n = 0;
  if (nan0) o[n++] = TopToken{0, 0.f};
  for (int i = 0; n < k; ++i) {
    const ArgMaxPair w = win[i];
    if (nan0 && w.index == 0) continue;
    o[n++] = TopToken{w.index, finite && !isnan(w.value) ? expf(w.value - m) / sum : 0.f};
  }
}

int grid_for(long long work, int threads) {
  return static_cast<int>(std::min<long long>(ceil_div<long long>(work, threads), 65535LL * 4));
}

}  // namespace

void rmsnorm(const RmsNormArgs& a, Stream stream) {
  check(a);
  if (a.rows == 0) return;
  if (a.dtype == DType::f16)
    spw::launch(rmsnorm_kernel<half>, a.rows, kThreads, 0, stream, static_cast<const half*>(a.x),
                static_cast<half*>(a.residual), static_cast<const half*>(a.weight), static_cast<half*>(a.out), a.hidden,
                a.eps);
  else
    spw::launch(rmsnorm_kernel<bfloat16>, a.rows, kThreads, 0, stream, static_cast<const bfloat16*>(a.x),
                static_cast<bfloat16*>(a.residual), static_cast<const bfloat16*>(a.weight),
                static_cast<bfloat16*>(a.out), a.hidden, a.eps);
  SPW_CUDA_CHECK_LAUNCH();
}

void rope(const RopeArgs& a, Stream stream) {
  check(a);
  if (a.tokens == 0) return;
  const long long qs = a.q_row_stride ? a.q_row_stride : static_cast<long long>(a.q_heads) * a.rope.head_dim;
  const long long ks = a.k_row_stride ? a.k_row_stride : static_cast<long long>(a.kv_heads) * a.rope.head_dim;
  const long long work = static_cast<long long>(a.tokens) * (a.q_heads + a.kv_heads) * (a.rope.head_dim / 2);
  if (a.dtype == DType::f16)
    spw::launch(rope_kernel<half>, grid_for(work, kThreads), kThreads, 0, stream, static_cast<half*>(a.q),
                static_cast<half*>(a.k), qs, ks, a.q_heads, a.kv_heads, a.positions, a.rope, a.tokens);
  else
    spw::launch(rope_kernel<bfloat16>, grid_for(work, kThreads), kThreads, 0, stream, static_cast<bfloat16*>(a.q),
                static_cast<bfloat16*>(a.k), qs, ks, a.q_heads, a.kv_heads, a.positions, a.rope, a.tokens);
  SPW_CUDA_CHECK_LAUNCH();
}

void silu_mul(const SiluMulArgs& a, Stream stream) {
  check(a);
  if (a.rows == 0) return;
  const long long work = static_cast<long long>(a.rows) * a.inter / 8;
  if (a.dtype == DType::f16)
    spw::launch(silu_mul_kernel<half>, grid_for(work, kThreads), kThreads, 0, stream,
                static_cast<const half*>(a.gate_up), static_cast<half*>(a.out), a.rows, a.inter);
  else
    spw::launch(silu_mul_kernel<bfloat16>, grid_for(work, kThreads), kThreads, 0, stream,
                static_cast<const bfloat16*>(a.gate_up), static_cast<bfloat16*>(a.out), a.rows, a.inter);
  SPW_CUDA_CHECK_LAUNCH();
}

void embedding(const EmbeddingArgs& a, Stream stream) {
  check(a);
  if (a.tokens == 0) return;
  if (a.dtype == DType::f16)
    spw::launch(embedding_kernel<half>, a.tokens, 128, 0, stream, a.ids, static_cast<const half*>(a.table),
                static_cast<half*>(a.out), a.vocab, a.hidden, a.error_flag);
  else
    spw::launch(embedding_kernel<bfloat16>, a.tokens, 128, 0, stream, a.ids, static_cast<const bfloat16*>(a.table),
                static_cast<bfloat16*>(a.out), a.vocab, a.hidden, a.error_flag);
  SPW_CUDA_CHECK_LAUNCH();
}

void argmax(const float* logits, int rows, int vocab, int32_t* out, Stream stream) {
  check_argmax(logits, rows, vocab, out);
  if (rows == 0) return;
  spw::launch(argmax_kernel, rows, kThreads, 0, stream, logits, vocab, out);
  SPW_CUDA_CHECK_LAUNCH();
}

void topk(const float* logits, int rows, int vocab, int k, TopToken* out, Stream stream) {
  check_topk(logits, rows, vocab, k, out);
  if (rows == 0) return;
  spw::launch(topk_kernel, rows, kThreads, 0, stream, logits, vocab, k, out);
  SPW_CUDA_CHECK_LAUNCH();
}

}  // namespace spw::small_ops

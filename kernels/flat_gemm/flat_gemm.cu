// Flat GEMM kernels (design and epilogue in flat_gemm.h):
//   gemv_kernel    M <= 8: one warp per output column (gate + up rows for SwiGLU), lanes walk
//                  K with 16-byte loads of W, 4 loads in flight per row, warp reductions;
//                  8 columns per block. Nothing is padded: pure weight streaming.
//   mma_kernel     M <= 64 on tensor cores with swapped operands: mma.sync m16n8k16 with 16
//                  weight rows as A (row-major [n][k] is exactly the A layout) and 8 rows of X
//                  as B, so M is padded to 8 only. A block owns 64 weight rows (4 warps x 16)
//                  and one K split; W and X tiles of 64 K flow through a 3-stage cp.async
//                  pipeline (XOR-swizzled 128-byte rows: conflict-free ldmatrix). Without
//                  split-K the epilogue runs from shared memory; with split-K fp32 partials
//                  go to the workspace and reduce_kernel sums them in split order (bitwise
//                  deterministic, no atomics), then applies the same epilogue.
//   cuBLASLt       prefill-sized M: caller's handle, heuristic top algorithm (or the one the
//                  plan names), fp32 compute; epilogues through the fp32 workspace + reduce_kernel.
//                  Descriptors + heuristic answer cached per (shape, types, alignment, device).
// No Hopper TMA/wgmma variant: wgmma needs M >= 64 on the activation side or a 64-row weight
// side with the same padding; with no GPU to measure it against mma.sync it was not kept
// (the issue says keep it only if the numbers say so).
// Batch-invariant plans (Options::batch_invariant): the mma kernel for every M, M > 64 as
// 64-row slices; a column's sum over K does not depend on the other columns of the mma tile
// nor on the M tiling, so each row gets the same bits in any product.
// Instantiations: 2 dtypes x (gemv + reduce + 4 mma M-tilings) = 12 kernels.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/common/cp_async.cuh"
#include "kernels/common/cublas_check.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/mma.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/flat_gemm/flat_gemm.h"

namespace spw::flat_gemm {
namespace {

struct Epi {
  const void* bias;
  const void* residual;
  void* y;
  int m, n, n_out;
  bool swiglu, out_f32;
};

// The whole epilogue for one output element (order of flat_gemm.h); g = gate (or the only)
// accumulator, u = up accumulator (SwiGLU only).
template <typename T>
__device__ SPW_FORCEINLINE void finish(const Epi& e, int m, int j, float g, float u) {
  if (e.bias) {
    const T* b = static_cast<const T*>(e.bias);
    g += to_float(b[j]);
    if (e.swiglu) u += to_float(b[e.n_out + j]);
  }
  float v = e.swiglu ? g / (1.f + expf(-g)) * u : g;
  const size_t o = size_t(m) * e.n_out + j;
  if (e.out_f32) {
    if (e.residual) v += static_cast<const float*>(e.residual)[o];
    static_cast<float*>(e.y)[o] = v;
  } else {
    if (e.residual) v += to_float(static_cast<const T*>(e.residual)[o]);
    static_cast<T*>(e.y)[o] = from_float<T>(v);
  }
}

// ------------------------------------------------------------------ GEMV
constexpr int kGemvWarps = 8;
constexpr int kGemvUnroll = 4;

template <typename T>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                              Epi e, int k) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int j = blockIdx.x * kGemvWarps + warp;
  if (j >= e.n_out) return;
  const int rows = e.swiglu ? 2 : 1;
  const T* wr[2] = {w + size_t(j) * k, w + size_t(e.n_out + j) * k};
  float acc[2][kMaxGemvM];
  SPW_UNROLL
  for (int r = 0; r < 2; ++r)
    SPW_UNROLL
    for (int mm = 0; mm < kMaxGemvM; ++mm) acc[r][mm] = 0.f;

  for (int base = lane * 8; base < k; base += 32 * 8 * kGemvUnroll) {
    int4 wv[2][kGemvUnroll];
    SPW_UNROLL
    for (int r = 0; r < 2; ++r)
      SPW_UNROLL
      for (int u = 0; u < kGemvUnroll; ++u) {
        const int kk = base + u * 256;
        wv[r][u] = (r < rows && kk < k) ? __ldg(reinterpret_cast<const int4*>(wr[r] + kk)) : make_int4(0, 0, 0, 0);
      }
    SPW_UNROLL
    for (int u = 0; u < kGemvUnroll; ++u) {
      const int kk = base + u * 256;
      if (kk >= k) break;
      SPW_UNROLL
      for (int mm = 0; mm < kMaxGemvM; ++mm) {
        if (mm >= e.m) break;
        const int4 xv = __ldg(reinterpret_cast<const int4*>(x + size_t(mm) * k + kk));
        const T* xs = reinterpret_cast<const T*>(&xv);
        SPW_UNROLL
        for (int r = 0; r < 2; ++r) {
          if (r >= rows) break;
          const T* ws = reinterpret_cast<const T*>(&wv[r][u]);
          SPW_UNROLL
          for (int i = 0; i < 8; ++i) acc[r][mm] += to_float(xs[i]) * to_float(ws[i]);
        }
      }
    }
  }
  SPW_UNROLL
  for (int mm = 0; mm < kMaxGemvM; ++mm) {
    if (mm >= e.m) break;
    const float g = warp_reduce_sum(acc[0][mm]);
    const float u = rows == 2 ? warp_reduce_sum(acc[1][mm]) : 0.f;
    if (lane == 0) finish<T>(e, mm, j, g, u);
  }
}

// ------------------------------------------------------------------ tensor-core flat GEMM
constexpr int kMmaThreads = 128;
constexpr int kChunks = kTileK / 8;  // 16-byte chunks per smem row (8)

__device__ SPW_FORCEINLINE int swz(int row, int chunk) { return row * kTileK + ((chunk ^ (row & 7)) * 8); }

using mma::ldmatrix_x2;
using mma::ldmatrix_x4;

// Weight row held by local row r of block `tile` (-1: past the end). SwiGLU blocks hold 32
// gate rows then the 32 matching up rows, so gate and up of one output meet in one block.
__device__ SPW_FORCEINLINE int weight_row(const Epi& e, int tile, int r) {
  if (e.swiglu) {
    const int j = tile * (kTileN / 2) + (r % (kTileN / 2));
    return j < e.n_out ? (r < kTileN / 2 ? j : e.n_out + j) : -1;
  }
  const int row = tile * kTileN + r;
  return row < e.n ? row : -1;
}

template <int MT>
constexpr int mma_smem_bytes() { return kStages * (kTileN + 8 * MT) * kTileK * 2; }

template <typename T, int MT>
__global__ void __launch_bounds__(kMmaThreads) mma_kernel(const T* __restrict__ x, const T* __restrict__ w, Epi e,
                                                         int k, int k_chunk, float* __restrict__ partial) {
  SPW_DYNAMIC_SMEM(128, smem_raw);
  T* smem = reinterpret_cast<T*>(smem_raw);
  constexpr int kRows = kTileN + 8 * MT;  // W rows then X rows in each stage
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int tile = blockIdx.x, split = blockIdx.y;
  const int k_begin = split * k_chunk;
  const int k_end = min(k, k_begin + k_chunk);
  const int steps = (k_end - k_begin + kTileK - 1) / kTileK;

  // This thread's W rows: chunks tid + i*128 -> row tid/8 + 16 i, chunk tid%8.
  constexpr int kWLoads = kTileN * kChunks / kMmaThreads;  // 4
  const T* wsrc[kWLoads];
  bool wvalid[kWLoads];
  SPW_UNROLL
  for (int i = 0; i < kWLoads; ++i) {
    const int gr = weight_row(e, tile, tid / kChunks + i * (kMmaThreads / kChunks));
    wvalid[i] = gr >= 0;
    wsrc[i] = w + size_t(gr >= 0 ? gr : 0) * k;
  }
  const int chunk = tid % kChunks;

  auto load_stage = [&](int slot, int step) {
    T* s = smem + slot * kRows * kTileK;
    const int kk = k_begin + step * kTileK + chunk * 8;
    const bool kvalid = kk < k_end;
    SPW_UNROLL
    for (int i = 0; i < kWLoads; ++i) {
      const int r = tid / kChunks + i * (kMmaThreads / kChunks);
      const bool v = wvalid[i] && kvalid;
      cp_async16(s + swz(r, chunk), v ? wsrc[i] + kk : w, v);
    }
    SPW_UNROLL
    for (int idx = tid; idx < 8 * MT * kChunks; idx += kMmaThreads) {
      const int r = idx / kChunks;
      const bool v = r < e.m && kvalid;
      cp_async16(s + swz(kTileN + r, chunk), v ? x + size_t(r) * k + kk : x, v);
    }
  };

  float acc[MT][4];
  SPW_UNROLL
  for (int t = 0; t < MT; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.f;

  SPW_UNROLL
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load_stage(s, s);
    cp_async_commit();
  }
  for (int it = 0; it < steps; ++it) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage `it` visible to all; slot of stage it-1 free for reuse
    const int next = it + kStages - 1;
    if (next < steps) load_stage(next % kStages, next);
    cp_async_commit();
    const T* s = smem + (it % kStages) * kRows * kTileK;
    SPW_UNROLL
    for (int kk = 0; kk < kTileK / 16; ++kk) {
      unsigned a[4];
      ldmatrix_x4(a, s + swz(warp * 16 + lane % 16, 2 * kk + lane / 16));
      SPW_UNROLL
      for (int t = 0; t < MT; ++t) {
        unsigned b[2];
        ldmatrix_x2(b, s + swz(kTileN + t * 8 + lane % 8, 2 * kk + (lane / 8) % 2));
        mma::mma_m16n8k16<T>(acc[t], a, b[0], b[1]);
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();

  // Accumulator c of mma t: rows (weight) lane/4 (+8 for c2, c3), cols (M) t*8 + 2*(lane%4) (+1).
  const int r0 = warp * 16 + lane / 4;
  if (partial) {
    float* out = partial + size_t(split) * e.m * e.n;
    SPW_UNROLL
    for (int t = 0; t < MT; ++t)
      SPW_UNROLL
      for (int c = 0; c < 4; ++c) {
        const int r = r0 + (c / 2) * 8, mm = t * 8 + 2 * (lane % 4) + c % 2;
        const int gr = weight_row(e, tile, r);
        if (gr >= 0 && mm < e.m) out[size_t(mm) * e.n + gr] = acc[t][c];
      }
    return;
  }
  constexpr int kLd = 8 * MT + 1;
  float* cs = reinterpret_cast<float*>(smem_raw);  // [kTileN][kLd], reuses the pipeline buffers
  SPW_UNROLL
  for (int t = 0; t < MT; ++t)
    SPW_UNROLL
    for (int c = 0; c < 4; ++c) cs[(r0 + (c / 2) * 8) * kLd + t * 8 + 2 * (lane % 4) + c % 2] = acc[t][c];
  __syncthreads();
  const int cols = e.swiglu ? kTileN / 2 : kTileN;
  for (int idx = tid; idx < cols * e.m; idx += kMmaThreads) {
    const int mm = idx / cols, jl = idx % cols;
    const int j = tile * cols + jl;
    if (j >= e.n_out) continue;
    finish<T>(e, mm, j, cs[jl * kLd + mm], e.swiglu ? cs[(jl + kTileN / 2) * kLd + mm] : 0.f);
  }
}

// ------------------------------------------------------------------ split-K / cuBLASLt epilogue
template <typename T>
__global__ void __launch_bounds__(256) reduce_kernel(const float* __restrict__ partial, int splits, Epi e) {
  const long long idx = blockIdx.x * 256LL + threadIdx.x;
  if (idx >= static_cast<long long>(e.m) * e.n_out) return;
  const int mm = static_cast<int>(idx / e.n_out), j = static_cast<int>(idx % e.n_out);
  float g = 0.f, u = 0.f;
  for (int s = 0; s < splits; ++s) {  // fixed order: the same bits every run
    const float* row = partial + (size_t(s) * e.m + mm) * e.n;
    g += row[j];
    if (e.swiglu) u += row[e.n_out + j];
  }
  finish<T>(e, mm, j, g, u);
}

cudaDataType_t cuda_type(DType t) {
  return t == DType::f16 ? CUDA_R_16F : t == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
}

// Y^T [N, M] (column-major, ld N) = W^T^T · X^T: A = W as a K x N column-major matrix, op T.
//
// The descriptors and the heuristic's answer depend only on the shape, the types, the
// operands' alignment, the device and the algorithm index, so they are made once per such key
// and kept (lt_entry): a run is then one cublasLtMatmul call, without the host allocations of
// the descriptors and the heuristic's search on every call (a prefill makes hundreds of them).
struct LtKey {
  int device, m, n, k, dtype, out_type, algo;
  uint32_t align[4];  // A, B, C, D
  bool operator<(const LtKey& o) const {
    return std::tie(device, m, n, k, dtype, out_type, algo, align[0], align[1], align[2], align[3]) <
           std::tie(o.device, o.m, o.n, o.k, o.dtype, o.out_type, o.algo, o.align[0], o.align[1], o.align[2], o.align[3]);
  }
};

struct LtEntry {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
  int found = 0;  // algorithms the heuristic offered (algo is valid when found > the index)
  LtEntry() = default;
  LtEntry(const LtEntry&) = delete;
  LtEntry& operator=(const LtEntry&) = delete;
  ~LtEntry() {
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Builds the descriptors and asks the heuristic (the only step that needs the handle).
std::shared_ptr<const LtEntry> make_lt_entry(cublasLtHandle_t h, const LtKey& key) {
  auto e = std::make_shared<LtEntry>();
  SPW_CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
  SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof(tA)));
  SPW_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof(tB)));
  const auto dt = cuda_type(static_cast<DType>(key.dtype)), ot = cuda_type(static_cast<DType>(key.out_type));
  SPW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->la, dt, key.k, key.n, key.k));
  SPW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->lb, dt, key.k, key.m, key.k));
  SPW_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->ld, ot, key.n, key.m, key.n));
  cublasLtMatmulPreference_t pref = nullptr;
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefCleanup {
    cublasLtMatmulPreference_t p;
    ~PrefCleanup() { cublasLtMatmulPreferenceDestroy(p); }
  } cleanup{pref};
  size_t ws_bytes = kCublasLtWorkspace;
  SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                        sizeof(ws_bytes)));
  // The heuristic assumes 256-byte aligned operands unless told otherwise; the API promises
  // only 16, so say what the pointers really are (an algorithm needing more would fail).
  const cublasLtMatmulPreferenceAttributes_t attrs[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; ++i)
    SPW_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attrs[i], &key.align[i], sizeof(key.align[i])));
  cublasLtMatmulHeuristicResult_t results[kCublasLtAlgos] = {};
  SPW_CUBLAS_CHECK(
      cublasLtMatmulAlgoGetHeuristic(h, e->op, e->la, e->lb, e->ld, e->ld, pref, kCublasLtAlgos, results, &e->found));
  if (e->found > key.algo) e->algo = results[key.algo].algo;
  return e;
}

// At most kLtCacheEntries keys (a model's shapes, a few prefill lengths); when full it starts
// over, which only costs the next calls their heuristic query again. Callers hold a
// shared_ptr, so an entry outlives a clear() that happens during its cublasLtMatmul call.
constexpr size_t kLtCacheEntries = 512;

std::shared_ptr<const LtEntry> lt_entry(cublasLtHandle_t h, const LtKey& key) {
  static std::mutex mu;
  static std::map<LtKey, std::shared_ptr<const LtEntry>> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  std::shared_ptr<const LtEntry> e = make_lt_entry(h, key);  // outside the lock; throws before caching
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kLtCacheEntries) cache.clear();
  return cache.emplace(key, std::move(e)).first->second;  // a racing thread's equal entry wins
}

void run_cublaslt(const Plan& pl, const Args& a, void* out, DType out_type, void* ws, Stream stream) {
  const Problem& p = pl.problem;
  auto alignment = [](const void* q) {
    const auto v = reinterpret_cast<std::uintptr_t>(q);
    return static_cast<uint32_t>(std::min<std::uintptr_t>(256, v & (~v + 1)));
  };
  LtKey key{0, p.m, p.n, p.k, static_cast<int>(p.dtype), static_cast<int>(out_type), pl.cublaslt_algo,
            {alignment(a.w), alignment(a.x), alignment(out), alignment(out)}};
  SPW_CUDA_CHECK(cudaGetDevice(&key.device));
  const std::shared_ptr<const LtEntry> e = lt_entry(static_cast<cublasLtHandle_t>(a.cublaslt_handle), key);
  SPW_CHECK(e->found > pl.cublaslt_algo,
            "flat_gemm::run: plan.cublaslt_algo = {}: cuBLASLt offers {} algorithms for m = {}, n = {}, k = {} "
            "(not supported)",
            pl.cublaslt_algo, e->found, p.m, p.n, p.k);
  if (LaunchRecord* r = launch_record()) {  // the product is a function of the key and the pointers
    r->add_all('L', key, a.cublaslt_handle, a.w, a.x, out, ws, stream);
    return;
  }
  const float alpha = 1.f, beta = 0.f;
  SPW_CUBLAS_CHECK(cublasLtMatmul(static_cast<cublasLtHandle_t>(a.cublaslt_handle), e->op, &alpha, a.w, e->la, a.x,
                                  e->lb, &beta, out, e->ld, out, e->ld, &e->algo, ws, kCublasLtWorkspace,
                                  reinterpret_cast<cudaStream_t>(stream)));
}

template <typename T>
void launch(const Plan& pl, const Args& a, void* workspace, cudaStream_t st) {
  const Problem& p = pl.problem;
  const Epi e{a.bias, a.residual, a.y, p.m, p.n, p.n_out(), p.swiglu, p.out_dtype == DType::f32};
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.w);
  float* partial = static_cast<float*>(workspace);
  auto reduce = [&](const Epi& ep, int splits) {  // partials of ep.m rows -> epilogue
    const long long total = static_cast<long long>(ep.m) * p.n_out();
    spw::launch(reduce_kernel<T>, static_cast<unsigned>(ceil_div(total, 256LL)), 256, 0, st, partial, splits, ep);
    SPW_CUDA_CHECK_LAUNCH();
  };
  if (pl.impl == Impl::gemv) {
    spw::launch(gemv_kernel<T>, ceil_div(p.n_out(), kGemvWarps), kGemvWarps * 32, 0, st, x, w, e, p.k);
    SPW_CUDA_CHECK_LAUNCH();
  } else if (pl.impl == Impl::mma) {
    const dim3 grid(pl.n_tiles, pl.split_k);
    float* part = pl.split_k > 1 ? partial : nullptr;
    // One launch per 64-row slice (one slice unless batch_invariant planned M > 64); the
    // slices run in stream order, so they share the split-K workspace.
    const size_t out_size = p.out_dtype == DType::f32 ? 4 : sizeof(T);
    for (int r0 = 0; r0 < p.m; r0 += kMaxFlatM) {
      Epi es = e;
      es.m = std::min(kMaxFlatM, p.m - r0);
      const size_t out_off = size_t(r0) * p.n_out() * out_size;
      es.y = static_cast<unsigned char*>(a.y) + out_off;
      if (a.residual) es.residual = static_cast<const unsigned char*>(a.residual) + out_off;
      const T* xs = x + size_t(r0) * p.k;
      const int m_tiles = r0 == 0 ? pl.m_tiles : mma_m_tiles(es.m);
      switch (m_tiles) {
#define SPW_FLAT_MMA_CASE(MT)                                                                                       \
  case MT:                                                                                                          \
    spw::launch(mma_kernel<T, MT>, grid, kMmaThreads, mma_smem_bytes<MT>(), st, xs, w, es, p.k, pl.k_chunk, part); \
    break;
        SPW_FLAT_MMA_CASE(1)
        SPW_FLAT_MMA_CASE(2)
        SPW_FLAT_MMA_CASE(4)
        SPW_FLAT_MMA_CASE(8)
#undef SPW_FLAT_MMA_CASE
        default: fail("flat_gemm::run: plan.m_tiles = {}: must be 1, 2, 4 or 8", pl.m_tiles);
      }
      SPW_CUDA_CHECK_LAUNCH();
      if (part) reduce(es, pl.split_k);
    }
  } else {
    unsigned char* ws = static_cast<unsigned char*>(workspace);
    if (pl.partial_bytes) {
      run_cublaslt(pl, a, partial, DType::f32, ws + pl.partial_bytes, st);
      reduce(e, 1);
    } else {
      run_cublaslt(pl, a, a.y, p.out_dtype, ws, st);
    }
  }
}

static_assert(mma_smem_bytes<8>() <= 48 * 1024, "mma pipeline must fit the default shared-memory limit");

}  // namespace

void run(const Plan& plan, const Args& args, void* workspace, size_t workspace_bytes, Stream stream) {
  check_args(plan, args, workspace, workspace_bytes);
  auto st = reinterpret_cast<cudaStream_t>(stream);
  if (plan.problem.dtype == DType::f16) launch<__half>(plan, args, workspace, st);
  else launch<__nv_bfloat16>(plan, args, workspace, st);
}

}  // namespace spw::flat_gemm

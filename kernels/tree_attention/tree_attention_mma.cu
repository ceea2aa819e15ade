// Tree attention on tensor cores: the partial (O, LSE) states of tree_attention::run for
// Impl::mma (semantics and workspace layout in tree_attention.h, shape constants in mma_shape.h).
//
// Work split. One CTA per (state, request, KV head, row block); state s < num_states - 1 is
// prefix chunk s, the last state is the tree part. The CTA owns query rows
// [rb * rows_per_cta, +rows_per_cta) of the request's T x group rows (row = token * group + head
// in the group, so a row is one q vector of that KV head); plan() makes rows_per_cta cover every
// row of the KV head whenever they fit (<= 256 rows for head_dim 64/128, <= 128 for 256), so
// each prefix K/V tile comes from global memory ONCE for all T x group rows. Linear block index
// = (state * batch * kv_heads + request * kv_heads + kv head) * row_blocks + row block: prefix
// chunks first, the short tree-part CTAs last, the row blocks of one chunk adjacent (L2 reuse).
//
// Per CTA: 4..8 warps (mma::warps). The Q rows are copied once into shared memory (cp.async,
// 16-byte chunks; rows padded by 16 bytes, so ldmatrix is conflict-free and every fragment
// address is a register plus an immediate); K/V tiles of `keys` rows (64; 32 for head_dim 256) stream
// through a `stages`-deep cp.async ring (3 for head_dim 64, else 2), gathered through the page
// table 16 bytes at a time like decode_attention (tree part: rows of k_tree / v_tree). Warp w
// owns the 16-row m-tiles i = mt * warps + w (mt < m_tiles: 2, 1 for head_dim 256) with fp32
// O accumulators in registers (m_tiles * head_dim / 2 floats per lane) and runs, per score tile
// of `sub_keys` keys (mma_shape.h: the whole stage for every head_dim now; with smaller score
// tiles those past the last key are skipped):
//   S = Q K^T        mma.sync m16n8k16: A = Q from smem (ldmatrix), B = K rows (ldmatrix), each
//                    B fragment reused by the warp's m-tiles;
//   scores           x sm_scale (soft cap: cap * tanh(s / cap)) in the log2 domain; keys past
//                    the chunk end and, in the tree part, keys outside the row's ancestor mask
//                    (128-bit AncestorMask, one 64-bit word per tile) -> -inf;
//   online softmax   per row: max over the quad (2 shuffles), rescale of the lane's partial row
//                    sum and of O (skipped when no row of the warp has a new max: x 1.0f is
//                    exact), exp2 (kernels/common/softmax_state.h math);
//   O += P V         P = the score accumulators rounded to fp16/bf16 (C layout == A layout),
//                    B = V rows via ldmatrix.trans.
// Epilogue: quad sum of the row sums, normalised O as fp32 float2 stores (a quad writes whole
// 32-byte sectors) and LSE (natural log) per row. Empty prefix chunks (shorter requests in a
// batch) only write LSE = -inf: merge_states skips a state whose weight is 0 without reading O.
// Everything is fixed-order (no atomics): bitwise deterministic.
//
// Shared memory: rows_per_cta * (head_dim + 8) * 2 (Q) + stages * 2 * keys * (head_dim + 8) * 2
// (K/V): head_dim 64: <= 36 + 54 KB; 128: <= 68 + 68 KB; 256: <= 66 + 66 KB. One CTA of 8 warps
// per SM; 4-warp CTAs (<= 64 rows) fit two per SM.
// Registers (ptxas, sm_90, CUDA 13): head_dim 64: 231, 128: 255 with 104 bytes of spill stores
// and 124 of reloads (why head_dim 128 does not use smaller score tiles to avoid them:
// mma_shape.h), 256: 240.
// Instantiations: {fp16, bf16} x head_dim {64, 128, 256}.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <mutex>

#include "kernels/common/cp_async.cuh"
#include "kernels/common/cuda_check.h"
#include "kernels/common/dispatch.cuh"
#include "kernels/common/launch.cuh"
#include "kernels/common/softmax_state.h"
#include "kernels/tree_attention/launch.h"
#include "kernels/tree_attention/mma_fragments.cuh"
#include "kernels/tree_attention/mma_shape.h"

namespace spw::tree_attention::detail {
namespace {

using mma::kMaxWarps;

template <int D>
struct Tile {
  static constexpr mma::Shape kShape = mma::shape(D);
  static constexpr int N = kShape.keys;    // keys per K/V stage
  static constexpr int MT = kShape.m_tiles;
  static constexpr int ST = kShape.stages;
  static constexpr int NS = kShape.sub_keys;  // keys per score tile (tile_step)
  static constexpr int NT = NS / 8;        // n8 score tiles per score tile
  static constexpr int DT = D / 8;         // n8 output tiles
  static constexpr int CH = D / 8;         // 16-byte chunks per row
  static constexpr int RS = mma::row_stride(D);  // smem row stride (elements), padded
  static_assert(N % 16 == 0 && 64 % N == 0, "a stage never straddles a 64-bit mask word");
  static_assert(NS % 16 == 0 && N % NS == 0, "score tiles divide the stage");
  static_assert(MT >= 1 && MT <= 2 && ST >= 2, "tile shape");
};

// What one tile step needs besides the accumulators (all warp-uniform but lane-derived addresses).
// ldmatrix addresses of this lane (bytes, shared space) for k16 step 0 / key tile 0; every other
// fragment is the same register plus an immediate.
struct StepCtx {
  uint32_t q_addr[2];       // Q: row 16 (mt * warps + warp) + lane % 16, chunk lane / 16
  uint32_t k_addr, v_addr;  // current stage: K row lane % 8 + 8 (lane / 16), chunk (lane / 8) % 2;
                            //                V row lane % 8 + 8 ((lane / 8) % 2), chunk lane / 16
};

// Visible keys of a stage starting at key kb (used when `masked`): the tree part reads the
// ancestor-mask word of each of the lane's rows (request-global token tok), a prefix chunk's
// last stage ends at j1.
struct StageMask {
  int tok[2][2];  // tree part: token of the lane's row g + 8 h in m-tile slot mt
  int kb, j1;
  bool masked;
};

// Keys [ko, ko + NS) of a K/V stage for the warp's first A (1 or MT) m-tiles: S = Q K^T, mask,
// online softmax, O += P V (c's K/V addresses already point at key ko of the stage).
template <typename T, int D, int A>
__device__ SPW_FORCEINLINE void tile_step(bool tree, int ko, const StepCtx& c, const StageMask& sm,
                                          float (&o)[Tile<D>::MT][Tile<D>::DT][4], SoftmaxState (&st)[Tile<D>::MT][2],
                                          const KernelParams& p) {
  using C = Tile<D>;
  constexpr int NS = C::NS, NT = C::NT, DT = C::DT, RS = C::RS;
  const int lane = threadIdx.x % 32;
  float s[A][NT][4];
SPW_UNROLL
  for (int mt = 0; mt < A; ++mt)
SPW_UNROLL
    for (int n = 0; n < NT; ++n)
SPW_UNROLL
      for (int e = 0; e < 4; ++e) s[mt][n][e] = 0.f;

  // S = Q K^T: k16 steps over head_dim; per step the warp's Q fragments, then pairs of key tiles.
SPW_UNROLL
  for (int ks = 0; ks < D / 16; ++ks) {
    uint32_t a[A][4];
SPW_UNROLL
    for (int mt = 0; mt < A; ++mt) mma::ldmatrix_x4(a[mt], c.q_addr[mt] + ks * 32);
SPW_UNROLL
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      mma::ldmatrix_x4(b, c.k_addr + (np * 16 * RS + ks * 16) * 2);
SPW_UNROLL
      for (int mt = 0; mt < A; ++mt) {
        mma::mma_16816<T>(s[mt][2 * np], a[mt], b[0], b[1]);
        mma::mma_16816<T>(s[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }

  // Scores in the log2 domain (the soft-cap branch is uniform: tanhf only when asked for).
  if (p.soft_cap > 0.f) {
SPW_UNROLL
    for (int mt = 0; mt < A; ++mt)
SPW_UNROLL
      for (int n = 0; n < NT; ++n)
SPW_UNROLL
        for (int e = 0; e < 4; ++e) s[mt][n][e] = soft_cap(s[mt][n][e] * p.sm_scale, p.soft_cap) * kLog2e;
  } else {
SPW_UNROLL
    for (int mt = 0; mt < A; ++mt)
SPW_UNROLL
      for (int n = 0; n < NT; ++n)
SPW_UNROLL
        for (int e = 0; e < 4; ++e) s[mt][n][e] *= p.scale_log2;
  }
  // Invisible keys -> -inf (visible: the ancestor-mask word of the row, or keys before j1).
  const int cq = lane % 4;
  if (sm.masked) {
SPW_UNROLL
    for (int mt = 0; mt < A; ++mt)
SPW_UNROLL
      for (int h = 0; h < 2; ++h) {
        uint64_t vis;
        const int kb = sm.kb + ko;  // a stage, hence a score tile, lies in one 64-bit mask word
        if (tree) vis = p.masks[sm.tok[mt][h]].bits[kb >> 6] >> (kb & 63);
        else vis = (1ull << (sm.j1 - kb)) - 1;  // masked prefix score tile: 0 < j1 - kb < NS <= 64
SPW_UNROLL
        for (int n = 0; n < NT; ++n)
SPW_UNROLL
          for (int e = 0; e < 2; ++e)
            if (!((vis >> (n * 8 + 2 * cq + e)) & 1u)) s[mt][n][2 * h + e] = -INFINITY;
      }
  }
  // Online softmax per row (this lane's rows g and g + 8 of each m-tile).
SPW_UNROLL
  for (int mt = 0; mt < A; ++mt)
SPW_UNROLL
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
SPW_UNROLL
      for (int n = 0; n < NT; ++n) mx = fmaxf(mx, fmaxf(s[mt][n][2 * h], s[mt][n][2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(st[mt][h].m, mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // no visible key yet: weights 0, not NaN
      const float alpha = fast_exp2(st[mt][h].m - m_use);
      float sum = 0.f;
SPW_UNROLL
      for (int n = 0; n < NT; ++n)
SPW_UNROLL
        for (int e = 0; e < 2; ++e) {
          const float w = fast_exp2(s[mt][n][2 * h + e] - m_use);
          s[mt][n][2 * h + e] = w;
          sum += w;
        }
      st[mt][h].m = m_new;
      st[mt][h].d = st[mt][h].d * alpha + sum;  // this lane's columns only; quad-summed at the end
      // Rescale O only when some row of the warp has a new max (x 1.0f is exact: skipping it
      // changes no bit, and after the first stages the max rarely moves).
      if (__any_sync(0xffffffffu, alpha != 1.f)) {
SPW_UNROLL
        for (int dt = 0; dt < DT; ++dt) {
          o[mt][dt][2 * h] *= alpha;
          o[mt][dt][2 * h + 1] *= alpha;
        }
      }
    }

  // O += P V: k16 steps over the score tile's keys, pairs of head_dim n8 tiles.
SPW_UNROLL
  for (int kk = 0; kk < NS / 16; ++kk) {
    uint32_t pa[A][4];
SPW_UNROLL
    for (int mt = 0; mt < A; ++mt) mma::pack_a<T>(pa[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
SPW_UNROLL
    for (int dp = 0; dp < DT / 2; ++dp) {
      uint32_t b[4];
      mma::ldmatrix_x4_trans(b, c.v_addr + (kk * 16 * RS + dp * 16) * 2);
SPW_UNROLL
      for (int mt = 0; mt < A; ++mt) {
        mma::mma_16816<T>(o[mt][2 * dp], pa[mt], b[0], b[1]);
        mma::mma_16816<T>(o[mt][2 * dp + 1], pa[mt], b[2], b[3]);
      }
    }
  }
}

// What a CTA works on (from its block index).
struct Cta {
  int b, kh, group, t0, n_rows, row0, rows, j0, j1;
  long long state_row;  // s * total_rows
  // CTA row -> row of q / o / partial states
  __device__ SPW_FORCEINLINE long long out_row(int r, int qo_heads) const {
    const int lr = row0 + r;
    return static_cast<long long>(t0 + lr / group) * qo_heads + kh * group + lr % group;
  }
};

// One CTA's partial state over keys [j0, j1) of the prefix or (tree) of the tree part. (A
// runtime flag, not a template: two inlined copies cost ptxas more registers than the branch.)
template <typename T, int D>
__device__ SPW_FORCEINLINE void cta_body(const KernelParams& p, const Cta& w, unsigned char* smem, bool tree) {
  using C = Tile<D>;
  constexpr int N = C::N, NS = C::NS, MT = C::MT, ST = C::ST, DT = C::DT, CH = C::CH, RS = C::RS;
  T* sq = reinterpret_cast<T*>(smem);  // [rows_per_cta][RS]
  T* skv = sq + p.rows_per_cta * RS;   // stage i: K [N][RS], V [N][RS]
  const int nthreads = blockDim.x;

  // Q rows of the CTA (zero rows up to the m-tile boundary), committed with the first K/V tile.
  const T* q = static_cast<const T*>(p.q);
  for (int i = threadIdx.x; i < round_up(w.rows, 16) * CH; i += nthreads) {
    const int r = i / CH, ch = i % CH;
    const bool valid = r < w.rows;
    cp_async16(sq + r * RS + ch * 8, q + (valid ? w.out_row(r, p.qo_heads) * D + ch * 8 : 0), valid);
  }

  const T* kg = static_cast<const T*>(tree ? p.k_tree : p.k_pages);
  const T* vg = static_cast<const T*>(tree ? p.v_tree : p.v_pages);
  const int page_base = tree ? 0 : p.indptr[w.b];
  auto load_tile = [&](int stage, int kb) {
    T* sk = skv + stage * (2 * N * RS);
    T* sv = sk + N * RS;
    for (int i = threadIdx.x; i < N * CH; i += nthreads) {
      const int r = i / CH, ch = i % CH, j = kb + r;
      const bool valid = j < w.j1;
      long long off = 0;
      if (valid) {
        long long row;
        if (tree) {
          row = w.t0 + j;
        } else {
          const int page = p.indices[page_base + j / p.page_size];
          row = static_cast<long long>(page) * p.page_size + j % p.page_size;
        }
        off = (row * p.kv_heads + w.kh) * D + ch * 8;
      }
      cp_async16(sk + r * RS + ch * 8, kg + off, valid);  // invalid rows: zero-filled
      cp_async16(sv + r * RS + ch * 8, vg + off, valid);
    }
  };

  const int tiles = (w.j1 - w.j0 + N - 1) / N;
SPW_UNROLL
  for (int i = 0; i < ST - 1; ++i) {
    if (i < tiles) load_tile(i, w.j0 + i * N);
    cp_async_commit();
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = nthreads / 32;
  int active = 0;  // the warp's m-tiles holding rows of this CTA (mt * warps + warp)
SPW_UNROLL
  for (int mt = 0; mt < MT; ++mt)
    if ((mt * warps + warp) * 16 < w.rows) active = mt + 1;

  StepCtx c;
  const uint32_t sq_addr = mma::smem_u32(sq), skv_addr = mma::smem_u32(skv);
SPW_UNROLL
  for (int mt = 0; mt < 2; ++mt)
    c.q_addr[mt] = sq_addr + static_cast<uint32_t>((((mt * warps + warp) * 16 + lane % 16) * RS + (lane / 16) * 8) * 2);
  const uint32_t k_lane = static_cast<uint32_t>(((lane % 8 + 8 * (lane / 16)) * RS + ((lane / 8) % 2) * 8) * 2);
  const uint32_t v_lane = static_cast<uint32_t>(((lane % 8 + 8 * ((lane / 8) % 2)) * RS + (lane / 16) * 8) * 2);
  StageMask sm;
  sm.j1 = w.j1;
SPW_UNROLL
  for (int mt = 0; mt < 2; ++mt)
SPW_UNROLL
    for (int h = 0; h < 2; ++h) {  // pad rows use the last row's mask (any valid one)
      const int lr = min(w.row0 + (mt * warps + warp) * 16 + lane / 4 + 8 * h, w.n_rows - 1);
      sm.tok[mt][h] = w.t0 + lr / w.group;
    }

  float o[MT][DT][4];
  SoftmaxState st[MT][2];
SPW_UNROLL
  for (int mt = 0; mt < MT; ++mt)
SPW_UNROLL
    for (int dt = 0; dt < DT; ++dt)
SPW_UNROLL
      for (int e = 0; e < 4; ++e) o[mt][dt][e] = 0.f;

  for (int t = 0; t < tiles; ++t) {
    cp_async_wait<ST - 2>();
    __syncthreads();  // tile t landed for every thread; the stage of tile t - 1 is free again
    const int nt = t + ST - 1;
    if (nt < tiles) load_tile(nt % ST, w.j0 + nt * N);
    cp_async_commit();
    if (active == 0) continue;  // warp-uniform; the warp still loads and meets every barrier

    sm.kb = w.j0 + t * N;
    const uint32_t stage = skv_addr + static_cast<uint32_t>((t % ST) * (2 * N * RS) * 2);
#pragma unroll 1
    for (int ko = 0; ko < N; ko += NS) {
      // Past the last key (a prefix chunk's end, or a tree smaller than the stage): nothing is
      // visible, and a fully masked score tile would change no bit of the state.
      if (sm.kb + ko >= w.j1) break;
      sm.masked = tree || w.j1 - (sm.kb + ko) < NS;
      c.k_addr = stage + static_cast<uint32_t>(ko * RS * 2) + k_lane;
      c.v_addr = stage + static_cast<uint32_t>((N + ko) * RS * 2) + v_lane;
      if (active == MT) tile_step<T, D, MT>(tree, ko, c, sm, o, st, p);
      else if constexpr (MT > 1) tile_step<T, D, 1>(tree, ko, c, sm, o, st, p);
    }
  }
  cp_async_wait<0>();

  // Epilogue: quad-sum the row sums, write normalised O (fp32) and LSE.
  const int gq = lane / 4, cq = lane % 4;
SPW_UNROLL
  for (int mt = 0; mt < MT; ++mt) {
    if (mt >= active) break;  // warp-uniform
SPW_UNROLL
    for (int h = 0; h < 2; ++h) {
      SoftmaxState row = st[mt][h];
      row.d += __shfl_xor_sync(0xffffffffu, row.d, 1);
      row.d += __shfl_xor_sync(0xffffffffu, row.d, 2);
      const int r = (mt * warps + warp) * 16 + gq + 8 * h;
      if (r >= w.rows) continue;
      const long long orow = w.state_row + w.out_row(r, p.qo_heads);
      const float inv = row.inv_sum();
      float* op = p.partial_o + orow * D + 2 * cq;
SPW_UNROLL
      for (int dt = 0; dt < DT; ++dt)
        *reinterpret_cast<float2*>(op + dt * 8) = make_float2(o[mt][dt][2 * h] * inv, o[mt][dt][2 * h + 1] * inv);
      if (cq == 0) p.partial_lse[orow] = row.lse();
    }
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kMaxWarps * 32, 1) tree_mma_kernel(KernelParams p) {
  SPW_DYNAMIC_SMEM(128, smem);
  const int rb = blockIdx.x % p.row_blocks;
  const int bh = (blockIdx.x / p.row_blocks) % p.batch_heads;
  const int s = blockIdx.x / (p.row_blocks * p.batch_heads);
  Cta w;
  w.b = bh / p.kv_heads;
  w.kh = bh % p.kv_heads;
  w.group = p.qo_heads / p.kv_heads;
  w.t0 = p.tree_indptr[w.b];
  const int n_tree = p.tree_indptr[w.b + 1] - w.t0;
  w.n_rows = n_tree * w.group;
  w.row0 = rb * p.rows_per_cta;
  w.rows = min(p.rows_per_cta, w.n_rows - w.row0);  // this CTA's rows
  if (w.rows <= 0) return;                          // a smaller tree than the grid's largest
  w.state_row = static_cast<long long>(s) * p.total_rows;
  const bool tree = s == p.num_states - 1;
  if (tree) {  // tree part: keys = the request's tree tokens under the ancestor mask
    w.j0 = 0;
    w.j1 = n_tree;
  } else {
    const long long plen = p.prefix_lens[w.b];
    w.j0 = static_cast<int>(min(plen, static_cast<long long>(s) * p.chunk));
    w.j1 = static_cast<int>(min(plen, (static_cast<long long>(s) + 1) * p.chunk));
    if (w.j1 <= w.j0) {  // empty prefix chunk of a shorter request: LSE = -inf, O never read
      for (int r = threadIdx.x; r < w.rows; r += blockDim.x)
        p.partial_lse[w.state_row + w.out_row(r, p.qo_heads)] = -INFINITY;
      return;
    }
  }
  cta_body<T, D>(p, w, smem, tree);
}

template <typename T, int D>
void launch_typed(const Plan& pl, const KernelParams& prm, cudaStream_t stream) {
  auto* kernel = tree_mma_kernel<T, D>;
  {
    // Opt in to > 48 KB of dynamic shared memory, raised monotonically per device (a concurrent
    // run with a smaller plan never lowers it under a larger one's launch).
    static std::mutex mu;
    static int granted[64] = {};
    int dev = 0;
    SPW_CUDA_CHECK(cudaGetDevice(&dev));
    std::lock_guard<std::mutex> lock(mu);
    if (dev >= 64 || granted[dev] < pl.smem_bytes) {
      SPW_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, pl.smem_bytes));
      if (dev < 64) granted[dev] = pl.smem_bytes;
    }
  }
  const long long grid = static_cast<long long>(pl.num_states) * pl.problem.batch * pl.problem.kv_heads * pl.row_blocks;
  spw::launch(kernel, static_cast<unsigned>(grid), pl.warps * 32, pl.smem_bytes, stream, prm);
  SPW_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_mma(const Plan& pl, const KernelParams& prm, cudaStream_t stream) {
  const Problem& pr = pl.problem;
  SPW_CHECK(pl.impl == Impl::mma && pl.warps >= mma::kMinWarps && pl.warps <= mma::kMaxWarps &&
                pl.rows_per_cta >= 16 && pl.rows_per_cta % 16 == 0 && pl.rows_per_cta <= mma::max_rows(pr.head_dim) &&
                pl.warps == mma::warps(pr.head_dim, pl.rows_per_cta) &&
                pl.smem_bytes == mma::smem_bytes(pr.head_dim, pl.rows_per_cta),
            "tree_attention::run: plan's mma launch shape (rows_per_cta {}, warps {}, smem {}) is inconsistent: "
            "create it with tree_attention::plan",
            pl.rows_per_cta, pl.warps, pl.smem_bytes);
  dispatch_dtype_head_dim(pr.dtype, pr.head_dim, "tree_attention::run (mma kernel)",
                          [&]<typename T, int D>() { launch_typed<T, D>(pl, prm, stream); });
}

}  // namespace spw::tree_attention::detail

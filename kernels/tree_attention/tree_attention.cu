// Tree-attention kernels, v0: CORRECTNESS FIRST, NOT THE FAST DESIGN (see tree_attention.h; the
// fast one is tree_attention_mma.cu). Also run(), which launches either.
// One CTA per (state, request, kv head, block of 16 query rows): state s < num_states - 1 is
// prefix chunk s, the last state is the tree part under the ancestor mask. Each warp keeps 4
// query rows (token, head of the GQA group) in registers with fp32 accumulators and the log2
// online softmax of kernels/common/softmax_state.h, streaming the keys of its range from global
// memory (rows of one CTA share every K/V load through L1; different row blocks re-read the
// chunk, mostly from L2). Each CTA writes fp32 partial (O, LSE) per row and state; the
// partials are combined by decode_attention::merge_states (fixed order -> deterministic).
// Missing (the mma kernel has them): tensor cores, cp.async KV staging, one prefix read per KV
// head for all rows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/common/cuda_check.h"
#include "kernels/common/dispatch.cuh"
#include "kernels/common/dtype.h"
#include "kernels/common/launch.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/common/softmax_state.h"
#include "kernels/tree_attention/launch.h"
#include "kernels/tree_attention/tree_attention.h"

namespace spw::tree_attention {

namespace {
constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerCta = kWarps * kRowsPerWarp;

using Params = detail::KernelParams;

template <typename T>
__device__ SPW_FORCEINLINE float as_float(T x) {
  if constexpr (std::is_same_v<T, half>) return __half2float(x);
  else return __bfloat162float(x);
}

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32) tree_partial_kernel(Params p) {
  constexpr int E = D / 32;  // elements per lane
  const int s = blockIdx.x, b = blockIdx.y / p.kv_heads, kh = blockIdx.y % p.kv_heads;
  const int g = p.qo_heads / p.kv_heads;
  const int t0 = p.tree_indptr[b], n_tree = p.tree_indptr[b + 1] - t0;
  const int n_rows = n_tree * g;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = blockIdx.z * kRowsPerCta + warp * kRowsPerWarp;
  if (row0 >= n_rows) return;
  const bool tree_part = s == p.num_states - 1;
  const int plen = p.prefix_lens[b];
  const long long c0 = static_cast<long long>(s) * p.chunk;  // (s + 1) * chunk may pass INT_MAX
  const int j0 = tree_part ? 0 : static_cast<int>(min(static_cast<long long>(plen), c0)),
            j1 = tree_part ? n_tree : static_cast<int>(min(static_cast<long long>(plen), c0 + p.chunk));

  float q[kRowsPerWarp][E], acc[kRowsPerWarp][E];
  SoftmaxState st[kRowsPerWarp];
  int tok[kRowsPerWarp];
  long long out_row[kRowsPerWarp];
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int lr = min(row0 + r, n_rows - 1);  // padded rows repeat the last one, never stored
    tok[r] = lr / g;
    const int h = kh * g + lr % g;
    out_row[r] = static_cast<long long>(t0 + tok[r]) * p.qo_heads + h;
    const T* qp = static_cast<const T*>(p.q) + out_row[r] * D + lane * E;
    for (int e = 0; e < E; ++e) {
      q[r][e] = as_float(qp[e]);
      acc[r][e] = 0.f;
    }
  }
  for (int j = j0; j < j1; ++j) {
    const T *kp, *vp;
    if (tree_part) {
      const long long off = (static_cast<long long>(t0 + j) * p.kv_heads + kh) * D;
      kp = static_cast<const T*>(p.k_tree) + off;
      vp = static_cast<const T*>(p.v_tree) + off;
    } else {
      const int page = p.indices[p.indptr[b] + j / p.page_size];
      const long long off = ((static_cast<long long>(page) * p.page_size + j % p.page_size) * p.kv_heads + kh) * D;
      kp = static_cast<const T*>(p.k_pages) + off;
      vp = static_cast<const T*>(p.v_pages) + off;
    }
    float k[E], v[E];
    for (int e = 0; e < E; ++e) {
      k[e] = as_float(kp[lane * E + e]);
      v[e] = as_float(vp[lane * E + e]);
    }
    for (int r = 0; r < kRowsPerWarp; ++r) {
      float dot = 0.f;
      for (int e = 0; e < E; ++e) dot = fmaf(q[r][e], k[e], dot);
      dot = warp_reduce_sum(dot);
      if (tree_part && !p.masks[t0 + tok[r]].test(j)) continue;  // warp-uniform
      float x = p.soft_cap > 0.f ? soft_cap(dot * p.scale_log2 * kLn2, p.soft_cap) * kLog2e : dot * p.scale_log2;
      float rescale, w;
      st[r].push(x, &rescale, &w);
      for (int e = 0; e < E; ++e) acc[r][e] = fmaf(w, v[e], acc[r][e] * rescale);
    }
  }
  for (int r = 0; r < kRowsPerWarp; ++r) {
    if (row0 + r >= n_rows) break;
    const long long srow = static_cast<long long>(s) * p.total_rows + out_row[r];
    const float inv = st[r].inv_sum();
    float* op = p.partial_o + srow * D + lane * E;
    for (int e = 0; e < E; ++e) op[e] = acc[r][e] * inv;
    if (lane == 0) p.partial_lse[srow] = st[r].lse();
  }
}

template <typename T, int D>
void launch(const Plan& pl, const Params& prm, cudaStream_t stream) {
  const int g = pl.problem.qo_heads / pl.problem.kv_heads;
  const dim3 grid(pl.num_states, pl.problem.batch * pl.problem.kv_heads, ceil_div(pl.max_tree_tokens * g, kRowsPerCta));
  spw::launch(tree_partial_kernel<T, D>, grid, kWarps * 32, 0, stream, prm);
  SPW_CUDA_CHECK_LAUNCH();
}
}  // namespace

void run(const Plan& pl, const Args& a, void* ws, size_t ws_bytes, Stream stream) {
  check_args(pl, a, ws, ws_bytes);
  const Problem& pr = pl.problem;
  auto* base = static_cast<std::byte*>(ws);
  if (!a.metadata_in_workspace)
    SPW_CUDA_CHECK(spw::copy_async(base, pl.host_meta.get(), pl.meta_bytes, cudaMemcpyHostToDevice, stream));
  Params prm{};
  prm.q = a.q;
  prm.k_tree = a.k_tree;
  prm.v_tree = a.v_tree;
  prm.k_pages = a.k_pages;
  prm.v_pages = a.v_pages;
  prm.indptr = a.indptr;
  prm.indices = a.indices;
  prm.tree_indptr = reinterpret_cast<const int32_t*>(base);
  prm.prefix_lens = reinterpret_cast<const int32_t*>(base + pl.prefix_lens_offset);
  prm.masks = reinterpret_cast<const AncestorMask*>(base + pl.masks_offset);
  prm.partial_o = reinterpret_cast<float*>(base + pl.partial_o_offset);
  prm.partial_lse = reinterpret_cast<float*>(base + pl.partial_lse_offset);
  prm.qo_heads = pr.qo_heads;
  prm.kv_heads = pr.kv_heads;
  prm.page_size = pr.page_size;
  prm.chunk = std::max(pl.prefix_chunk_tokens, 1);
  prm.num_states = pl.num_states;
  prm.total_rows = pl.total_tokens * pr.qo_heads;
  prm.batch_heads = pr.batch * pr.kv_heads;
  prm.rows_per_cta = pl.rows_per_cta;
  prm.row_blocks = pl.row_blocks;
  prm.sm_scale = pl.sm_scale;
  prm.scale_log2 = pl.sm_scale * kLog2e;
  prm.soft_cap = pr.soft_cap;
  auto st = static_cast<cudaStream_t>(stream);
  if (pl.impl == Impl::mma) {
    detail::launch_mma(pl, prm, st);
  } else {
    SPW_CHECK(pl.impl == Impl::v0, "tree_attention::run: plan.impl = {}: not a kernel (create the plan with plan())",
              impl_name(pl.impl));
    dispatch_dtype_head_dim(pr.dtype, pr.head_dim, "tree_attention::run",
                            [&]<typename T, int D>() { launch<T, D>(pl, prm, st); });
  }
  decode_attention::MergeProblem mp;
  mp.rows = prm.total_rows;
  mp.num_states = pl.num_states;
  mp.head_dim = pr.head_dim;
  mp.in_dtype = DType::f32;
  mp.out_dtype = pr.dtype;
  decode_attention::merge_states(mp, prm.partial_o, prm.partial_lse, a.o, a.lse, stream);
}

}  // namespace spw::tree_attention

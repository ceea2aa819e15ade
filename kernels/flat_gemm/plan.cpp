// Flat GEMM planning and argument checks (host). plan() only picks an impl and a grid;
// run() (flat_gemm.cu) re-checks the arguments and launches.
#include <algorithm>

#include "kernels/common/error.h"
#include "kernels/common/vec.h"
#include "kernels/flat_gemm/flat_gemm.h"

namespace spw::flat_gemm {

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::automatic: return "automatic";
    case Impl::gemv: return "gemv";
    case Impl::mma: return "mma";
    case Impl::cublaslt: return "cublaslt";
  }
  return "?";
}

void check_problem(const Problem& p, const char* w) {
  SPW_CHECK_ARG(p.dtype == DType::f16 || p.dtype == DType::bf16, w, "dtype", dtype_name(p.dtype),
                "must be fp16 or bf16");
  SPW_CHECK_ARG(p.out_dtype == p.dtype || p.out_dtype == DType::f32, w, "out_dtype", dtype_name(p.out_dtype),
                fmt::format("must be the input dtype ({}) or fp32", dtype_name(p.dtype)));
  SPW_CHECK_ARG(p.m >= 1, w, "m", p.m, "must be >= 1");
  SPW_CHECK_ARG(p.n >= 1, w, "n", p.n, "must be >= 1");
  SPW_CHECK_ARG(p.k >= 8 && p.k % 8 == 0, w, "k", p.k, "must be a positive multiple of 8 (16-byte rows)");
  SPW_CHECK_ARG(!p.swiglu || p.n % 2 == 0, w, "n", p.n,
                "must be even with swiglu (rows [0, n/2) gate, [n/2, n) up)");
  SPW_CHECK_ARG(static_cast<long long>(p.m) * p.k < (1LL << 31) && static_cast<long long>(p.n) * p.k < (1LL << 40),
                w, "m * k", static_cast<long long>(p.m) * p.k, "too large");
}

Plan plan(const Problem& p, const DeviceInfo& device, Options o) {
  constexpr const char* w = "flat_gemm::plan";
  check_problem(p, w);
  SPW_CHECK_ARG(device.sm_count > 0, w, "device.sm_count", device.sm_count, "must be > 0");
  SPW_CHECK_ARG(o.impl >= Impl::automatic && o.impl <= Impl::cublaslt, w, "options.impl", static_cast<int>(o.impl),
                "must be automatic (0), gemv (1), mma (2) or cublaslt (3)");
  SPW_CHECK_ARG(o.split_k >= 0 && o.split_k <= kMaxSplitK, w, "options.split_k", o.split_k,
                "must be 0 (dispatcher) or in [1, 16]");
  SPW_CHECK_ARG(o.cublaslt_algo >= 0 && o.cublaslt_algo < kCublasLtAlgos, w, "options.cublaslt_algo",
                o.cublaslt_algo, "must be in [0, 8)");
  SPW_CHECK_ARG(!o.batch_invariant || o.impl == Impl::automatic || o.impl == Impl::mma, w, "options.impl",
                impl_name(o.impl), "must be automatic or mma with options.batch_invariant");
  SPW_CHECK_ARG(o.impl != Impl::gemv || p.m <= kMaxGemvM, w, "m", p.m, "must be <= 8 for the gemv impl");
  SPW_CHECK_ARG(o.impl != Impl::mma || p.m <= kMaxFlatM || o.batch_invariant, w, "m", p.m,
                "must be <= 64 for the mma impl (or options.batch_invariant: 64-row slices)");
  SPW_CHECK_ARG(o.split_k <= 1 || o.impl == Impl::mma || o.impl == Impl::automatic, w, "options.split_k", o.split_k,
                fmt::format("split-K exists only on the mma impl (impl = {})", impl_name(o.impl)));

  Plan pl;
  pl.problem = p;
  if (o.batch_invariant) {
    // One impl and one K split for every M of this (N, K) on this device: the rules' split
    // (which does not look at M) unless one is given.
    pl.batch_invariant = true;
    o.impl = Impl::mma;
    if (o.split_k == 0) o.split_k = rule_split_k(mma_n_tiles(p), p.k, device.sm_count);
  }
  Choice c = pl.batch_invariant ? Choice{Impl::mma, o.split_k, false} : dispatch(p, device);
  if (o.impl != Impl::automatic && o.impl != c.impl) {
    c = {o.impl, o.impl == Impl::mma ? rule_split_k(mma_n_tiles(p), p.k, device.sm_count) : 1, false};
  }
  // An explicit split asks for the split-K path, unless impl names gemv or cublaslt (which the
  // checks above allow only with split_k 1: no split).
  if (o.split_k > 0 && (o.impl == Impl::automatic || o.impl == Impl::mma)) {
    c.impl = Impl::mma;
    SPW_CHECK_ARG(p.m <= kMaxFlatM || pl.batch_invariant, w, "m", p.m,
                  "must be <= 64 for the mma impl (options.split_k given)");
    c.split_k = o.split_k;
    c.from_table = false;
  }
  pl.impl = c.impl;
  pl.from_table = c.from_table;
  pl.cublaslt_algo = pl.impl == Impl::cublaslt ? o.cublaslt_algo : 0;
  const size_t partial_row_bytes = size_t(std::min(p.m, kMaxFlatM)) * p.n * sizeof(float);
  if (pl.impl == Impl::mma) {
    pl.m_tiles = mma_m_tiles(p.m);  // of the first 64-row slice
    pl.n_tiles = mma_n_tiles(p);
    const int k_steps = ceil_div(p.k, kTileK);
    int split = std::clamp(c.split_k, 1, std::min(kMaxSplitK, k_steps));
    pl.k_chunk = ceil_div(k_steps, split) * kTileK;
    pl.split_k = ceil_div(p.k, pl.k_chunk);  // no empty split
    if (pl.split_k > 1) pl.partial_bytes = round_up(size_t(pl.split_k) * partial_row_bytes, size_t(256));
    pl.workspace_bytes = pl.partial_bytes;
  } else if (pl.impl == Impl::gemv) {
    pl.k_chunk = p.k;
  } else {  // cublaslt: fp32 product into the workspace when an epilogue is fused by our kernel
    pl.k_chunk = p.k;
    const bool epilogue = p.has_bias || p.has_residual || p.swiglu;
    if (epilogue) pl.partial_bytes = round_up(partial_row_bytes, size_t(256));
    pl.workspace_bytes = pl.partial_bytes + kCublasLtWorkspace;
  }
  return pl;
}

void check_args(const Plan& pl, const Args& a, const void* ws, size_t ws_bytes) {
  constexpr const char* w = "flat_gemm::run";
  const Problem& p = pl.problem;
  check_problem(p, w);
  auto ptr_str = [](const void* q) { return fmt::format("{}", q); };
  SPW_CHECK_ARG(a.x != nullptr && is_aligned(a.x, 16), w, "x", ptr_str(a.x), "must be a 16-byte aligned device pointer");
  SPW_CHECK_ARG(a.w != nullptr && is_aligned(a.w, 16), w, "w", ptr_str(a.w), "must be a 16-byte aligned device pointer");
  SPW_CHECK_ARG(a.y != nullptr && is_aligned(a.y, dtype_size(p.out_dtype)), w, "y", ptr_str(a.y),
                "must be a device pointer aligned to the output element size");
  SPW_CHECK_ARG((a.bias != nullptr) == p.has_bias, w, "bias", ptr_str(a.bias),
                p.has_bias ? "must be set (problem.has_bias)" : "must be null (problem.has_bias is false)");
  SPW_CHECK_ARG(!a.bias || is_aligned(a.bias, 2), w, "bias", ptr_str(a.bias), "must be 2-byte aligned");
  SPW_CHECK_ARG((a.residual != nullptr) == p.has_residual, w, "residual", ptr_str(a.residual),
                p.has_residual ? "must be set (problem.has_residual)" : "must be null (problem.has_residual is false)");
  SPW_CHECK_ARG(!a.residual || is_aligned(a.residual, dtype_size(p.out_dtype)), w, "residual", ptr_str(a.residual),
                "must be aligned to the output element size");
  SPW_CHECK_ARG(pl.impl == Impl::gemv || pl.impl == Impl::mma || pl.impl == Impl::cublaslt, w, "plan.impl",
                static_cast<int>(pl.impl), "is not a planned impl (use flat_gemm::plan)");
  SPW_CHECK_ARG(pl.impl != Impl::gemv || p.m <= kMaxGemvM, w, "plan.problem.m", p.m, "must be <= 8 for gemv");
  SPW_CHECK_ARG(pl.impl != Impl::mma || ((p.m <= kMaxFlatM || pl.batch_invariant) && pl.split_k >= 1 &&
                                         pl.k_chunk % kTileK == 0 &&
                                         size_t(pl.split_k - 1) * pl.k_chunk < size_t(p.k)),
                w, "plan.split_k", pl.split_k, "plan is inconsistent (use flat_gemm::plan)");
  SPW_CHECK_ARG(pl.impl != Impl::cublaslt || a.cublaslt_handle != nullptr, w, "cublaslt_handle", "null",
                "the cublaslt impl needs a cublasLtHandle_t created by the caller");
  SPW_CHECK_ARG(ws_bytes >= pl.workspace_bytes, w, "workspace_bytes", ws_bytes,
                fmt::format("must be >= plan.workspace_bytes = {}", pl.workspace_bytes));
  SPW_CHECK_ARG(pl.workspace_bytes == 0 || (ws != nullptr && is_aligned(ws, 16)), w, "workspace", ptr_str(ws),
                "must be a 16-byte aligned device pointer");
}

#if !SPW_HAVE_CUDA
void run(const Plan& plan, const Args& args, void* workspace, size_t workspace_bytes, Stream) {
  check_args(plan, args, workspace, workspace_bytes);
  fail("flat_gemm::run: not supported: built without CUDA");
}
#endif

}  // namespace spw::flat_gemm

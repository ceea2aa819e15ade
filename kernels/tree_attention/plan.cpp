// Tree-attention planning (host): validates the parent arrays, derives depths, position ids and
// the 128-bit ancestor masks the kernel applies to the tree part, splits the prefix into chunks
// so a long prefix fills the GPU, and sizes the launch of the chosen kernel (see tree_attention.h).
//
// Prefix split for the mma kernel: a CTA holds all T x group rows of a KV head, so every chunk
// costs a partial state of rows x head_dim fp32 (written, then read by the merge) -- with
// T x group = 256 rows and a 256-token chunk that is as many bytes as the chunk's K/V. More
// chunks buy parallelism, fewer save partial traffic; mma_cost() below weighs the two with a
// small model (tensor-core time or HBM time per CTA, SM waves, partial bytes) and plan() takes
// the cheapest of ~20 candidate chunk sizes. Its constants are H100-class estimates, not
// measurements: Problem::chunk_tokens overrides the choice for benchmarks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/common/pinned.h"
#include "kernels/common/error.h"
#include "kernels/common/device.h"
#include "kernels/decode_attention/decode_attention.h"
#include "kernels/tree_attention/mma_shape.h"
#include "kernels/tree_attention/tree_attention.h"

#if SPW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace spw::tree_attention {

namespace {
constexpr int kMinChunk = 256;
constexpr int kChunkGranule = 64;
constexpr int kCtasPerSm = 2;
constexpr size_t kAlign = 256;

// mma prefix-split cost model (ns; H100-class estimates, see the top of the file).
constexpr double kMmaFlopsPerNsPerSm = 3000.0;  // ~400 TFLOP/s of mma.sync on 132 SMs
constexpr double kHbmBytesPerNs = 3000.0;       // ~3 TB/s
constexpr double kPartialBytesPerNs = 6000.0;   // partial states: written, then read by the merge (mostly L2)
constexpr double kCtaNs = 1500.0;               // pipeline fill + epilogue of one CTA
constexpr int kMmaChunkGranule = 64;            // a multiple of every K/V tile height (64 / 32 rows)

struct MmaGeometry {
  int sm_count, head_dim, group, kv_heads, qo_heads, rows_per_cta;
};

// Estimated time of the mma kernel's prefix part plus the partial-state traffic for a uniform
// prefix chunk of c tokens (the tree part does not depend on c).
double mma_cost(const MmaGeometry& g, std::span<const int32_t> prefix_lens, std::span<const int32_t> tree_sizes,
                long long c) {
  const double hbm_per_sm = kHbmBytesPerNs / g.sm_count;
  double sum = 0, worst = 0, partial_bytes = 0, ctas = 0;
  for (size_t b = 0; b < prefix_lens.size(); ++b) {
    const long long p = prefix_lens[b];
    if (p == 0) continue;
    const long long rows = static_cast<long long>(tree_sizes[b]) * g.group;
    const long long blocks = ceil_div<long long>(rows, g.rows_per_cta);
    const double block_rows = static_cast<double>(round_up<long long>(ceil_div(rows, blocks), 16));
    auto cta = [&](long long keys) {
      const double flops = 4.0 * block_rows * static_cast<double>(keys) * g.head_dim;
      const double bytes = 4.0 * static_cast<double>(keys) * g.head_dim;  // K + V, 2 bytes each
      return kCtaNs + std::max(flops / kMmaFlopsPerNsPerSm, bytes / hbm_per_sm);
    };
    const long long full = p / c, rem = p % c, chunks = full + (rem > 0 ? 1 : 0);
    const double per = static_cast<double>(g.kv_heads) * static_cast<double>(blocks);
    sum += per * (static_cast<double>(full) * cta(c) + (rem > 0 ? cta(rem) : 0.0));
    ctas += per * static_cast<double>(chunks);
    worst = std::max(worst, cta(std::min(p, c)));
    partial_bytes += 2.0 * static_cast<double>(chunks) * tree_sizes[b] * g.qo_heads * (g.head_dim + 1) * 4.0;
  }
  if (ctas == 0) return 0;
  const double waves = std::ceil(ctas / g.sm_count), quantization = waves * g.sm_count / ctas;
  return std::max(worst, sum / g.sm_count * quantization) + partial_bytes / kPartialBytesPerNs;
}

// The cheapest chunk among ceil(max_prefix / n) for n = 1 .. 256 (rounded to the granule).
int mma_chunk(const MmaGeometry& g, std::span<const int32_t> prefix_lens, std::span<const int32_t> tree_sizes,
              long long max_prefix) {
  static constexpr int kSplits[] = {1,  2,  3,  4,  5,  6,  8,  10,  12,  16,  20,  24,  28, 32,
                                    40, 48, 56, 64, 80, 96, 128, 160, 192, 256};
  long long best_c = round_up<long long>(max_prefix, kMmaChunkGranule), last = -1;
  double best = mma_cost(g, prefix_lens, tree_sizes, best_c);
  for (int n : kSplits) {
    const long long c = round_up<long long>(ceil_div<long long>(max_prefix, n), kMmaChunkGranule);
    if (c == last) continue;
    last = c;
    const double t = mma_cost(g, prefix_lens, tree_sizes, c);
    if (t < best) best = t, best_c = c;  // ties keep the larger chunk (fewer states)
  }
  return static_cast<int>(std::min<long long>(best_c, 1 << 30));
}

}  // namespace

void check_problem(const Problem& p, const char* w) {
  decode_attention::check_heads(w, p.batch, p.qo_heads, p.kv_heads, p.head_dim, p.dtype);
  SPW_CHECK_ARG(p.page_size >= 1, w, "page_size", p.page_size, "must be >= 1");
  SPW_CHECK_ARG(std::isfinite(p.sm_scale) && p.sm_scale >= 0.f, w, "sm_scale", p.sm_scale,
                "must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  SPW_CHECK_ARG(std::isfinite(p.soft_cap) && p.soft_cap >= 0.f, w, "soft_cap", p.soft_cap,
                "must be finite and >= 0 (0 = off)");
  SPW_CHECK_ARG(p.impl == Impl::automatic || p.impl == Impl::v0 || p.impl == Impl::mma, w, "impl",
                static_cast<int>(p.impl), "must be automatic (0), v0 (1) or mma (2)");
  SPW_CHECK_ARG(p.chunk_tokens == 0 || p.chunk_tokens >= 16, w, "chunk_tokens", p.chunk_tokens,
                "must be 0 (planner's choice) or >= 16");
  SPW_CHECK_ARG(p.max_rows_per_cta == 0 || (p.max_rows_per_cta >= 16 && p.max_rows_per_cta % 16 == 0), w,
                "max_rows_per_cta", p.max_rows_per_cta, "must be 0 (kernel limit) or a positive multiple of 16");
}

decode_attention::Problem prefix_problem(const Problem& p) {
  decode_attention::Problem d;
  d.batch = p.batch;
  d.qo_heads = p.qo_heads;
  d.kv_heads = p.kv_heads;
  d.head_dim = p.head_dim;
  d.dtype = p.dtype;
  d.layout = decode_attention::Layout::paged;
  d.page_size = p.page_size;
  d.sm_scale = p.sm_scale;
  d.soft_cap = p.soft_cap;
  return d;
}

Plan plan(const Problem& p, std::span<const int32_t> prefix_lens, std::span<const int32_t> tree_sizes,
          std::span<const int32_t> parents, const DeviceInfo& device, PlanHostArena* host) {
  constexpr const char* w = "tree_attention::plan";
  check_problem(p, w);
  SPW_CHECK_ARG(device.sm_count > 0, w, "device.sm_count", device.sm_count, "must be > 0");
  SPW_CHECK_ARG(prefix_lens.size() == static_cast<size_t>(p.batch), w, "prefix_lens.size()", prefix_lens.size(),
                fmt::format("must equal batch = {}", p.batch));
  SPW_CHECK_ARG(tree_sizes.size() == static_cast<size_t>(p.batch), w, "tree_sizes.size()", tree_sizes.size(),
                fmt::format("must equal batch = {}", p.batch));
  Plan pl;
  pl.problem = p;
  pl.sm_scale = p.sm_scale > 0.f ? p.sm_scale : 1.f / std::sqrt(static_cast<float>(p.head_dim));
  pl.tree_indptr.assign(1, 0);
  long long total_prefix = 0, max_prefix = 0;
  for (int b = 0; b < p.batch; ++b) {
    SPW_CHECK_ARG(prefix_lens[b] >= 0, w, fmt::format("prefix_lens[{}]", b), prefix_lens[b], "must be >= 0");
    SPW_CHECK_ARG(tree_sizes[b] >= 1 && tree_sizes[b] <= kMaxTreeTokens, w, fmt::format("tree_sizes[{}]", b),
                  tree_sizes[b], fmt::format("must be in [1, {}]", kMaxTreeTokens));
    pl.tree_indptr.push_back(pl.tree_indptr.back() + tree_sizes[b]);
    pl.max_tree_tokens = std::max(pl.max_tree_tokens, tree_sizes[b]);
    total_prefix += prefix_lens[b];
    max_prefix = std::max<long long>(max_prefix, prefix_lens[b]);
  }
  pl.total_tokens = pl.tree_indptr.back();
  SPW_CHECK_ARG(parents.size() == static_cast<size_t>(pl.total_tokens), w, "parents.size()", parents.size(),
                fmt::format("must equal the sum of tree_sizes = {}", pl.total_tokens));
  pl.prefix_lens.assign(prefix_lens.begin(), prefix_lens.end());
  pl.parents.assign(parents.begin(), parents.end());
  pl.depths.resize(pl.total_tokens);
  pl.positions.resize(pl.total_tokens);
  pl.masks.resize(pl.total_tokens);
  for (int b = 0; b < p.batch; ++b) {
    const int base = pl.tree_indptr[b];
    for (int i = 0; i < tree_sizes[b]; ++i) {
      const int par = parents[base + i];
      // parent < own index makes cycles impossible and the array a topological order.
      SPW_CHECK_ARG(par >= -1 && par < i, w, fmt::format("parents[{}] (request {}, token {})", base + i, b, i), par,
                    "must be -1 (child of the prefix) or < the token's own index");
      AncestorMask m = par >= 0 ? pl.masks[base + par] : AncestorMask{};
      m.set(i);
      pl.masks[base + i] = m;
      pl.depths[base + i] = par >= 0 ? pl.depths[base + par] + 1 : 0;
      pl.positions[base + i] = prefix_lens[b] + pl.depths[base + i];
    }
  }
  const int group = p.qo_heads / p.kv_heads;
  const long long max_rows = static_cast<long long>(pl.max_tree_tokens) * group;
  pl.impl = p.impl == Impl::automatic ? Impl::mma : p.impl;
  if (pl.impl == Impl::v0) {
    SPW_CHECK_ARG(static_cast<long long>(p.batch) * p.kv_heads <= 65535, w, "batch * kv_heads",
                  static_cast<long long>(p.batch) * p.kv_heads, "must be <= 65535 for the v0 kernel (grid y); use mma");
    pl.rows_per_cta = 16;
    pl.row_blocks = static_cast<int>(ceil_div<long long>(max_rows, 16));
    pl.warps = 4;
    // Prefix split: the tree rows of one (request, kv head) form one tile; chunk the prefix so the
    // tiles fill the GPU, never below kMinChunk tokens.
    if (max_prefix > 0) {
      const long long target = static_cast<long long>(device.sm_count) * kCtasPerSm;
      long long chunk = ceil_div<long long>(total_prefix * p.kv_heads, target);
      chunk = round_up<long long>(std::max<long long>(chunk, kMinChunk), kChunkGranule);
      pl.prefix_chunk_tokens = static_cast<int>(std::min<long long>(std::min(chunk, max_prefix), 1 << 30));
    }
  } else {
    SPW_CHECK_ARG(device.cc_major == 0 || device.cc_major >= 8, w, "device compute capability",
                  fmt::format("{}.{}", device.cc_major, device.cc_minor), "the mma kernel needs sm_80 or newer");
    const int d = p.head_dim;
    const int smem_limit = device.max_smem_per_block > 0 ? device.max_smem_per_block : 227 * 1024;
    int cap = std::min(mma::max_rows(d), (smem_limit - mma::kv_smem_bytes(d)) / (2 * mma::row_stride(d)) / 16 * 16);
    SPW_CHECK_ARG(cap >= 16, w, "device.max_smem_per_block", smem_limit,
                  fmt::format("the mma kernel needs at least {} bytes for head_dim {}", mma::smem_bytes(d, 16), d));
    if (p.max_rows_per_cta > 0) cap = std::min(cap, p.max_rows_per_cta);
    const long long blocks = ceil_div<long long>(max_rows, cap);
    pl.row_blocks = static_cast<int>(blocks);
    pl.rows_per_cta = static_cast<int>(round_up<long long>(ceil_div(max_rows, blocks), 16));  // balanced, <= cap
    pl.warps = mma::warps(d, pl.rows_per_cta);
    pl.smem_bytes = mma::smem_bytes(d, pl.rows_per_cta);
    if (max_prefix > 0)
      pl.prefix_chunk_tokens = mma_chunk({device.sm_count, d, group, p.kv_heads, p.qo_heads, pl.rows_per_cta},
                                         prefix_lens, tree_sizes, max_prefix);
  }
  if (max_prefix > 0 && p.chunk_tokens > 0) pl.prefix_chunk_tokens = p.chunk_tokens;
  // Workspace: metadata image, then one fp32 partial state per (prefix chunk | tree part) per row.
  int max_chunks = 0;
  for (int b = 0; b < p.batch; ++b)
    if (pl.prefix_chunk_tokens > 0) max_chunks = std::max(max_chunks, ceil_div(prefix_lens[b], pl.prefix_chunk_tokens));
  pl.num_states = max_chunks + 1;
  const long long ctas = static_cast<long long>(pl.num_states) * p.batch * p.kv_heads * pl.row_blocks;
  SPW_CHECK_ARG(ctas <= (1LL << 31) - 1, w, "grid", ctas,
                "too many CTAs (states x batch x kv_heads x row blocks): raise chunk_tokens");
  pl.prefix_lens_offset = round_up(pl.tree_indptr.size() * sizeof(int32_t), kAlign);
  pl.masks_offset = pl.prefix_lens_offset + round_up(static_cast<size_t>(p.batch) * sizeof(int32_t), kAlign);
  pl.meta_bytes = pl.masks_offset + pl.masks.size() * sizeof(AncestorMask);
  pl.host_meta = plan_host_memory(pl.meta_bytes, host);
  std::memcpy(pl.host_meta.get(), pl.tree_indptr.data(), pl.tree_indptr.size() * sizeof(int32_t));
  std::memcpy(pl.host_meta.get() + pl.prefix_lens_offset, pl.prefix_lens.data(), pl.prefix_lens.size() * sizeof(int32_t));
  std::memcpy(pl.host_meta.get() + pl.masks_offset, pl.masks.data(), pl.masks.size() * sizeof(AncestorMask));
  const size_t rows = static_cast<size_t>(pl.num_states) * pl.total_tokens * p.qo_heads;
  pl.partial_o_offset = round_up(pl.meta_bytes, kAlign);
  pl.partial_lse_offset = pl.partial_o_offset + round_up(rows * p.head_dim * sizeof(float), kAlign);
  pl.workspace_bytes = pl.partial_lse_offset + round_up(rows * sizeof(float), kAlign);
  return pl;
}

void validate_page_table(const Plan& pl, std::span<const int32_t> indptr, std::span<const int32_t> indices,
                         std::span<const int32_t> last_page_len, int num_pages) {
  decode_attention::validate_page_table(prefix_problem(pl.problem), pl.prefix_lens, indptr, indices, last_page_len,
                                        num_pages);
}

void check_args(const Plan& pl, const Args& a, const void* ws, size_t ws_bytes) {
  constexpr const char* w = "tree_attention::run";
  SPW_CHECK_ARG(pl.total_tokens > 0 && pl.host_meta != nullptr, w, "plan", "empty", "create it with tree_attention::plan");
  check_problem(pl.problem, w);
  auto ptr = [&](const void* x, const char* name, std::uintptr_t align) {
    SPW_CHECK_ARG(x != nullptr, w, name, "null", "must be a device pointer");
    SPW_CHECK_ARG(reinterpret_cast<std::uintptr_t>(x) % align == 0, w, name, x,
                  fmt::format("must be {}-byte aligned", align));
  };
  ptr(a.q, "q", 16);
  ptr(a.k_tree, "k_tree", 16);
  ptr(a.v_tree, "v_tree", 16);
  ptr(a.o, "o", 16);
  if (a.lse) ptr(a.lse, "lse", 4);
  bool any_prefix = false;
  for (int32_t l : pl.prefix_lens) any_prefix |= l > 0;
  if (any_prefix) {
    ptr(a.k_pages, "k_pages", 16);
    ptr(a.v_pages, "v_pages", 16);
    ptr(a.indptr, "indptr", 4);
    ptr(a.indices, "indices", 4);
  }
  SPW_CHECK_ARG(ws_bytes >= pl.workspace_bytes, w, "workspace_bytes", ws_bytes,
                fmt::format("is too small: the plan needs {} bytes", pl.workspace_bytes));
  ptr(ws, "workspace", 16);
}

#if !SPW_HAVE_CUDA
void run(const Plan& pl, const Args& a, void* ws, size_t n, Stream) {
  check_args(pl, a, ws, n);
  fail("tree_attention::run: Spillway was built without CUDA (GPU kernels not supported in this build)");
}
#endif

}  // namespace spw::tree_attention

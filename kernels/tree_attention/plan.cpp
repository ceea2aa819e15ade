// Tree-attention planning (host): validates the parent arrays, derives depths, position ids and
// the 128-bit ancestor masks the kernel applies to the tree part, and splits the prefix into
// chunks like decode_attention so a long prefix fills the GPU (see tree_attention.h).
#include <algorithm>
#include <cmath>

#include "kernels/common/error.h"
#include "kernels/tree_attention/tree_attention.h"

namespace spw::tree_attention {

namespace {
constexpr int kMinChunk = 256;
constexpr int kChunkGranule = 64;
constexpr int kCtasPerSm = 2;
constexpr size_t kAlign = 256;
}  // namespace

void check_problem(const Problem& p, const char* w) {
  SPW_CHECK_ARG(p.batch >= 1, w, "batch", p.batch, "must be >= 1");
  SPW_CHECK_ARG(p.qo_heads >= 1, w, "qo_heads", p.qo_heads, "must be >= 1");
  SPW_CHECK_ARG(p.kv_heads >= 1, w, "kv_heads", p.kv_heads, "must be >= 1");
  SPW_CHECK_ARG(p.qo_heads % p.kv_heads == 0, w, "qo_heads", p.qo_heads,
                fmt::format("must be divisible by kv_heads = {}", p.kv_heads));
  SPW_CHECK_ARG(p.head_dim == 64 || p.head_dim == 128 || p.head_dim == 256, w, "head_dim", p.head_dim,
                "must be 64, 128 or 256");
  SPW_CHECK_ARG(p.dtype == DType::f16 || p.dtype == DType::bf16, w, "dtype", dtype_name(p.dtype),
                "must be fp16 or bf16");
  SPW_CHECK_ARG(p.page_size >= 1, w, "page_size", p.page_size, "must be >= 1");
  SPW_CHECK_ARG(std::isfinite(p.sm_scale) && p.sm_scale >= 0.f, w, "sm_scale", p.sm_scale,
                "must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  SPW_CHECK_ARG(std::isfinite(p.soft_cap) && p.soft_cap >= 0.f, w, "soft_cap", p.soft_cap,
                "must be finite and >= 0 (0 = off)");
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
          std::span<const int32_t> parents, const DeviceInfo& device) {
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
  // Prefix split: the tree rows of one (request, kv head) form one tile; chunk the prefix so the
  // tiles fill the GPU, never below kMinChunk tokens.
  if (max_prefix > 0) {
    const long long target = static_cast<long long>(device.sm_count) * kCtasPerSm;
    long long chunk = ceil_div<long long>(total_prefix * p.kv_heads, target);
    chunk = round_up<long long>(std::max<long long>(chunk, kMinChunk), kChunkGranule);
    pl.prefix_chunk_tokens = static_cast<int>(std::min<long long>(std::min(chunk, max_prefix), 1 << 30));
  }
  // Workspace: partial (O, LSE) in fp32 per prefix chunk plus one for the tree part, per row.
  long long states = 0;
  for (int b = 0; b < p.batch; ++b) {
    const long long chunks = pl.prefix_chunk_tokens > 0 ? ceil_div<long long>(prefix_lens[b], pl.prefix_chunk_tokens) : 0;
    states += (chunks + 1) * tree_sizes[b];
  }
  const size_t rows = static_cast<size_t>(states) * p.qo_heads;
  pl.workspace_bytes = round_up(rows * p.head_dim * sizeof(float), kAlign) + round_up(rows * sizeof(float), kAlign);
  return pl;
}

void run(const Plan& pl, const Args& a, void*, size_t, Stream) {
  (void)a;
  SPW_CHECK_ARG(pl.total_tokens > 0, "tree_attention::run", "plan", "empty", "create it with tree_attention::plan");
  fail("tree_attention::run: the GPU kernel is not implemented yet, so running is not supported (plan() and the CPU reference are)");
}

}  // namespace spw::tree_attention

// Tree-mask attention for verifying a token tree (SpecInfer / Medusa style speculative decoding).
//
// Per request r: T_r tree tokens (T_r <= kMaxTreeTokens = 128), each with its query and its own
// K/V, a parent array (parent[i] < i, -1 = child of the prefix) and a cached prefix of
// prefix_len_r tokens in the paged layout of decode_attention. Token i attends to the whole
// prefix, to its tree ancestors and to itself:
//   O[t, h]   = sum_{j in prefix + anc(t) + t} softmax_j(s_j) V_j      s_j = cap(sm_scale q[t,h].K_j)
//   LSE[t, h] = ln sum_j exp(s_j)  (natural log)
// The chain case (parent[i] = i - 1) is plain causal attention over the draft, same code path.
//
// Kernels (Problem::impl selects; automatic = mma):
//  - mma (tree_attention_mma.cu, the fast one): one CTA per (prefix chunk | tree part, request, KV
//    head, row block) processes all T x group query rows of that KV head (up to 256 rows per CTA
//    for head_dim 64/128, 128 for 256; more rows -> row blocks) against ONE read of its prefix
//    chunk: K/V tiles in a cp.async ring, mma.sync m16n8k16 for Q.K^T and P.V with fp32
//    accumulation, log2-domain online softmax; the tree part (T <= 128 keys) under the ancestor
//    bitmask. plan() picks the prefix chunk from a small cost model (parallelism vs. the partial
//    states' traffic).
//  - v0 (tree_attention.cu): CUDA cores, one CTA per 16 query rows; kept as a cross-check.
// Both write fp32 partial (O, LSE) per (prefix chunk | tree part) and row in the same workspace
// layout, merged by decode_attention::merge_states (reused; fixed order -> deterministic).
// plan() does all host work: parent validation, depths / position ids, the 128-bit ancestor
// masks, the prefix split and the kernel's launch shape.
//
// Layouts: tokens of all requests concatenated (tree_indptr [batch + 1] token offsets):
//   q      [total_tokens, qo_heads, head_dim]      k_tree / v_tree [total_tokens, kv_heads, head_dim]
//   prefix: k_pages / v_pages [num_pages, page_size, kv_heads, head_dim] + CSR page table
//           (indptr / indices / last_page_len) exactly as decode_attention (layout paged).
//   o      [total_tokens, qo_heads, head_dim]       lse [total_tokens, qo_heads] fp32 (optional)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/common/device.h"
#include "kernels/common/dtype.h"
#include "kernels/common/platform.h"
#include "kernels/decode_attention/decode_attention.h"

namespace spw::tree_attention {

/// Most tree tokens per request (the ancestor mask is 128 bits).
inline constexpr int kMaxTreeTokens = 128;

/// Kernel of the partial states. automatic = mma.
enum class Impl : int { automatic = 0, v0 = 1, mma = 2 };
constexpr std::string_view impl_name(Impl i) {
  switch (i) {
    case Impl::automatic: return "auto";
    case Impl::v0: return "v0";
    case Impl::mma: return "mma";
  }
  return "unknown-impl";
}

struct Problem {
  int batch = 0;
  int qo_heads = 0;
  int kv_heads = 0;
  int head_dim = 128;        // 64, 128 or 256
  DType dtype = DType::f16;  // fp16 or bf16
  int page_size = 16;        // prefix pages
  float sm_scale = 0.f;      // 0 -> 1 / sqrt(head_dim)
  float soft_cap = 0.f;      // 0 = off
  Impl impl = Impl::automatic;
  // Tuning overrides for benchmarks and tests (0 = the planner's choice):
  int chunk_tokens = 0;      // prefix tokens per partial state (>= 16)
  int max_rows_per_cta = 0;  // mma: at most this many query rows per CTA (multiple of 16)
};

/// 128-bit ancestor set of a tree token: bit j set <=> token j is an ancestor of the token or
/// the token itself (j indexes the request's tree tokens).
struct AncestorMask {
  uint64_t bits[2] = {0, 0};
  SPW_HD bool test(int j) const { return (bits[j >> 6] >> (j & 63)) & 1u; }
  SPW_HD void set(int j) { bits[j >> 6] |= uint64_t{1} << (j & 63); }
};

struct Plan {
  Problem problem;
  float sm_scale = 0.f;
  std::vector<int32_t> prefix_lens;     // [batch]
  std::vector<int32_t> tree_indptr;     // [batch + 1]
  std::vector<int32_t> parents;         // [total_tokens], request-local indices, -1 = root level
  std::vector<int32_t> depths;          // [total_tokens], root level = 0
  std::vector<int32_t> positions;       // [total_tokens] = prefix_len + depth (position ids for RoPE)
  std::vector<AncestorMask> masks;      // [total_tokens]
  int total_tokens = 0;
  int max_tree_tokens = 0;
  int prefix_chunk_tokens = 0;          // prefix split (decode_attention style); 0 = no prefix
  int num_states = 1;                   // partial states per row: max prefix chunks + 1 (tree part)
  Impl impl = Impl::mma;                // the kernel run() launches (never automatic)
  // mma launch shape: CTA (state, request, kv head, row block) holds rows [rb * rows_per_cta, ...)
  // of the request's T x group rows (row = token * group + head in group).
  int rows_per_cta = 0;                 // multiple of 16
  int row_blocks = 1;                   // ceil(max_tree_tokens * group / rows_per_cta)
  int warps = 0;                        // warps per CTA
  int smem_bytes = 0;                   // dynamic shared memory per CTA
  // Workspace layout (byte offsets, 256-byte aligned sections): metadata copied in by run()
  // (int32 tree_indptr[batch + 1], int32 prefix_lens[batch], AncestorMask masks[total_tokens]),
  // then fp32 partial O [num_states, total_tokens * qo_heads, head_dim] and LSE [num_states, rows].
  size_t prefix_lens_offset = 0, masks_offset = 0, meta_bytes = 0;
  size_t partial_o_offset = 0, partial_lse_offset = 0;
  size_t workspace_bytes = 0;
  /// The metadata image, pinned when a CUDA device is present (so the copy in run() is async and
  /// capturable). A captured graph re-reads it on replay: THE PLAN MUST OUTLIVE EVERY LAUNCH/GRAPH.
  std::shared_ptr<std::byte> host_meta;
};

struct Args {
  const void* q = nullptr;
  const void* k_tree = nullptr;
  const void* v_tree = nullptr;
  const void* k_pages = nullptr;
  const void* v_pages = nullptr;
  const int32_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  const int32_t* last_page_len = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // optional
  /// true when this workspace already holds this plan's metadata: an earlier run() of the same
  /// plan with the same workspace, in stream order, and nothing has written the workspace since
  /// (e.g. every layer after the first of a forward pass). run() then skips its host-to-device
  /// copy of the metadata (one copy per pass instead of one per layer).
  bool metadata_in_workspace = false;
};

void check_problem(const Problem& p, const char* where);


/// Validates the trees (tree_sizes [batch] in 1..kMaxTreeTokens, parents [sum tree_sizes] with
/// -1 <= parent[i] < i per request) and prefix_lens [batch] >= 0, derives depths, positions and
/// ancestor masks, and sizes the workspace. Throws spw::Error naming the bad argument.
/// The metadata image comes from `host` when given (see decode_attention::plan), else from a
/// fresh pinned buffer.
Plan plan(const Problem& problem, std::span<const int32_t> prefix_lens, std::span<const int32_t> tree_sizes,
          std::span<const int32_t> parents, const DeviceInfo& device, PlanHostArena* host = nullptr);

/// GPU launch (plan.impl's kernel): copies the plan's metadata into the workspace
/// (cudaMemcpyAsync from the plan's pinned memory; capturable), computes one partial
/// state per (prefix chunk | tree part) and merges them with decode_attention::merge_states.
/// No allocation. Without CUDA it throws.
void run(const Plan& plan, const Args& args, void* workspace, size_t workspace_bytes, Stream stream);

/// Host checks run() performs before launching.
void check_args(const Plan& plan, const Args& args, const void* workspace, size_t workspace_bytes);

/// Debug validation of the prefix page table (host copies), via
/// decode_attention::validate_page_table with the plan's prefix lengths.
void validate_page_table(const Plan& plan, std::span<const int32_t> indptr, std::span<const int32_t> indices,
                         std::span<const int32_t> last_page_len, int num_pages);

/// The decode_attention problem describing the prefix of `p` (paged, same heads / dtype).
decode_attention::Problem prefix_problem(const Problem& p);

}  // namespace spw::tree_attention

// Split-KV decode attention (Flash-Decoding) over a paged or contiguous KV cache, plus the
// public LSE merge of partial attention states.
//
// One new query token per request attends to that request's whole KV cache:
//   O[b, h]   = sum_j softmax_j(s_j) V[b, j, h / g]       s_j = cap(sm_scale * q[b, h] . K[b, j, h / g])
//   LSE[b, h] = ln sum_j exp(s_j)                           (g = qo_heads / kv_heads, cap = soft-cap)
// A request with kv_len 0 gives O = 0 and LSE = -inf.
//
// Why it is fast: decode attention is a pure stream over K and V (about 2 FLOPs per byte), so
// the design is about reading every KV byte exactly once with every SM busy:
//  - plan() cuts every request's KV range into chunks of at most `chunk_tokens` tokens, with the
//    chunk size chosen so that the (request, kv head, chunk) work items make a few waves of
//    CTAs (or fixed by Problem::fixed_chunk_tokens: batch-invariant results). Because the
//    chunk size is uniform, a skewed batch (one 128K request beside 63 short ones) is balanced
//    by construction: no work item is longer than chunk_tokens.
//  - one CTA per work item reads its KV head once for the whole GQA group of query heads
//    (up to 8 per CTA), with 16-byte cp.async loads into a 3-stage shared-memory ring.
//  - split requests write fp32 partial O + LSE to the workspace; a merge kernel combines them
//    in a fixed order (bitwise deterministic). Requests with one chunk write O directly.
//
// Workspace: run() copies the plan's work list (host memory owned by the Plan, pinned when a
// CUDA device is present) into the caller's workspace with cudaMemcpyAsync. Nothing is
// allocated in run() and there is no host sync, so run() can be captured in a CUDA graph;
// the graph's memcpy node reads the Plan's host memory on every replay, so THE PLAN MUST
// OUTLIVE EVERY LAUNCH AND EVERY GRAPH that captured it. Planning every step? Pass a
// PlanHostArena (kernels/common/pinned.h) to plan(): no pinned allocation per plan.
//
// Layouts (row-major, element type = dtype unless noted):
//   q      [batch, qo_heads, head_dim]
//   paged: k_pages / v_pages [num_pages, page_size, kv_heads, head_dim]; request b owns pages
//          indices[indptr[b] .. indptr[b+1]) (device int32, CSR), its last page holding
//          last_page_len[b] tokens: kv_len = (pages - 1) * page_size + last_page_len (0 pages -> 0).
//   contiguous: k / v [batch, kv_len_max, kv_heads, head_dim]; request b uses rows [0, kv_lens[b]).
//   o      [batch, qo_heads, head_dim];  lse [batch, qo_heads] fp32 (natural log), optional.
// The kernels take the per-request lengths from the plan (the kv_lens given to plan()); the
// device page table must describe the same lengths (validate_page_table checks it on the host).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/common/device.h"
#include "kernels/common/dtype.h"
#include "kernels/common/pinned.h"
#include "kernels/common/platform.h"

namespace spw::decode_attention {

enum class Layout : int { paged = 0, contiguous = 1 };

/// Query heads one CTA processes against one read of its KV head; larger groups (MQA) are
/// split over several CTAs per KV head.
inline constexpr int kMaxHeadsPerCta = 8;

struct Problem {
  int batch = 0;
  int qo_heads = 0;
  int kv_heads = 0;
  int head_dim = 128;          // 64, 128 or 256
  DType dtype = DType::f16;    // q, K, V, O: fp16 or bf16
  Layout layout = Layout::paged;
  int page_size = 16;          // paged only, >= 1
  int kv_len_max = 0;          // contiguous only: rows per request in k / v
  float sm_scale = 0.f;        // 0 -> 1 / sqrt(head_dim)
  float soft_cap = 0.f;        // logits soft-cap (cap * tanh(s / cap)); 0 = off
  bool disable_split = false;  // one chunk per request (the no-split baseline)
  /// > 0: batch-invariant split. Every request's KV range is cut at multiples of this many
  /// tokens (a multiple of kChunkGranule), whatever the other requests and the device are, so
  /// a request's output is bitwise a function of its own q, KV and length alone (the kernel's
  /// tiles and its row-to-thread mapping are aligned to the chunk start). 0: the chunk size is
  /// balanced over the device (the default; the fastest split, but it depends on the batch).
  int fixed_chunk_tokens = 0;
};

/// fixed_chunk_tokens must be a multiple of this (every KV tile height divides it).
inline constexpr int kChunkGranule = 64;

/// One CTA's work: a chunk [kv_begin, kv_end) of requests [request, request + request_count)
/// against one KV head, for query heads [qo_head_begin, qo_head_begin + qo_head_count) of each.
/// Several requests share a CTA only where plan() was told each one's KV extends the previous
/// one's by a row (extends_previous): the rows are then read once, through the last (longest)
/// request's page table, and each request sees its first kv_len rows. Where each request's
/// output goes follows from its RequestSplit: O and LSE directly for a request of one chunk,
/// else partial slot slot_base + chunk in the workspace.
struct WorkItem {
  int32_t request, kv_head, qo_head_begin, qo_head_count;
  int32_t kv_begin, kv_end, chunk, request_count;
};
static_assert(sizeof(WorkItem) == 32);

/// Per request: how many chunks it was split into, its first partial slot and its KV length.
struct RequestSplit {
  int32_t num_chunks, slot_base, kv_len;
};

struct Plan {
  Problem problem;
  float sm_scale = 0.f;               // effective scale
  std::vector<int32_t> kv_lens;       // copy of the planned lengths
  int chunk_tokens = 0;               // max KV tokens per work item
  int num_items = 0;
  int num_slots = 0;                  // partial slots (chunks of split requests)
  bool needs_merge = false;
  // Workspace layout (byte offsets; every section 256-byte aligned).
  size_t items_offset = 0, splits_offset = 0, partial_o_offset = 0, partial_lse_offset = 0;
  size_t meta_bytes = 0;              // work items + request splits, copied in by run()
  size_t workspace_bytes = 0;
  /// Host copy of the metadata (WorkItem[num_items] at items_offset, RequestSplit[batch] at
  /// splits_offset). Pinned when allocated on a machine with a CUDA device. Shared, so copies
  /// of a Plan stay valid as long as one of them lives.
  std::shared_ptr<std::byte> host_meta;

  std::span<const WorkItem> items() const;
  std::span<const RequestSplit> splits() const;
};

struct Args {
  const void* q = nullptr;
  // paged
  const void* k_pages = nullptr;
  const void* v_pages = nullptr;
  const int32_t* indptr = nullptr;         // [batch + 1]
  const int32_t* indices = nullptr;        // [indptr[batch]]
  const int32_t* last_page_len = nullptr;  // [batch] (not read by the kernels; part of the table)
  // contiguous
  const void* k = nullptr;
  const void* v = nullptr;
  // outputs
  void* o = nullptr;
  float* lse = nullptr;                    // optional (nullptr: not written)
  /// true when this workspace already holds this plan's metadata: an earlier run() of the same
  /// plan with the same workspace, in stream order, and nothing has written the workspace since
  /// (e.g. every layer after the first of a forward pass). run() then skips its host-to-device
  /// copy of the metadata (one copy per pass instead of one per layer).
  bool metadata_in_workspace = false;
};

/// Host scheduling: checks `problem` and `kv_lens` (one per request), chooses the chunk size for
/// `device` and builds the work list. Throws spw::Error naming the bad argument.
/// The work list's host memory comes from `host` when given (no allocation in steady state: the
/// way to plan once per step; see PlanHostArena's lifetime rule), else from a fresh pinned buffer.
/// `extends_previous` (paged layout; empty or one flag per request): a non-zero flag says that
/// request b's KV is request b-1's followed by one more row, in the same pages (kv_lens[b] =
/// kv_lens[b-1] + 1: the queries of a chain of one sequence's new tokens, each its own request,
/// as in the CUDA backend's batch-invariant mode). Such runs of requests share their KV reads,
/// up to kMaxHeadsPerCta query heads per CTA. Each request's output has the same bits as without
/// sharing (a shared CTA does per request exactly what the request's own CTA would).
Plan plan(const Problem& problem, std::span<const int32_t> kv_lens, const DeviceInfo& device,
          PlanHostArena* host = nullptr, std::span<const uint8_t> extends_previous = {});

/// Launches the attention (and, if any request was split, the merge) on `stream`. `workspace`
/// must be 16-byte aligned device memory of at least plan.workspace_bytes. Allocates nothing,
/// no host sync; capturable in a CUDA graph (the Plan must outlive the graph).
void run(const Plan& plan, const Args& args, void* workspace, size_t workspace_bytes, Stream stream);

/// Host checks run() performs before launching (exposed for the C ABI and tests).
void check_problem(const Problem& p, const char* where);
/// The head/shape/dtype checks shared with tree attention (same kernels' limits): batch >= 1,
/// heads >= 1 with qo_heads % kv_heads == 0, head_dim 64/128/256, fp16/bf16.
void check_heads(const char* where, int batch, int qo_heads, int kv_heads, int head_dim, DType dtype);
void check_args(const Plan& plan, const Args& args, const void* workspace, size_t workspace_bytes);

/// Debug validation of a page table (host copies): indptr monotone from 0, every page index in
/// [0, num_pages), last_page_len in [1, page_size] for non-empty requests, and the lengths it
/// describes equal to kv_lens. Throws spw::Error naming the first bad entry.
void validate_page_table(const Problem& p, std::span<const int32_t> kv_lens, std::span<const int32_t> indptr,
                         std::span<const int32_t> indices, std::span<const int32_t> last_page_len, int num_pages);

// ---- merge of partial attention states ----

/// n partial states per row -> one: o = sum_i w_i o_i with w_i = exp(lse_i - lse), lse = ln sum exp(lse_i).
/// v_in [num_states, rows, head_dim] (row stride head_dim, state stride rows * head_dim),
/// lse_in [num_states, rows] fp32; v_out [rows, head_dim], lse_out [rows] (optional).
/// Rows whose states are all empty (lse -inf) give o = 0, lse = -inf. Deterministic.
struct MergeProblem {
  int rows = 0;           // e.g. tokens * heads
  int num_states = 0;     // >= 1
  int head_dim = 0;       // multiple of 8
  DType in_dtype = DType::f32;   // f32, f16, bf16
  DType out_dtype = DType::f16;  // f32, f16, bf16
};
void check_merge(const MergeProblem& p, const void* v_in, const float* lse_in, const void* v_out);
void merge_states(const MergeProblem& p, const void* v_in, const float* lse_in, void* v_out, float* lse_out,
                  Stream stream);

}  // namespace spw::decode_attention

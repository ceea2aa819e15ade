// Decode-attention planning and argument checks (host). The planner turns kv_lens into a work
// list of (request, kv head, head group, KV chunk) items with one uniform maximum chunk size:
// uniform chunks balance any mix of lengths (no item is longer than chunk_tokens), and the
// size is chosen so that the items fill the GPU a few CTAs per SM deep (Flash-Decoding).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/common/pinned.h"
#include "kernels/common/error.h"
#include "kernels/common/vec.h"
#include "kernels/decode_attention/decode_attention.h"

#if SPW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace spw::decode_attention {

namespace {
constexpr int kCtasPerSm = 4;       // two waves of 2 resident CTAs (128 threads x ~254 registers, 48 KB smem)
constexpr int kMinChunk = 256;      // below this the partial write + merge costs more than it saves
constexpr size_t kAlign = 256;

size_t align_up(size_t x) { return round_up(x, kAlign); }

}  // namespace

std::span<const WorkItem> Plan::items() const {
  return {reinterpret_cast<const WorkItem*>(host_meta.get() + items_offset), static_cast<size_t>(num_items)};
}
std::span<const RequestSplit> Plan::splits() const {
  return {reinterpret_cast<const RequestSplit*>(host_meta.get() + splits_offset),
          static_cast<size_t>(problem.batch)};
}

void check_heads(const char* w, int batch, int qo_heads, int kv_heads, int head_dim, DType dtype) {
  SPW_CHECK_ARG(batch >= 1, w, "batch", batch, "must be >= 1");
  SPW_CHECK_ARG(qo_heads >= 1, w, "qo_heads", qo_heads, "must be >= 1");
  SPW_CHECK_ARG(kv_heads >= 1, w, "kv_heads", kv_heads, "must be >= 1");
  SPW_CHECK_ARG(qo_heads % kv_heads == 0, w, "qo_heads", qo_heads,
                fmt::format("must be divisible by kv_heads = {}", kv_heads));
  SPW_CHECK_ARG(head_dim == 64 || head_dim == 128 || head_dim == 256, w, "head_dim", head_dim,
                "must be 64, 128 or 256");
  SPW_CHECK_ARG(dtype == DType::f16 || dtype == DType::bf16, w, "dtype", dtype_name(dtype),
                "must be fp16 or bf16");
}

void check_problem(const Problem& p, const char* w) {
  check_heads(w, p.batch, p.qo_heads, p.kv_heads, p.head_dim, p.dtype);
  SPW_CHECK_ARG(p.layout == Layout::paged || p.layout == Layout::contiguous, w, "layout",
                static_cast<int>(p.layout), "must be paged (0) or contiguous (1)");
  if (p.layout == Layout::paged) SPW_CHECK_ARG(p.page_size >= 1, w, "page_size", p.page_size, "must be >= 1");
  else SPW_CHECK_ARG(p.kv_len_max >= 0, w, "kv_len_max", p.kv_len_max, "must be >= 0");
  SPW_CHECK_ARG(std::isfinite(p.sm_scale) && p.sm_scale >= 0.f, w, "sm_scale", p.sm_scale,
                "must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  SPW_CHECK_ARG(std::isfinite(p.soft_cap) && p.soft_cap >= 0.f, w, "soft_cap", p.soft_cap,
                "must be finite and >= 0 (0 = off)");
  SPW_CHECK_ARG(p.fixed_chunk_tokens >= 0 && p.fixed_chunk_tokens % kChunkGranule == 0, w, "fixed_chunk_tokens",
                p.fixed_chunk_tokens,
                fmt::format("must be 0 (balanced split) or a positive multiple of {}", kChunkGranule));
  SPW_CHECK_ARG(p.fixed_chunk_tokens == 0 || !p.disable_split, w, "fixed_chunk_tokens", p.fixed_chunk_tokens,
                "must be 0 when disable_split is set (one chunk per request)");
}

Plan plan(const Problem& p, std::span<const int32_t> kv_lens, const DeviceInfo& device, PlanHostArena* host,
          std::span<const uint8_t> extends_previous) {
  constexpr const char* w = "decode_attention::plan";
  check_problem(p, w);
  SPW_CHECK_ARG(kv_lens.size() == static_cast<size_t>(p.batch), w, "kv_lens.size()", kv_lens.size(),
                fmt::format("must equal batch = {}", p.batch));
  SPW_CHECK_ARG(device.sm_count > 0, w, "device.sm_count", device.sm_count, "must be > 0");
  long long max_len = 0, total_len = 0;
  for (int b = 0; b < p.batch; ++b) {
    SPW_CHECK_ARG(kv_lens[b] >= 0, w, fmt::format("kv_lens[{}]", b), kv_lens[b], "must be >= 0");
    if (p.layout == Layout::contiguous)
      SPW_CHECK_ARG(kv_lens[b] <= p.kv_len_max, w, fmt::format("kv_lens[{}]", b), kv_lens[b],
                    fmt::format("must be <= kv_len_max = {}", p.kv_len_max));
    max_len = std::max<long long>(max_len, kv_lens[b]);
    total_len += kv_lens[b];
  }
  const bool sharing = !extends_previous.empty();
  if (sharing) {
    SPW_CHECK_ARG(extends_previous.size() == static_cast<size_t>(p.batch), w, "extends_previous.size()",
                  extends_previous.size(), fmt::format("must be 0 or batch = {}", p.batch));
    SPW_CHECK_ARG(p.layout == Layout::paged, w, "extends_previous", "given",
                  "needs the paged layout (requests share pages)");
    SPW_CHECK_ARG(extends_previous[0] == 0, w, "extends_previous[0]", int(extends_previous[0]),
                  "must be 0 (no request before the first)");
    for (int b = 1; b < p.batch; ++b)
      if (extends_previous[b])
        SPW_CHECK_ARG(kv_lens[b] == kv_lens[b - 1] + 1, w, fmt::format("kv_lens[{}]", b), kv_lens[b],
                      fmt::format("must be kv_lens[{}] + 1 = {} (extends_previous[{}] is set)", b - 1,
                                  kv_lens[b - 1] + 1, b));
  }

  Plan pl;
  pl.problem = p;
  pl.sm_scale = p.sm_scale > 0.f ? p.sm_scale : 1.f / std::sqrt(static_cast<float>(p.head_dim));
  pl.kv_lens.assign(kv_lens.begin(), kv_lens.end());
  const int group = p.qo_heads / p.kv_heads;
  const int subgroups = ceil_div(group, kMaxHeadsPerCta);
  const int heads_per_cta = ceil_div(group, subgroups);  // balanced sub-groups
  const long long units = static_cast<long long>(p.kv_heads) * subgroups;  // CTAs per chunk

  // Chunk size: total work spread over `target` CTAs, but never below kMinChunk tokens.
  const long long target = static_cast<long long>(device.sm_count) * kCtasPerSm;
  long long chunk = ceil_div<long long>(total_len * units, target);
  chunk = round_up<long long>(std::max<long long>(chunk, kMinChunk), kChunkGranule);
  if (p.disable_split || chunk >= max_len) chunk = std::max<long long>(max_len, 1);
  // Batch-invariant: the same cut for every request, batch and device (chunk starts at
  // multiples of it; a request no longer than it is one chunk, written without the merge).
  if (p.fixed_chunk_tokens > 0) chunk = p.fixed_chunk_tokens;
  pl.chunk_tokens = static_cast<int>(std::min<long long>(chunk, 1 << 30));

  std::vector<WorkItem> items;
  std::vector<RequestSplit> splits(p.batch);
  int slots = 0;
  for (int b = 0; b < p.batch; ++b) {
    const int n = std::max(1, ceil_div(kv_lens[b], pl.chunk_tokens));
    splits[b] = {n, n > 1 ? slots : -1, kv_lens[b]};
    if (n > 1) slots += n;
  }
  // Runs [g0, g1) of requests that extend their predecessor (a run of one without sharing).
  // Chunk c of a run is worked on by its requests that have a chunk c (a suffix: the lengths
  // grow), `per_cta` requests per CTA, reading through the CTA's last request's pages.
  const int per_cta = sharing ? std::max(1, kMaxHeadsPerCta / heads_per_cta) : 1;
  for (int g0 = 0, g1; g0 < p.batch; g0 = g1) {
    for (g1 = g0 + 1; g1 < p.batch && sharing && extends_previous[g1]; ++g1) {
    }
    for (int c = 0; c < splits[g1 - 1].num_chunks; ++c) {
      int first = g0;
      while (splits[first].num_chunks <= c) ++first;
      for (int r0 = first; r0 < g1; r0 += per_cta) {
        const int count = std::min(per_cta, g1 - r0), last_len = kv_lens[r0 + count - 1];
        const int begin = std::min(last_len, c * pl.chunk_tokens), end = std::min(last_len, (c + 1) * pl.chunk_tokens);
        for (int kh = 0; kh < p.kv_heads; ++kh)
          for (int sg = 0; sg < subgroups; ++sg) {
            const int h0 = kh * group + sg * heads_per_cta;
            const int hc = std::min(heads_per_cta, group - sg * heads_per_cta);
            items.push_back({r0, kh, h0, hc, begin, end, c, count});
          }
      }
    }
  }
  pl.num_items = static_cast<int>(items.size());
  pl.num_slots = slots;
  pl.needs_merge = slots > 0;

  pl.items_offset = 0;
  pl.splits_offset = align_up(items.size() * sizeof(WorkItem));
  pl.meta_bytes = pl.splits_offset + splits.size() * sizeof(RequestSplit);
  pl.partial_o_offset = align_up(pl.meta_bytes);
  const size_t po = static_cast<size_t>(slots) * p.qo_heads * p.head_dim * sizeof(float);
  pl.partial_lse_offset = pl.partial_o_offset + align_up(po);
  pl.workspace_bytes = pl.partial_lse_offset + align_up(static_cast<size_t>(slots) * p.qo_heads * sizeof(float));

  pl.host_meta = plan_host_memory(pl.meta_bytes, host);
  std::memcpy(pl.host_meta.get() + pl.items_offset, items.data(), items.size() * sizeof(WorkItem));
  std::memcpy(pl.host_meta.get() + pl.splits_offset, splits.data(), splits.size() * sizeof(RequestSplit));
  return pl;
}

void check_args(const Plan& pl, const Args& a, const void* ws, size_t ws_bytes) {
  constexpr const char* w = "decode_attention::run";
  const Problem& p = pl.problem;
  SPW_CHECK_ARG(pl.host_meta != nullptr, w, "plan", "empty", "create it with decode_attention::plan");
  check_problem(p, w);
  auto ptr = [&](const void* x, const char* name, std::uintptr_t align) {
    SPW_CHECK_ARG(x != nullptr, w, name, "null", "must be a device pointer");
    SPW_CHECK_ARG(is_aligned(x, align), w, name, x, fmt::format("must be {}-byte aligned", align));
  };
  ptr(a.q, "q", 16);
  ptr(a.o, "o", 16);
  if (a.lse) SPW_CHECK_ARG(is_aligned(a.lse, 4), w, "lse", static_cast<const void*>(a.lse), "must be 4-byte aligned");
  if (p.layout == Layout::paged) {
    ptr(a.k_pages, "k_pages", 16);
    ptr(a.v_pages, "v_pages", 16);
    ptr(a.indptr, "indptr", 4);
    bool any = false;
    for (int32_t l : pl.kv_lens) any |= l > 0;
    if (any) ptr(a.indices, "indices", 4);
  } else {
    ptr(a.k, "k", 16);
    ptr(a.v, "v", 16);
  }
  SPW_CHECK_ARG(ws_bytes >= pl.workspace_bytes, w, "workspace_bytes", ws_bytes,
                fmt::format("is too small: the plan needs {} bytes", pl.workspace_bytes));
  ptr(ws, "workspace", 16);
}

void validate_page_table(const Problem& p, std::span<const int32_t> kv_lens, std::span<const int32_t> indptr,
                         std::span<const int32_t> indices, std::span<const int32_t> last_page_len, int num_pages) {
  constexpr const char* w = "decode_attention::validate_page_table";
  check_problem(p, w);
  SPW_CHECK_ARG(p.layout == Layout::paged, w, "layout", static_cast<int>(p.layout), "must be paged");
  SPW_CHECK_ARG(num_pages >= 0, w, "num_pages", num_pages, "must be >= 0");
  SPW_CHECK_ARG(kv_lens.size() == static_cast<size_t>(p.batch), w, "kv_lens.size()", kv_lens.size(),
                fmt::format("must equal batch = {}", p.batch));
  SPW_CHECK_ARG(indptr.size() == static_cast<size_t>(p.batch) + 1, w, "indptr.size()", indptr.size(),
                fmt::format("must equal batch + 1 = {}", p.batch + 1));
  SPW_CHECK_ARG(last_page_len.size() == static_cast<size_t>(p.batch), w, "last_page_len.size()",
                last_page_len.size(), fmt::format("must equal batch = {}", p.batch));
  SPW_CHECK_ARG(indptr[0] == 0, w, "indptr[0]", indptr[0], "must be 0");
  for (int b = 0; b < p.batch; ++b) {
    SPW_CHECK_ARG(indptr[b + 1] >= indptr[b], w, fmt::format("indptr[{}]", b + 1), indptr[b + 1],
                  fmt::format("must be >= indptr[{}] = {} (not monotone)", b, indptr[b]));
    const int pages = indptr[b + 1] - indptr[b];
    if (pages > 0)
      SPW_CHECK_ARG(last_page_len[b] >= 1 && last_page_len[b] <= p.page_size, w,
                    fmt::format("last_page_len[{}]", b), last_page_len[b],
                    fmt::format("must be in [1, page_size = {}]", p.page_size));
    const long long len = pages > 0 ? static_cast<long long>(pages - 1) * p.page_size + last_page_len[b] : 0;
    SPW_CHECK_ARG(len == kv_lens[b], w, fmt::format("kv_lens[{}]", b), kv_lens[b],
                  fmt::format("differs from the page table's length {}", len));
  }
  SPW_CHECK_ARG(indices.size() >= static_cast<size_t>(indptr[p.batch]), w, "indices.size()", indices.size(),
                fmt::format("must be >= indptr[batch] = {}", indptr[p.batch]));
  for (int i = 0; i < indptr[p.batch]; ++i)
    SPW_CHECK_ARG(indices[i] >= 0 && indices[i] < num_pages, w, fmt::format("indices[{}]", i), indices[i],
                  fmt::format("must be in [0, num_pages = {})", num_pages));
}

void check_merge(const MergeProblem& p, const void* v_in, const float* lse_in, const void* v_out) {
  constexpr const char* w = "decode_attention::merge_states";
  SPW_CHECK_ARG(p.rows >= 0, w, "rows", p.rows, "must be >= 0");
  SPW_CHECK_ARG(p.num_states >= 1, w, "num_states", p.num_states, "must be >= 1");
  SPW_CHECK_ARG(p.head_dim > 0 && p.head_dim % 8 == 0 && p.head_dim <= 1024, w, "head_dim", p.head_dim,
                "must be a positive multiple of 8, at most 1024");
  for (auto [dt, name] : {std::pair{p.in_dtype, "in_dtype"}, std::pair{p.out_dtype, "out_dtype"}})
    SPW_CHECK_ARG(dt == DType::f32 || dt == DType::f16 || dt == DType::bf16, w, name, static_cast<int>(dt),
                  "must be f32, fp16 or bf16");
  if (p.rows == 0) return;
  SPW_CHECK_ARG(v_in != nullptr, w, "v_in", "null", "must be a device pointer");
  SPW_CHECK_ARG(is_aligned(v_in, 16), w, "v_in", v_in, "must be 16-byte aligned");
  SPW_CHECK_ARG(lse_in != nullptr, w, "lse_in", "null", "must be a device pointer");
  SPW_CHECK_ARG(v_out != nullptr, w, "v_out", "null", "must be a device pointer");
  SPW_CHECK_ARG(is_aligned(v_out, 16), w, "v_out", v_out, "must be 16-byte aligned");
}

#if !SPW_HAVE_CUDA
void run(const Plan& pl, const Args& a, void* ws, size_t n, Stream) {
  check_args(pl, a, ws, n);
  fail("decode_attention::run: Spillway was built without CUDA (GPU kernels not supported in this build)");
}
void merge_states(const MergeProblem& p, const void* v_in, const float* lse_in, void* v_out, float*, Stream) {
  check_merge(p, v_in, lse_in, v_out);
  fail("decode_attention::merge_states: Spillway was built without CUDA (GPU kernels not supported in this build)");
}
#endif

}  // namespace spw::decode_attention

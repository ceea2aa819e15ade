// Tree-attention C ABI: wrappers over the C++ API (see c_api.h).
#include "kernels/tree_attention/c_api.h"

#include <algorithm>
#include <span>

#include "kernels/tree_attention/tree_attention.h"

struct spw_tree_attention_handle {
  spw::tree_attention::Plan plan;
};

namespace {
namespace ta = spw::tree_attention;

const ta::Plan& plan_of(const spw_tree_attention_handle* p, const char* where) {
  SPW_CHECK_ARG(p != nullptr, where, "plan", "null", "create one with spw_tree_attention_plan");
  return p->plan;
}
}  // namespace

extern "C" {

int spw_tree_attention_plan(const spw_tree_attention_problem* c, const int32_t* prefix_lens,
                            const int32_t* tree_sizes, const int32_t* parents, int sm_count,
                            spw_tree_attention_handle** out) {
  return spw_tree_attention_plan_ex(c, prefix_lens, tree_sizes, parents, sm_count, nullptr, out);
}

int spw_tree_attention_plan_ex(const spw_tree_attention_problem* c, const int32_t* prefix_lens,
                               const int32_t* tree_sizes, const int32_t* parents, int sm_count,
                               const spw_tree_attention_options* options, spw_tree_attention_handle** out) {
  return spw_tree_attention_plan_in_arena(c, prefix_lens, tree_sizes, parents, sm_count, options, nullptr, out);
}

int spw_tree_attention_plan_in_arena(const spw_tree_attention_problem* c, const int32_t* prefix_lens,
                                     const int32_t* tree_sizes, const int32_t* parents, int sm_count,
                                     const spw_tree_attention_options* options, spw_plan_arena* arena,
                                     spw_tree_attention_handle** out) {
  return spw::capi::guarded([&] {
    constexpr const char* w = "spw_tree_attention_plan";
    SPW_CHECK_ARG(out != nullptr, w, "out", "null", "must point to a plan handle");
    *out = nullptr;
    SPW_CHECK_ARG(c != nullptr, w, "problem", "null", "must point to a problem");
    SPW_CHECK_ARG(c->dtype == SPW_FP16 || c->dtype == SPW_BF16, w, "problem.dtype", c->dtype,
                  "must be SPW_FP16 (0) or SPW_BF16 (1)");
    ta::Problem p;
    p.batch = c->batch;
    p.qo_heads = c->qo_heads;
    p.kv_heads = c->kv_heads;
    p.head_dim = c->head_dim;
    p.dtype = static_cast<spw::DType>(c->dtype);
    p.page_size = c->page_size;
    p.sm_scale = c->sm_scale;
    p.soft_cap = c->soft_cap;
    if (options) {
      p.impl = static_cast<ta::Impl>(options->impl);
      p.chunk_tokens = options->chunk_tokens;
      p.max_rows_per_cta = options->max_rows_per_cta;
    }
    ta::check_problem(p, w);
    SPW_CHECK_ARG(prefix_lens != nullptr, w, "prefix_lens", "null", "host array of batch lengths required");
    SPW_CHECK_ARG(tree_sizes != nullptr, w, "tree_sizes", "null", "host array of batch tree sizes required");
    const auto n = static_cast<size_t>(p.batch);
    long long total = 0;
    for (size_t b = 0; b < n; ++b) total += std::max(0, tree_sizes[b]);
    SPW_CHECK_ARG(total == 0 || parents != nullptr, w, "parents", "null", "host array of parent indices required");
    const spw::DeviceInfo dev = sm_count > 0 ? spw::DeviceInfo::synthetic(sm_count) : spw::query_device(0);
    *out = new spw_tree_attention_handle{ta::plan(p, std::span<const int32_t>(prefix_lens, n),
                                                  std::span<const int32_t>(tree_sizes, n),
                                                  std::span<const int32_t>(parents, static_cast<size_t>(total)), dev,
                                                  spw::capi::arena_of(arena))};
  });
}

int spw_tree_attention_plan_info_get(const spw_tree_attention_handle* plan, spw_tree_attention_plan_info* out) {
  return spw::capi::guarded([&] {
    constexpr const char* w = "spw_tree_attention_plan_info_get";
    const auto& p = plan_of(plan, w);
    SPW_CHECK_ARG(out != nullptr, w, "out", "null", "must point to a spw_tree_attention_plan_info");
    *out = {static_cast<int>(p.impl), p.prefix_chunk_tokens, p.num_states, p.rows_per_cta, p.row_blocks, p.warps,
            p.smem_bytes};
  });
}

int spw_tree_attention_workspace_size(const spw_tree_attention_handle* plan, size_t* out) {
  return spw::capi::guarded([&] {
    const auto& p = plan_of(plan, "spw_tree_attention_workspace_size");
    SPW_CHECK_ARG(out != nullptr, "spw_tree_attention_workspace_size", "out", "null", "must point to a size_t");
    *out = p.workspace_bytes;
  });
}

int spw_tree_attention_positions(const spw_tree_attention_handle* plan, int32_t* positions, size_t capacity) {
  return spw::capi::guarded([&] {
    constexpr const char* w = "spw_tree_attention_positions";
    const auto& p = plan_of(plan, w);
    SPW_CHECK_ARG(positions != nullptr, w, "positions", "null", "must point to total_tokens int32");
    SPW_CHECK_ARG(capacity >= p.positions.size(), w, "capacity", capacity,
                  fmt::format("must be >= total_tokens = {}", p.positions.size()));
    std::copy(p.positions.begin(), p.positions.end(), positions);
  });
}

int spw_tree_attention_run(const spw_tree_attention_handle* plan, const void* q, const void* k_tree,
                           const void* v_tree, const void* k_pages, const void* v_pages, const int32_t* indptr,
                           const int32_t* indices, const int32_t* last_page_len, void* o, float* lse,
                           void* workspace, size_t workspace_bytes, void* stream) {
  return spw::capi::guarded([&] {
    const auto& pl = plan_of(plan, "spw_tree_attention_run");
    ta::Args a{q, k_tree, v_tree, k_pages, v_pages, indptr, indices, last_page_len, o, lse};
    ta::run(pl, a, workspace, workspace_bytes, static_cast<spw::Stream>(stream));
  });
}

void spw_tree_attention_destroy(spw_tree_attention_handle* plan) { delete plan; }

}  // extern "C"

// Decode-attention C ABI: wrappers over the C++ API (see c_api.h).
#include "kernels/decode_attention/c_api.h"

#include <span>

#include "kernels/decode_attention/decode_attention.h"

struct spw_decode_attention_handle {
  spw::decode_attention::Plan plan;
};

namespace {
namespace da = spw::decode_attention;

const da::Plan& plan_of(const spw_decode_attention_handle* p, const char* where) {
  SPW_CHECK_ARG(p != nullptr, where, "plan", "null", "create one with spw_decode_attention_plan");
  return p->plan;
}
}  // namespace

extern "C" {

int spw_decode_attention_plan(const spw_decode_attention_problem* c, const int32_t* kv_lens, int sm_count,
                              spw_decode_attention_handle** out) {
  return spw_decode_attention_plan_in_arena(c, kv_lens, sm_count, nullptr, out);
}

int spw_decode_attention_plan_in_arena(const spw_decode_attention_problem* c, const int32_t* kv_lens, int sm_count,
                                       spw_plan_arena* arena, spw_decode_attention_handle** out) {
  return spw_decode_attention_plan_shared(c, kv_lens, nullptr, sm_count, arena, out);
}

int spw_decode_attention_plan_shared(const spw_decode_attention_problem* c, const int32_t* kv_lens,
                                     const uint8_t* extends_previous, int sm_count, spw_plan_arena* arena,
                                     spw_decode_attention_handle** out) {
  return spw::capi::guarded([&] {
    constexpr const char* w = "spw_decode_attention_plan";
    SPW_CHECK_ARG(out != nullptr, w, "out", "null", "must point to a plan handle");
    *out = nullptr;
    SPW_CHECK_ARG(c != nullptr, w, "problem", "null", "must point to a problem");
    SPW_CHECK_ARG(c->dtype == SPW_FP16 || c->dtype == SPW_BF16, w, "problem.dtype", c->dtype,
                  "must be SPW_FP16 (0) or SPW_BF16 (1)");
    SPW_CHECK_ARG(c->batch <= 0 || kv_lens != nullptr, w, "kv_lens", "null", "host array of batch lengths required");
    da::Problem p;
    p.batch = c->batch;
    p.qo_heads = c->qo_heads;
    p.kv_heads = c->kv_heads;
    p.head_dim = c->head_dim;
    p.dtype = static_cast<spw::DType>(c->dtype);
    p.layout = static_cast<da::Layout>(c->layout);
    p.page_size = c->page_size;
    p.kv_len_max = c->kv_len_max;
    p.sm_scale = c->sm_scale;
    p.soft_cap = c->soft_cap;
    p.disable_split = c->disable_split != 0;
    p.fixed_chunk_tokens = c->fixed_chunk_tokens;
    da::check_problem(p, w);
    const spw::DeviceInfo dev = sm_count > 0 ? spw::DeviceInfo::synthetic(sm_count) : spw::query_device(0);
    const auto n = static_cast<size_t>(p.batch);
    *out = new spw_decode_attention_handle{
        da::plan(p, std::span<const int32_t>(kv_lens, n), dev, spw::capi::arena_of(arena),
                 extends_previous ? std::span<const uint8_t>(extends_previous, n) : std::span<const uint8_t>())};
  });
}

int spw_decode_attention_workspace_size(const spw_decode_attention_handle* plan, size_t* out) {
  return spw::capi::guarded([&] {
    const auto& p = plan_of(plan, "spw_decode_attention_workspace_size");
    SPW_CHECK_ARG(out != nullptr, "spw_decode_attention_workspace_size", "out", "null", "must point to a size_t");
    *out = p.workspace_bytes;
  });
}

int spw_decode_attention_run(const spw_decode_attention_handle* plan, const void* q, const void* k, const void* v,
                             const int32_t* indptr, const int32_t* indices, const int32_t* last_page_len, void* o,
                             float* lse, void* workspace, size_t workspace_bytes, void* stream) {
  return spw::capi::guarded([&] {
    const auto& pl = plan_of(plan, "spw_decode_attention_run");
    da::Args a;
    a.q = q;
    if (pl.problem.layout == da::Layout::paged) {
      a.k_pages = k;
      a.v_pages = v;
      a.indptr = indptr;
      a.indices = indices;
      a.last_page_len = last_page_len;
    } else {
      a.k = k;
      a.v = v;
    }
    a.o = o;
    a.lse = lse;
    da::run(pl, a, workspace, workspace_bytes, static_cast<spw::Stream>(stream));
  });
}

void spw_decode_attention_destroy(spw_decode_attention_handle* plan) { delete plan; }

}  // extern "C"

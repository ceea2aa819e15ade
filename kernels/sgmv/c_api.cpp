// SGMV C ABI: wrappers over the C++ API, plus a cuBLAS grouped-GEMM baseline for bench/sgmv.py.
#include "kernels/sgmv/c_api.h"

#include <vector>

#include "kernels/sgmv/sgmv.h"

#if SPW_HAVE_CUDA
#include "kernels/common/cublas_check.h"
#include "kernels/common/cuda_check.h"
#endif

struct spw_sgmv_plan {
  spw::sgmv::Plan plan;
};

namespace {
spw::sgmv::Problem to_problem(const spw_sgmv_problem* c) {
  SPW_CHECK_ARG(c != nullptr, "spw_sgmv_plan_create", "problem", "null", "must point to a problem");
  SPW_CHECK_ARG(c->dtype == SPW_FP16 || c->dtype == SPW_BF16, "spw_sgmv_plan_create", "problem.dtype", c->dtype,
                "must be SPW_FP16 (0) or SPW_BF16 (1)");
  spw::sgmv::Problem p;
  p.dtype = static_cast<spw::DType>(c->dtype);
  p.tokens = c->tokens;
  p.segments = c->segments;
  p.num_adapters = c->num_adapters;
  p.hidden = c->hidden;
  p.rank_max = c->rank_max;
  p.num_slices = c->num_slices;
  for (int s = 0; s < spw::sgmv::kMaxSlices; ++s) p.slices[s] = {c->slice_out_offset[s], c->slice_out_size[s]};
  p.y_cols = c->y_cols;
  p.x_stride = c->x_stride;
  p.y_stride = c->y_stride;
  return p;
}
const spw::sgmv::Plan& plan_of(const spw_sgmv_plan* p, const char* where) {
  SPW_CHECK_ARG(p != nullptr, where, "plan", "null", "create one with spw_sgmv_plan_create");
  return p->plan;
}
}  // namespace

extern "C" {

int spw_sgmv_plan_create(const spw_sgmv_problem* problem, const int32_t* seg_starts, const int32_t* adapter_ids,
                         const int32_t* ranks, int sm_count, spw_sgmv_plan** out) {
  return spw::capi::guarded([&] {
    SPW_CHECK_ARG(out != nullptr, "spw_sgmv_plan_create", "out", "null", "must point to a plan handle");
    *out = nullptr;
    const spw::DeviceInfo dev = sm_count > 0 ? spw::DeviceInfo::synthetic(sm_count) : spw::query_device(0);
    const spw::sgmv::Problem p = to_problem(problem);  // checks problem != NULL
    auto* h = new spw_sgmv_plan{
        spw::sgmv::plan(p, seg_starts, adapter_ids, ranks, dev, static_cast<spw::sgmv::Path>(problem->path))};
    *out = h;
  });
}

int spw_sgmv_plan_workspace_bytes(const spw_sgmv_plan* plan, size_t* out) {
  return spw::capi::guarded([&] {
    const auto& p = plan_of(plan, "spw_sgmv_plan_workspace_bytes");
    SPW_CHECK_ARG(out != nullptr, "spw_sgmv_plan_workspace_bytes", "out", "null", "must point to a size_t");
    *out = p.workspace_bytes;
  });
}

void spw_sgmv_plan_destroy(spw_sgmv_plan* plan) { delete plan; }

int spw_sgmv_shrink(const spw_sgmv_plan* plan, const int32_t* seg_starts, const int32_t* adapter_ids,
                    const int32_t* ranks, const void* x, const void* const* a_ptrs, const void* a_stacked, float* v,
                    void* workspace, size_t workspace_bytes, void* stream) {
  return spw::capi::guarded([&] {
    spw::sgmv::ShrinkArgs a;
    a.seg = {seg_starts, adapter_ids, ranks};
    a.x = x;
    a.A = {a_ptrs, a_stacked};
    a.v = v;
    spw::sgmv::shrink(plan_of(plan, "spw_sgmv_shrink"), a, workspace, workspace_bytes,
                      static_cast<spw::Stream>(stream));
  });
}

int spw_sgmv_expand(const spw_sgmv_plan* plan, const int32_t* seg_starts, const int32_t* adapter_ids,
                    const int32_t* ranks, const float* v, const void* const* b_ptrs, const void* b_stacked, void* y,
                    float scale, const float* adapter_scales, void* stream) {
  return spw::capi::guarded([&] {
    spw::sgmv::ExpandArgs a;
    a.seg = {seg_starts, adapter_ids, ranks};
    a.v = v;
    a.B = {b_ptrs, b_stacked};
    a.y = y;
    a.scale = scale;
    a.adapter_scales = adapter_scales;
    spw::sgmv::expand(plan_of(plan, "spw_sgmv_expand"), a, static_cast<spw::Stream>(stream));
  });
}

int spw_sgmv_apply(const spw_sgmv_plan* plan, const int32_t* seg_starts, const int32_t* adapter_ids,
                   const int32_t* ranks, const void* x, const void* const* a_ptrs, const void* a_stacked, float* v,
                   const void* const* b_ptrs, const void* b_stacked, void* y, float scale,
                   const float* adapter_scales, void* workspace, size_t workspace_bytes, void* stream) {
  return spw::capi::guarded([&] {
    spw::sgmv::ShrinkArgs s;
    s.seg = {seg_starts, adapter_ids, ranks};
    s.x = x;
    s.A = {a_ptrs, a_stacked};
    s.v = v;
    spw::sgmv::ExpandArgs e;
    e.seg = s.seg;
    e.v = v;
    e.B = {b_ptrs, b_stacked};
    e.y = y;
    e.scale = scale;
    e.adapter_scales = adapter_scales;
    spw::sgmv::apply(plan_of(plan, "spw_sgmv_apply"), s, e, workspace, workspace_bytes,
                     static_cast<spw::Stream>(stream));
  });
}

int spw_sgmv_baseline_cublas_grouped(int dtype, int count, const int* m, const int* n, const int* k,
                                     const void* const* a, const int* lda, const void* const* b, const int* ldb,
                                     int trans_b, void* const* c, const int* ldc, int c_fp32, float alpha,
                                     float beta, void* stream) {
  return spw::capi::guarded([&] {
    constexpr const char* w = "spw_sgmv_baseline_cublas_grouped";
    SPW_CHECK_ARG(dtype == SPW_FP16 || dtype == SPW_BF16, w, "dtype", dtype, "must be SPW_FP16 or SPW_BF16");
    SPW_CHECK_ARG(count >= 0, w, "count", count, "must be >= 0");
    SPW_CHECK_ARG(count == 0 || (m && n && k && a && lda && b && ldb && c && ldc), w, "arrays", "null",
                  "every array must be given");
#if SPW_HAVE_CUDA
    if (count == 0) return;
    thread_local cublasHandle_t handle = [] {
      cublasHandle_t h;
      SPW_CUBLAS_CHECK(cublasCreate(&h));
      return h;
    }();
    SPW_CUBLAS_CHECK(cublasSetStream(handle, static_cast<cudaStream_t>(stream)));
    // Row-major C = A · op(B) is column-major C^T = op(B)^T · A^T: swap the operands.
    const cudaDataType_t t = dtype == SPW_FP16 ? CUDA_R_16F : CUDA_R_16BF;
    std::vector<cublasOperation_t> ta(count, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N), tb(count, CUBLAS_OP_N);
    std::vector<float> al(count, alpha), be(count, beta);
    std::vector<int> ones(count, 1);
    SPW_CUBLAS_CHECK(cublasGemmGroupedBatchedEx(handle, ta.data(), tb.data(), n, m, k, al.data(), b, t, ldb, a, t,
                                                lda, be.data(), c, c_fp32 ? CUDA_R_32F : t, ldc, count, ones.data(),
                                                CUBLAS_COMPUTE_32F));
#else
    (void)trans_b, (void)c_fp32, (void)alpha, (void)beta, (void)stream;
    spw::fail("{}: Spillway was built without CUDA; cuBLAS is not available", w);
#endif
  });
}

}  // extern "C"

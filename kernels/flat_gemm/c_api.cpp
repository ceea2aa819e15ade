// Flat GEMM C ABI: wrappers over the C++ API (flat_gemm.h).
#include "kernels/flat_gemm/c_api.h"

#include "kernels/flat_gemm/flat_gemm.h"

#if SPW_HAVE_CUDA
#include "kernels/common/cublas_check.h"
#endif

struct spw_flat_gemm_plan {
  spw::flat_gemm::Plan plan;
};

namespace {
constexpr const char* kCreate = "spw_flat_gemm_plan_create";

spw::DType to_dtype(int d, const char* name) {
  SPW_CHECK_ARG(d == SPW_FP16 || d == SPW_BF16 || d == SPW_FP32, kCreate, name, d,
                "must be SPW_FP16 (0), SPW_BF16 (1) or SPW_FP32 (2)");
  return static_cast<spw::DType>(d);
}
bool to_flag(int v, const char* name) {
  SPW_CHECK_ARG(v == 0 || v == 1, kCreate, name, v, "must be 0 or 1");
  return v == 1;
}
const spw::flat_gemm::Plan& plan_of(const spw_flat_gemm_plan* p, const char* where) {
  SPW_CHECK_ARG(p != nullptr, where, "plan", "null", "create one with spw_flat_gemm_plan_create");
  return p->plan;
}
}  // namespace

extern "C" {

int spw_flat_gemm_plan_create(const spw_flat_gemm_problem* c, int sm_count, spw_flat_gemm_plan** out) {
  return spw::capi::guarded([&] {
    SPW_CHECK_ARG(out != nullptr, kCreate, "out", "null", "must point to a plan handle");
    *out = nullptr;
    SPW_CHECK_ARG(c != nullptr, kCreate, "problem", "null", "must point to a problem");
    spw::flat_gemm::Problem p;
    p.dtype = to_dtype(c->dtype, "problem.dtype");
    p.out_dtype = to_dtype(c->out_dtype, "problem.out_dtype");
    p.m = c->m;
    p.n = c->n;
    p.k = c->k;
    p.has_bias = to_flag(c->has_bias, "problem.has_bias");
    p.has_residual = to_flag(c->has_residual, "problem.has_residual");
    p.swiglu = to_flag(c->swiglu, "problem.swiglu");
    SPW_CHECK_ARG(c->impl >= SPW_FLAT_GEMM_AUTO && c->impl <= SPW_FLAT_GEMM_CUBLASLT, kCreate, "problem.impl", c->impl,
                  "must be 0 (auto), 1 (gemv), 2 (mma) or 3 (cublaslt)");
    spw::flat_gemm::Options o;
    o.impl = static_cast<spw::flat_gemm::Impl>(c->impl);
    o.split_k = c->split_k;
    o.cublaslt_algo = c->cublaslt_algo;
    o.batch_invariant = to_flag(c->batch_invariant, "problem.batch_invariant");
    const spw::DeviceInfo dev = sm_count > 0 ? spw::DeviceInfo::synthetic(sm_count) : spw::query_device(0);
    *out = new spw_flat_gemm_plan{spw::flat_gemm::plan(p, dev, o)};
  });
}

int spw_flat_gemm_plan_info(const spw_flat_gemm_plan* plan, int* impl, int* split_k, int* from_table,
                            size_t* workspace_bytes) {
  return spw::capi::guarded([&] {
    const auto& p = plan_of(plan, "spw_flat_gemm_plan_info");
    if (impl) *impl = static_cast<int>(p.impl);
    if (split_k) *split_k = p.split_k;
    if (from_table) *from_table = p.from_table ? 1 : 0;
    if (workspace_bytes) *workspace_bytes = p.workspace_bytes;
  });
}

void spw_flat_gemm_plan_destroy(spw_flat_gemm_plan* plan) { delete plan; }

int spw_flat_gemm_run(const spw_flat_gemm_plan* plan, const void* x, const void* w, const void* bias,
                      const void* residual, void* y, void* workspace, size_t workspace_bytes, void* cublaslt_handle,
                      void* stream) {
  return spw::capi::guarded([&] {
    spw::flat_gemm::Args a;
    a.x = x;
    a.w = w;
    a.bias = bias;
    a.residual = residual;
    a.y = y;
    a.cublaslt_handle = cublaslt_handle;
    spw::flat_gemm::run(plan_of(plan, "spw_flat_gemm_run"), a, workspace, workspace_bytes,
                        static_cast<spw::Stream>(stream));
  });
}

int spw_flat_gemm_cublaslt_create(void** handle) {
  return spw::capi::guarded([&] {
    SPW_CHECK_ARG(handle != nullptr, "spw_flat_gemm_cublaslt_create", "handle", "null", "must point to a void*");
    *handle = nullptr;
#if SPW_HAVE_CUDA
    cublasLtHandle_t h = nullptr;
    SPW_CUBLAS_CHECK(cublasLtCreate(&h));
    *handle = h;
#else
    spw::fail("spw_flat_gemm_cublaslt_create: not supported: built without CUDA");
#endif
  });
}

int spw_flat_gemm_cublaslt_destroy(void* handle) {
  return spw::capi::guarded([&] {
#if SPW_HAVE_CUDA
    if (handle) SPW_CUBLAS_CHECK(cublasLtDestroy(static_cast<cublasLtHandle_t>(handle)));
#else
    (void)handle;
#endif
  });
}

}  // extern "C"

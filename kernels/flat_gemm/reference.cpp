// Flat GEMM CPU reference (double accumulation, epilogue order of flat_gemm.h).
#include "kernels/flat_gemm/reference.h"

#include <cmath>

#include "kernels/common/error.h"

namespace spw::flat_gemm {

std::vector<double> naive_matmul(int m, int n, int k, const std::vector<float>& x, const std::vector<float>& w) {
  std::vector<double> y(size_t(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int kk = 0; kk < k; ++kk) y[size_t(i) * n + j] += double(x[size_t(i) * k + kk]) * w[size_t(j) * k + kk];
  return y;
}

std::vector<double> reference(const Problem& p, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& bias, const std::vector<float>& residual) {
  check_problem(p, "flat_gemm::reference");
  const int n_out = p.n_out();
  SPW_CHECK_ARG(x.size() == size_t(p.m) * p.k, "flat_gemm::reference", "x.size()", x.size(), "must be m * k");
  SPW_CHECK_ARG(w.size() == size_t(p.n) * p.k, "flat_gemm::reference", "w.size()", w.size(), "must be n * k");
  SPW_CHECK_ARG(!p.has_bias || bias.size() == size_t(p.n), "flat_gemm::reference", "bias.size()", bias.size(),
                "must be n");
  SPW_CHECK_ARG(!p.has_residual || residual.size() == size_t(p.m) * n_out, "flat_gemm::reference",
                "residual.size()", residual.size(), "must be m * n_out");
  std::vector<double> y(size_t(p.m) * n_out);
  std::vector<double> acc(p.n);
  for (int i = 0; i < p.m; ++i) {
    const float* xr = &x[size_t(i) * p.k];
    for (int r = 0; r < p.n; ++r) {
      const float* wr = &w[size_t(r) * p.k];
      double s = 0;
      for (int kk = 0; kk < p.k; ++kk) s += double(xr[kk]) * double(wr[kk]);
      acc[r] = s + (p.has_bias ? double(bias[r]) : 0.0);
    }
    for (int j = 0; j < n_out; ++j) {
      double v = p.swiglu ? silu(acc[j]) * acc[n_out + j] : acc[j];
      if (p.has_residual) v += residual[size_t(i) * n_out + j];
      y[size_t(i) * n_out + j] = v;
    }
  }
  return y;
}

}  // namespace spw::flat_gemm

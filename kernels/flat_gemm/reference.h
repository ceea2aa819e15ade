// CPU reference of the flat GEMM family in double (tests, benches): same epilogue order
// as flat_gemm.h. Inputs are given as floats already rounded to the input dtype.
#pragma once

#include <cmath>
#include <vector>

#include "kernels/flat_gemm/flat_gemm.h"

namespace spw::flat_gemm {

/// Y [M, N_out] in double before rounding to out_dtype. bias [N] and residual [M, N_out]
/// are used when the problem says so (residual given as floats already in out_dtype).
std::vector<double> reference(const Problem& p, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& bias, const std::vector<float>& residual);

/// The plain triple loop Y = X · W^T in double (no epilogue): checks the reference.
std::vector<double> naive_matmul(int m, int n, int k, const std::vector<float>& x, const std::vector<float>& w);

/// silu(g) = g / (1 + exp(-g)), the activation of the SwiGLU epilogue.
inline double silu(double g) { return g / (1.0 + std::exp(-g)); }

}  // namespace spw::flat_gemm

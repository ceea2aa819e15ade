// CPU references of the small ops, in double over float inputs (inputs already rounded to the
// kernel's dtype by the caller).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/rope.h"

namespace spw::small_ops::reference {

/// rows x hidden; residual (may be empty) is added first and updated in place.
std::vector<double> rmsnorm(const std::vector<float>& x, std::vector<float>* residual,
                            const std::vector<float>& weight, int rows, int hidden, float eps);

/// Rotates a [tokens, heads, head_dim] tensor in place (double math, stored back as double).
std::vector<double> rope(const std::vector<float>& x, int tokens, int heads,
                         const std::vector<int32_t>& positions, const RopeParams& p);

std::vector<double> silu_mul(const std::vector<float>& gate_up, int rows, int inter);

std::vector<int32_t> argmax(const std::vector<float>& logits, int rows, int vocab);

}  // namespace spw::small_ops::reference

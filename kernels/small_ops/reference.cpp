#include "kernels/small_ops/reference.h"

#include <cmath>

namespace spw::small_ops::reference {

std::vector<double> rmsnorm(const std::vector<float>& x, std::vector<float>* residual,
                            const std::vector<float>& weight, int rows, int hidden, float eps) {
  std::vector<double> out(static_cast<size_t>(rows) * hidden);
  for (int r = 0; r < rows; ++r) {
    std::vector<double> h(hidden);
    double ss = 0;
    for (int j = 0; j < hidden; ++j) {
      size_t i = static_cast<size_t>(r) * hidden + j;
      h[j] = x[i] + (residual && !residual->empty() ? (*residual)[i] : 0.0);
      ss += h[j] * h[j];
    }
    double inv = 1.0 / std::sqrt(ss / hidden + eps);
    for (int j = 0; j < hidden; ++j) {
      size_t i = static_cast<size_t>(r) * hidden + j;
      if (residual && !residual->empty()) (*residual)[i] = static_cast<float>(h[j]);
      out[i] = h[j] * inv * weight[j];
    }
  }
  return out;
}

std::vector<double> rope(const std::vector<float>& x, int tokens, int heads,
                         const std::vector<int32_t>& positions, const RopeParams& p) {
  std::vector<double> out(x.begin(), x.end());
  for (int t = 0; t < tokens; ++t)
    for (int h = 0; h < heads; ++h) {
      double* row = out.data() + (static_cast<size_t>(t) * heads + h) * p.head_dim;
      for (int i = 0; i < p.head_dim / 2; ++i) {
        int a, b;
        rope_pair(i, p, &a, &b);
        double angle = static_cast<double>(positions[t]) * rope_inv_freq(i, p);
        double c = std::cos(angle), s = std::sin(angle), x0 = row[a], x1 = row[b];
        row[a] = x0 * c - x1 * s;
        row[b] = x0 * s + x1 * c;
      }
    }
  return out;
}

std::vector<double> silu_mul(const std::vector<float>& gate_up, int rows, int inter) {
  std::vector<double> out(static_cast<size_t>(rows) * inter);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < inter; ++j) {
      double g = gate_up[static_cast<size_t>(r) * 2 * inter + j];
      double u = gate_up[static_cast<size_t>(r) * 2 * inter + inter + j];
      out[static_cast<size_t>(r) * inter + j] = g / (1.0 + std::exp(-g)) * u;
    }
  return out;
}

std::vector<int32_t> argmax(const std::vector<float>& logits, int rows, int vocab) {
  std::vector<int32_t> out(rows);
  for (int r = 0; r < rows; ++r) {
    int best = 0;
    for (int j = 1; j < vocab; ++j)
      if (logits[static_cast<size_t>(r) * vocab + j] > logits[static_cast<size_t>(r) * vocab + best]) best = j;
    out[r] = best;
  }
  return out;
}

}  // namespace spw::small_ops::reference

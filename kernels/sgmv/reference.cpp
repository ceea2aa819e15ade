// CPU reference of SGMV (double accumulation), the ground truth of tests and benches.
#include "kernels/sgmv/reference.h"

#include <limits>

#include "kernels/common/error.h"

namespace spw::sgmv::reference {

static size_t v_index(const Problem& p, int t, int s, int r) {
  return (static_cast<size_t>(t) * p.num_slices + s) * p.rank_max + r;
}

std::vector<bool> written(const Batch& b) {
  const Problem& p = b.problem;
  std::vector<bool> w(static_cast<size_t>(p.tokens) * p.num_slices * p.rank_max, false);
  for (int i = 0; i < p.segments; ++i) {
    const int a = b.adapter_ids[i];
    if (a < 0) continue;
    for (int t = b.seg_starts[i]; t < b.seg_starts[i + 1]; ++t)
      for (int s = 0; s < p.num_slices; ++s)
        for (int r = 0; r < b.ranks[a]; ++r) w[v_index(p, t, s, r)] = true;
  }
  return w;
}

std::vector<double> shrink(const Batch& b, const std::vector<float>& x, const std::vector<std::vector<float>>& A) {
  const Problem& p = b.problem;
  const long long xs = x_row_stride(p);
  std::vector<double> v(static_cast<size_t>(p.tokens) * p.num_slices * p.rank_max,
                        std::numeric_limits<double>::quiet_NaN());
  for (int i = 0; i < p.segments; ++i) {
    const int a = b.adapter_ids[i];
    if (a < 0) continue;
    for (int s = 0; s < p.num_slices; ++s) {
      const std::vector<float>& Aas = A.at(static_cast<size_t>(a) * p.num_slices + s);
      SPW_CHECK(Aas.size() >= static_cast<size_t>(b.ranks[a]) * p.hidden, "reference::shrink: A[{}] too small",
                a * p.num_slices + s);
      for (int t = b.seg_starts[i]; t < b.seg_starts[i + 1]; ++t)
        for (int r = 0; r < b.ranks[a]; ++r) {
          double acc = 0;
          for (int h = 0; h < p.hidden; ++h)
            acc += static_cast<double>(x[t * xs + h]) * Aas[static_cast<size_t>(r) * p.hidden + h];
          v[v_index(p, t, s, r)] = acc;
        }
    }
  }
  return v;
}

std::vector<double> expand(const Batch& b, const std::vector<double>& v, const std::vector<std::vector<float>>& B,
                           const std::vector<float>& y, float scale, const std::vector<float>& adapter_scales) {
  const Problem& p = b.problem;
  const long long ys = y_row_stride(p);
  std::vector<double> out(y.begin(), y.end());
  for (int i = 0; i < p.segments; ++i) {
    const int a = b.adapter_ids[i];
    if (a < 0) continue;
    const double sc = static_cast<double>(scale) * (adapter_scales.empty() ? 1.0 : adapter_scales[a]);
    for (int s = 0; s < p.num_slices; ++s) {
      const std::vector<float>& Bas = B.at(static_cast<size_t>(a) * p.num_slices + s);
      const int n_out = p.slices[s].out_size;
      for (int t = b.seg_starts[i]; t < b.seg_starts[i + 1]; ++t)
        for (int n = 0; n < n_out; ++n) {
          double acc = 0;
          for (int r = 0; r < b.ranks[a]; ++r) acc += v[v_index(p, t, s, r)] * Bas[static_cast<size_t>(r) * n_out + n];
          out[t * ys + p.slices[s].out_offset + n] += sc * acc;
        }
    }
  }
  return out;
}

}  // namespace spw::sgmv::reference

// CPU reference of split-KV decode attention in double: chunked partial softmax + LSE merge,
// mirroring the kernels' algorithm (the log2-domain state of kernels/common/softmax_state.h,
// here in natural log and double precision).
#include "kernels/decode_attention/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/common/error.h"

namespace spw::decode_attention::reference {

long long kv_row_offset(const Problem& p, const KvCache& kv, int b, int j, int h) {
  if (p.layout == Layout::paged) {
    const int page = kv.indices[kv.indptr[b] + j / p.page_size];
    return ((static_cast<long long>(page) * p.page_size + j % p.page_size) * p.kv_heads + h) * p.head_dim;
  }
  return ((static_cast<long long>(b) * p.kv_len_max + j) * p.kv_heads + h) * p.head_dim;
}

Result merge_states(int rows, int n, int d, std::span<const double> v, std::span<const double> lse) {
  const double ninf = -std::numeric_limits<double>::infinity();
  Result r{std::vector<double>(static_cast<size_t>(rows) * d, 0.0), std::vector<double>(rows, ninf)};
  for (int row = 0; row < rows; ++row) {
    double m = ninf;
    for (int i = 0; i < n; ++i) m = std::max(m, lse[static_cast<size_t>(i) * rows + row]);
    if (m == ninf) continue;
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += std::exp(lse[static_cast<size_t>(i) * rows + row] - m);
    for (int i = 0; i < n; ++i) {
      const double wgt = std::exp(lse[static_cast<size_t>(i) * rows + row] - m) / sum;
      if (wgt == 0) continue;
      for (int c = 0; c < d; ++c)
        r.o[static_cast<size_t>(row) * d + c] += wgt * v[(static_cast<size_t>(i) * rows + row) * d + c];
    }
    r.lse[row] = m + std::log(sum);
  }
  return r;
}

Result attention(const Problem& p, std::span<const int32_t> kv_lens, std::span<const float> q, const KvCache& kv,
                 int chunk_tokens) {
  const int d = p.head_dim, g = p.qo_heads / p.kv_heads;
  const double scale = p.sm_scale > 0.f ? p.sm_scale : 1.0 / std::sqrt(static_cast<double>(d));
  const bool paged = p.layout == Layout::paged;
  std::span<const float> K = paged ? kv.k_pages : kv.k, V = paged ? kv.v_pages : kv.v;
  Result out{std::vector<double>(static_cast<size_t>(p.batch) * p.qo_heads * d),
             std::vector<double>(static_cast<size_t>(p.batch) * p.qo_heads)};
  std::vector<double> s, pv, plse;
  for (int b = 0; b < p.batch; ++b) {
    const int len = kv_lens[b];
    const int chunk = chunk_tokens > 0 ? chunk_tokens : std::max(len, 1);
    const int n = std::max(1, (len + chunk - 1) / chunk);
    for (int h = 0; h < p.qo_heads; ++h) {
      const int kh = h / g;
      const float* qr = q.data() + (static_cast<size_t>(b) * p.qo_heads + h) * d;
      pv.assign(static_cast<size_t>(n) * d, 0.0);
      plse.assign(n, -std::numeric_limits<double>::infinity());
      for (int c = 0; c < n; ++c) {
        const int j0 = std::min(len, c * chunk), j1 = std::min(len, (c + 1) * chunk);
        if (j0 == j1) continue;
        s.resize(j1 - j0);
        double m = -std::numeric_limits<double>::infinity();
        for (int j = j0; j < j1; ++j) {
          const float* kr = K.data() + kv_row_offset(p, kv, b, j, kh);
          double dot = 0;
          for (int e = 0; e < d; ++e) dot += static_cast<double>(qr[e]) * kr[e];
          double x = dot * scale;
          if (p.soft_cap > 0.f) x = p.soft_cap * std::tanh(x / p.soft_cap);
          s[j - j0] = x;
          m = std::max(m, x);
        }
        double sum = 0;
        for (int j = j0; j < j1; ++j) {
          const double wgt = std::exp(s[j - j0] - m);
          sum += wgt;
          const float* vr = V.data() + kv_row_offset(p, kv, b, j, kh);
          for (int e = 0; e < d; ++e) pv[static_cast<size_t>(c) * d + e] += wgt * vr[e];
        }
        for (int e = 0; e < d; ++e) pv[static_cast<size_t>(c) * d + e] /= sum;
        plse[c] = m + std::log(sum);
      }
      Result m = merge_states(1, n, d, pv, plse);
      std::copy(m.o.begin(), m.o.end(), out.o.begin() + (static_cast<size_t>(b) * p.qo_heads + h) * d);
      out.lse[static_cast<size_t>(b) * p.qo_heads + h] = m.lse[0];
    }
  }
  return out;
}

}  // namespace spw::decode_attention::reference

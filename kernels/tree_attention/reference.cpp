// CPU reference of tree attention in double: prefix state + masked tree state, merged with
// decode_attention::reference::merge_states (the kernel's split/merge structure).
#include "kernels/tree_attention/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace spw::tree_attention::reference {

namespace {
// Softmax state of one query row over the key rows `keys` (pointers into K and V).
void partial(const float* q, const std::vector<const float*>& ks, const std::vector<const float*>& vs, int d,
             double scale, float cap, double* o, double* lse) {
  std::fill(o, o + d, 0.0);
  if (ks.empty()) {
    *lse = -std::numeric_limits<double>::infinity();
    return;
  }
  std::vector<double> s(ks.size());
  double m = -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < ks.size(); ++j) {
    double dot = 0;
    for (int e = 0; e < d; ++e) dot += static_cast<double>(q[e]) * ks[j][e];
    double x = dot * scale;
    if (cap > 0.f) x = cap * std::tanh(x / cap);
    s[j] = x;
    m = std::max(m, x);
  }
  double sum = 0;
  for (size_t j = 0; j < ks.size(); ++j) {
    const double wgt = std::exp(s[j] - m);
    sum += wgt;
    for (int e = 0; e < d; ++e) o[e] += wgt * vs[j][e];
  }
  for (int e = 0; e < d; ++e) o[e] /= sum;
  *lse = m + std::log(sum);
}
}  // namespace

decode_attention::reference::Result attention(const Plan& pl, const Inputs& in) {
  const Problem& p = pl.problem;
  const int d = p.head_dim, g = p.qo_heads / p.kv_heads;
  const double scale = p.sm_scale > 0.f ? p.sm_scale : 1.0 / std::sqrt(static_cast<double>(d));
  const decode_attention::Problem dp = prefix_problem(p);
  decode_attention::reference::KvCache kv;
  kv.indptr = in.indptr;
  kv.indices = in.indices;
  decode_attention::reference::Result out{
      std::vector<double>(static_cast<size_t>(pl.total_tokens) * p.qo_heads * d),
      std::vector<double>(static_cast<size_t>(pl.total_tokens) * p.qo_heads)};
  std::vector<double> v(2 * static_cast<size_t>(d)), lse(2);
  std::vector<const float*> ks, vs;
  for (int b = 0; b < p.batch; ++b) {
    const int base = pl.tree_indptr[b], n = pl.tree_indptr[b + 1] - base;
    for (int i = 0; i < n; ++i) {
      const int t = base + i;
      for (int h = 0; h < p.qo_heads; ++h) {
        const int kh = h / g;
        const float* q = in.q.data() + (static_cast<size_t>(t) * p.qo_heads + h) * d;
        ks.clear();
        vs.clear();
        for (int j = 0; j < pl.prefix_lens[b]; ++j) {
          const long long off = decode_attention::reference::kv_row_offset(dp, kv, b, j, kh);
          ks.push_back(in.k_pages.data() + off);
          vs.push_back(in.v_pages.data() + off);
        }
        partial(q, ks, vs, d, scale, p.soft_cap, v.data(), &lse[0]);
        ks.clear();
        vs.clear();
        for (int j = 0; j <= i; ++j)
          if (pl.masks[t].test(j)) {
            const size_t off = (static_cast<size_t>(base + j) * p.kv_heads + kh) * d;
            ks.push_back(in.k_tree.data() + off);
            vs.push_back(in.v_tree.data() + off);
          }
        partial(q, ks, vs, d, scale, p.soft_cap, v.data() + d, &lse[1]);
        // states laid out [n = 2, rows = 1, d]
        const auto m = decode_attention::reference::merge_states(1, 2, d, v, lse);
        std::copy(m.o.begin(), m.o.end(), out.o.begin() + (static_cast<size_t>(t) * p.qo_heads + h) * d);
        out.lse[static_cast<size_t>(t) * p.qo_heads + h] = m.lse[0];
      }
    }
  }
  return out;
}

}  // namespace spw::tree_attention::reference

// Cost-aware draft length (see draft_length.h).
#include "decode/draft_length.h"

#include <algorithm>
#include <cmath>

#include "kernels/common/error.h"

namespace spw::decode {

PassCostCurve::PassCostCurve(std::vector<double> costs) : t_(std::move(costs)) {
  SPW_CHECK(!t_.empty(), "pass cost curve: no values (t(1), t(2), ... expected)");
  for (size_t i = 0; i < t_.size(); ++i)
    SPW_CHECK(std::isfinite(t_[i]) && t_[i] > 0, "pass cost curve: t({}) = {}: must be a positive number", i + 1,
              t_[i]);
}

double PassCostCurve::at(int n) const {
  SPW_CHECK(!t_.empty() && n >= 1, "PassCostCurve::at({}): {}", n, t_.empty() ? "empty curve" : "n must be >= 1");
  const int size = static_cast<int>(t_.size());
  if (n <= size) return t_[n - 1];
  if (size == 1) return t_[0];
  const double slope = t_[size - 1] - t_[size - 2];
  return std::max(t_[size - 1], t_[size - 1] + slope * (n - size));  // never cheaper than the last point
}

double CostAwareLength::shrunk(int i, double prev) const {
  // Position 1 over a Beta(1, 1) prior (prev = 0.5); position i > 1 shrunk towards position
  // i - 1's estimate (weight of 2 tries), so a position seldom tried borrows its neighbour's.
  const auto& tr = tried_[hot_];
  const auto& ac = accepted_[hot_];
  const size_t u = static_cast<size_t>(i - 1);
  const double tried = u < tr.size() ? tr[u] : 0.0, acc = u < ac.size() ? ac[u] : 0.0;
  return (acc + 2.0 * prev) / (tried + 2.0);
}

double CostAwareLength::acceptance(int position) const {
  double c = 0.5;
  for (int i = 1; i <= position; ++i) c = shrunk(i, c);
  return c;
}

int CostAwareLength::choose(int k_max) const {
  if (k_max <= 0) return 0;
  int best_len = 1;
  double best = -1.0, c = 0.5, reach = 1.0, expected = 1.0;
  for (int len = 1; len <= k_max; ++len) {
    c = shrunk(len, c);  // acceptance(len), one step of its chain
    reach *= c;
    expected += reach;
    const double value = expected / curve_->at(1 + len);
    if (value > best) best = value, best_len = len;  // ties: the shorter draft
  }
  return best_len;
}

void CostAwareLength::observe(int proposed, int accepted) {
  // Position i was tried when 1..i-1 were accepted: positions 1..min(accepted + 1, proposed).
  const int tried = std::min(proposed, accepted + 1);
  auto& tr = tried_[hot_];
  auto& ac = accepted_[hot_];
  if (static_cast<int>(tr.size()) < tried) {
    tr.resize(tried, 0.0);
    ac.resize(tried, 0.0);
  }
  for (int i = 0; i < tried; ++i) {
    tr[i] = tr[i] * kForget + 1.0;
    ac[i] = ac[i] * kForget + (i < accepted ? 1.0 : 0.0);
  }
  hot_ = proposed > 0 && accepted == proposed ? 1 : 0;
}

}  // namespace spw::decode

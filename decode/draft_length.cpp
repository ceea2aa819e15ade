// Cost-aware draft length (see draft_length.h).
#include "decode/draft_length.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "decode/bigram.h"
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

CostAwareLength::CostAwareLength(const PassCostCurve* curve) : curve_(curve) {
  for (int h = 0; h < 2; ++h) tried_[h].reserve(kMaxDraftTokens), accepted_[h].reserve(kMaxDraftTokens);
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

void CostAwareTree::reserve(int nodes, int grown, int depth) {
  auto& sc = scratch_;
  const size_t n = static_cast<size_t>(std::max(nodes, 0)) + 2;
  const size_t g = static_cast<size_t>(std::max(grown, 0)) + 1;
  const size_t column = static_cast<size_t>(kClasses) * static_cast<size_t>(std::max(depth, 1));
  for (auto* v : {&sc.cls, &sc.seen, &sc.kid_start, &sc.kids, &sc.fill, &sc.keep, &sc.index_of}) v->reserve(n);
  sc.p.reserve(n);
  sc.flags.reserve(n);
  while (sc.columns.size() < 4) sc.columns.emplace_back();
  for (auto& c : sc.columns) c.reserve(column);
  sc.sources.reserve(sc.columns.size());
  sc.table_columns.reserve(column);
  sc.cands.reserve(g * 64);
  sc.runs.reserve(g * 4);
  sc.rows.reserve(g);
  sc.heap.reserve(n + 2 * g);
  sc.added.reserve(g);
}

void CostAwareTree::classify(const TokenTree& tree) const {
  // children seen so far per parent (index parent + 1; the root is -1): each node's sibling rank
  auto& seen = scratch_.seen;
  auto& cls = scratch_.cls;
  seen.assign(static_cast<size_t>(tree.size()) + 1, 0);
  cls.resize(static_cast<size_t>(tree.size()));
  for (int v = 0; v < tree.size(); ++v) {
    const int rank = seen[static_cast<size_t>(tree.parents[v] + 1)]++;
    cls[v] = node_class(rank, static_cast<size_t>(v) < tree.scores.size() ? tree.scores[v] : -1.f);
  }
}

const std::string& CostAwareTree::source_of(const TokenTree& tree, int v) {
  static const std::string none;
  return static_cast<size_t>(v) < tree.sources.size() ? tree.sources[v] : none;
}

int CostAwareTree::node_class(int rank, float score) {
  if (!(score >= 0.f)) return std::min(rank, kRanks - 1);  // unscored (negative or NaN)
  // floor(-log2 p) read off p's bits (p >= 1e-9: a normal float, p = 1.f x 2^(E - 127)):
  // 127 - E when p is a power of 2, else 126 - E. Equal to the frexp form for every float in
  // [0, inf] (checked exhaustively), without a libm call: growing classifies ~1000 candidates a pass.
  const uint32_t bits = std::bit_cast<uint32_t>(std::max(score, 1e-9f));
  const int biased_exponent = static_cast<int>(bits >> 23);
  const int bucket = (bits & 0x7fffffu) == 0 ? 127 - biased_exponent : 126 - biased_exponent;
  return kRanks + std::clamp(bucket, 0, kScoreBuckets - 1);
}

double CostAwareTree::class_prior(int cls) {
  if (cls < kRanks) return 0.5 / (1.0 + cls);
  return std::ldexp(0.75, -(cls - kRanks));  // the middle of the score bucket [2^-(b+1), 2^-b)
}

double CostAwareTree::acceptance(const std::string& source, int rank, int depth) const {
  return estimate(source, node_class(rank, -1.f), depth);
}

double CostAwareTree::scored_acceptance(const std::string& source, float score, int depth) const {
  return estimate(source, node_class(0, score), depth);
}

double CostAwareTree::estimate(const std::string& source, int cls, int depth) const {
  const auto it = counts_.find(source);
  return estimate(it == counts_.end() ? nullptr : &it->second, cls, depth);
}

double CostAwareTree::estimate(const Counts* counts, int cls, int depth, double* column) const {
  double c = class_prior(cls);  // prior at depth 0 (draft_length.h)
  for (int d = 0; d <= depth; ++d) {
    double tried = 0, acc = 0;
    if (counts) {
      const auto& tr = counts->tried[hot_][cls];
      const auto& ac = counts->accepted[hot_][cls];
      if (static_cast<size_t>(d) < tr.size()) tried = tr[d], acc = ac[d];
    }
    c = (acc + 2.0 * c) / (tried + 2.0);  // shrunk towards the depth above (weight of 2 tries)
    if (column) column[d] = c;
  }
  return c;
}

CostAwareTree::Columns::Columns(const CostAwareTree& tree, const std::string& source, int depths,
                                std::vector<double>& c)
    : tree_(&tree), depths_(depths), c_(&c) {
  c.assign(static_cast<size_t>(kClasses) * depths, -1.0);
  const auto it = tree.counts_.find(source);
  counts_ = it == tree.counts_.end() ? nullptr : &it->second;
}

double CostAwareTree::Columns::at(int cls, int depth) {
  double* column = &(*c_)[static_cast<size_t>(cls) * depths_];
  if (column[0] < 0) tree_->estimate(counts_, cls, depths_ - 1, column);
  return column[depth];
}

std::vector<double> CostAwareTree::node_probabilities(const TokenTree& tree) const {
  return probabilities(tree);
}

const std::vector<double>& CostAwareTree::probabilities(const TokenTree& tree) const {
  classify(tree);
  const auto& cls = scratch_.cls;
  int depths = 1;
  for (int v = 0; v < tree.size(); ++v) depths = std::max(depths, tree.depths[v] + 1);
  // c per (source, class) for every depth (a tree holds a few sources and classes, and this runs
  // twice a step on up to 128 nodes); the node before usually has the same source
  auto& sources = scratch_.sources;
  sources.clear();
  size_t last = 0;
  auto& p = scratch_.p;
  p.resize(static_cast<size_t>(tree.size()));
  for (int v = 0; v < tree.size(); ++v) {
    const std::string& name = source_of(tree, v);
    if (last >= sources.size() || *sources[last].first != name) {
      last = 0;
      while (last < sources.size() && *sources[last].first != name) ++last;
      if (last == sources.size()) {
        if (scratch_.columns.size() == last) scratch_.columns.emplace_back();
        sources.emplace_back(&name, Columns(*this, name, depths, scratch_.columns[last]));
      }
    }
    p[v] = (tree.parents[v] < 0 ? 1.0 : p[tree.parents[v]]) * sources[last].second.at(cls[v], tree.depths[v]);
  }
  return p;
}

TokenTree CostAwareTree::grow(const TokenTree& base, int32_t last, const NextTokens& table, int max_nodes,
                              int max_depth) const {
  TokenTree out;
  grow(base, last, table, max_nodes, max_depth, out);
  return out;
}

void CostAwareTree::grow(const TokenTree& base, int32_t last, const NextTokens& table, int max_nodes, int max_depth,
                         TokenTree& out) const {
  SPW_CHECK_ARG(max_nodes >= 0 && max_nodes <= kMaxTreeTokens, "CostAwareTree::grow", "max_nodes", max_nodes,
                fmt::format("must be in [0, {}]", kMaxTreeTokens));
  SPW_CHECK(&out != &base, "CostAwareTree::grow: out must not be base");
  auto& sc = scratch_;
  const int nb = base.size();
  const auto& p_base = probabilities(base);
  // base's children per parent (CSR over parent + 1; the root is -1), in index order
  auto& kid_start = sc.kid_start;
  auto& kids = sc.kids;
  kid_start.assign(static_cast<size_t>(nb) + 2, 0);
  kids.resize(static_cast<size_t>(nb));
  for (int v = 0; v < nb; ++v) ++kid_start[static_cast<size_t>(base.parents[v] + 2)];
  for (size_t i = 1; i < kid_start.size(); ++i) kid_start[i] += kid_start[i - 1];
  sc.fill.assign(kid_start.begin(), kid_start.end() - 1);
  for (int v = 0; v < nb; ++v) kids[static_cast<size_t>(sc.fill[static_cast<size_t>(base.parents[v] + 1)]++)] = v;
  const std::string source = table.source();
  Columns table_c(*this, source, std::max(max_depth, 1), sc.table_columns);  // c of the table's candidates

  // A taken node is named by a ref: base node b: b; added node a: -2 - a; the root: -1. Below
  // each taken node, its table row's candidates (not already base children) in the order of
  // their c, descending, ties in the table's order. A row is kept as runs of consecutive
  // candidates of one class (one c each): that order is the runs merged by c, ties to the earlier
  // run. Only a row's best untaken candidate waits in the heap (the next follows when it is
  // taken), so a step pushes O(nodes taken), not O(nodes x row width).
  auto& cands = sc.cands;
  auto& runs = sc.runs;
  auto& rows = sc.rows;
  auto& heap = sc.heap;  // a max-heap by Item::operator< (std::push_heap / pop_heap)
  cands.clear();
  runs.clear();
  rows.clear();
  heap.clear();
  cands.reserve(static_cast<size_t>(max_nodes + 1) * 16);
  runs.reserve(static_cast<size_t>(max_nodes + 1) * 4);
  rows.reserve(static_cast<size_t>(max_nodes + 1));
  heap.reserve(static_cast<size_t>(nb + 2 * max_nodes + 2));
  auto push = [&](const Item& item) {
    heap.push_back(item);
    std::push_heap(heap.begin(), heap.end());
  };
  int64_t pushes = 0;
  auto push_candidate = [&](int row) {  // the row's best untaken candidate, if any
    const Row& r = rows[static_cast<size_t>(row)];
    int best = -1;
    for (int u = r.run_begin; u < r.run_end; ++u) {
      const Run& run = runs[static_cast<size_t>(u)];
      if (run.pos < run.end && (best < 0 || run.c > runs[static_cast<size_t>(best)].c)) best = u;
    }
    if (best >= 0) push({r.p_parent * runs[static_cast<size_t>(best)].c, ++pushes, -1, row, best});
  };
  // Everything below a node just taken (ref, P, depth, token): its base children and its table row.
  auto expand = [&](int ref, double p, int depth, int32_t token) {
    const int32_t* kb = kids.data();
    const int32_t* ke = kb;
    if (ref >= -1) {
      kb += kid_start[static_cast<size_t>(ref + 1)];
      ke = kids.data() + kid_start[static_cast<size_t>(ref + 2)];
    }
    for (const int32_t* c = kb; c != ke; ++c) push({p_base[*c], 0, *c, -1, 0});
    if (depth + 1 >= max_depth) return;
    const int run_begin = static_cast<int>(runs.size());
    int cls_before = -1;
    for (const auto& e : table.next(token)) {
      if (!(e.prob > 0.f)) continue;
      if (std::any_of(kb, ke, [&](int32_t c) { return base.tokens[c] == e.token; })) continue;
      const int cls = node_class(0, e.prob);
      const int at = static_cast<int>(cands.size());
      if (cls != cls_before) runs.push_back({table_c.at(cls, depth + 1), at, at}), cls_before = cls;
      cands.push_back(e);
      ++runs.back().end;
    }
    if (static_cast<int>(runs.size()) == run_begin) return;
    rows.push_back({ref, depth + 1, p, run_begin, static_cast<int>(runs.size())});
    push_candidate(static_cast<int>(rows.size()) - 1);
  };

  auto& added = sc.added;
  added.clear();
  auto& taken_base = sc.flags;
  taken_base.assign(static_cast<size_t>(nb), 0);
  expand(-1, 1.0, -1, last);
  for (int taken = 0; taken < max_nodes && !heap.empty(); ++taken) {
    std::pop_heap(heap.begin(), heap.end());
    const Item it = heap.back();
    heap.pop_back();
    if (it.node >= 0) {
      taken_base[static_cast<size_t>(it.node)] = 1;
      expand(it.node, it.p, base.depths[it.node], base.tokens[it.node]);
      continue;
    }
    const auto entry = cands[static_cast<size_t>(runs[static_cast<size_t>(it.run)].pos++)];
    push_candidate(it.row);  // the row's next candidate
    const Row& r = rows[static_cast<size_t>(it.row)];
    added.push_back({r.parent, entry, r.depth});
    expand(-2 - static_cast<int>(added.size() - 1), it.p, r.depth, entry.token);  // (may move rows)
  }

  auto& keep = sc.keep;
  keep.clear();
  for (int v = 0; v < nb; ++v)
    if (taken_base[static_cast<size_t>(v)]) keep.push_back(v);
  subtree(base, keep, out);
  auto& index_of = sc.index_of;
  index_of.assign(static_cast<size_t>(nb), -1);
  for (size_t i = 0; i < keep.size(); ++i) index_of[static_cast<size_t>(keep[i])] = static_cast<int32_t>(i);
  const int first_added = out.size();
  for (const Added& a : added) {
    out.tokens.push_back(a.entry.token);
    out.parents.push_back(a.parent == -1  ? -1
                          : a.parent >= 0 ? index_of[static_cast<size_t>(a.parent)]
                                          : first_added + (-2 - a.parent));
    out.depths.push_back(a.depth);
    out.sources.push_back(source);
    out.scores.push_back(a.entry.prob);
  }
}

std::vector<int32_t> CostAwareTree::choose(const TokenTree& tree) const {
  std::vector<int32_t> out;
  choose(tree, out);
  return out;
}

void CostAwareTree::choose(const TokenTree& tree, std::vector<int32_t>& order) const {
  const int n = tree.size();
  order.clear();
  if (n == 0) return;
  const auto& p = probabilities(tree);
  order.resize(static_cast<size_t>(n));
  for (int v = 0; v < n; ++v) order[v] = v;
  // P(child) < P(parent) (every c < 1) and ties go to the lower index, so a prefix of this
  // order always holds each kept node's parent. (A stable sort's order, without its buffer.)
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  int best_n = 1;
  double best = -1.0, expected = 1.0;
  for (int i = 0; i < n; ++i) {
    expected += p[order[i]];
    const double value = expected / curve_->at(2 + i);  // the pending token + i + 1 nodes
    if (value > best) best = value, best_n = i + 1;  // ties: the smaller tree
  }
  order.resize(best_n);
  std::sort(order.begin(), order.end());
}

void CostAwareTree::observe(const TokenTree& tree, std::span<const int32_t> accepted_path) {
  classify(tree);
  const auto& cls = scratch_.cls;
  auto& accepted = scratch_.flags;
  accepted.assign(static_cast<size_t>(tree.size()), 0);
  for (int32_t v : accepted_path) {
    SPW_CHECK(v >= 0 && v < tree.size(), "CostAwareTree::observe: path node {} outside the tree of {} nodes", v,
              tree.size());
    accepted[v] = 1;
  }
  int max_depth = -1;
  for (int v = 0; v < tree.size(); ++v) {
    max_depth = std::max(max_depth, tree.depths[v]);
    const int parent = tree.parents[v];
    if (parent >= 0 && !accepted[parent]) continue;  // never verified: its parent was rejected
    const std::string& source = source_of(tree, v);
    auto found = counts_.find(source);
    if (found == counts_.end()) {  // a new source: its counts with room for every depth
      found = counts_.emplace(source, Counts{}).first;
      for (auto& state : found->second.tried)
        for (auto& depths : state) depths.reserve(kMaxDraftTokens);
      for (auto& state : found->second.accepted)
        for (auto& depths : state) depths.reserve(kMaxDraftTokens);
    }
    Counts& c = found->second;
    auto& tr = c.tried[hot_][cls[v]];
    auto& ac = c.accepted[hot_][cls[v]];
    const size_t d = static_cast<size_t>(tree.depths[v]);
    if (tr.size() <= d) {
      tr.resize(d + 1, 0.0);
      ac.resize(d + 1, 0.0);
    }
    tr[d] = tr[d] * kForget + 1.0;
    ac[d] = ac[d] * kForget + accepted[v];
  }
  hot_ = max_depth >= 0 && static_cast<int>(accepted_path.size()) == max_depth + 1 ? 1 : 0;
}

}  // namespace spw::decode

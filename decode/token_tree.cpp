// Token-tree helpers (see token_tree.h).
#include "decode/token_tree.h"

#include <algorithm>

#include "kernels/common/error.h"

namespace spw::decode {

TokenTree build_token_tree(const std::vector<Draft>& drafts, int max_nodes) {
  TokenTree t;
  build_token_tree(drafts, max_nodes, t);
  return t;
}

void build_token_tree(std::span<const Draft> drafts, int max_nodes, TokenTree& t) {
  SPW_CHECK_ARG(max_nodes >= 0 && max_nodes <= kMaxTreeTokens, "build_token_tree", "max_nodes",
                max_nodes, "must be in [0, 1024]");
  t.clear();
  for (const auto& d : drafts) {
    int32_t cur = -1;
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      int32_t found = -1;
      for (int32_t j = cur + 1; j < t.size(); ++j)
        if (t.parents[j] == cur && t.tokens[j] == d.tokens[i]) {
          found = j;
          break;
        }
      if (found < 0) {
        if (t.size() >= max_nodes) break;
        found = t.size();
        t.tokens.push_back(d.tokens[i]);
        t.parents.push_back(cur);
        t.depths.push_back(cur < 0 ? 0 : t.depths[cur] + 1);
        t.sources.push_back(i < d.sources.size() ? std::string_view(d.sources[i]) : std::string_view());
        t.scores.push_back(i < d.scores.size() ? d.scores[i] : -1.f);
      }
      cur = found;
    }
  }
}

void validate_parents(std::span<const int32_t> parents, int limit) {
  SPW_CHECK_ARG(static_cast<int>(parents.size()) <= limit, "token tree", "tree tokens",
                parents.size(), fmt::format("must be <= {}", limit));
  for (size_t i = 0; i < parents.size(); ++i)
    if (parents[i] < -1 || parents[i] >= static_cast<int32_t>(i))
      fail("token tree: parents[{}] = {}: must be in [-1, {})", i, parents[i], i);
}

std::vector<int32_t> tree_depths(std::span<const int32_t> parents) {
  validate_parents(parents);
  std::vector<int32_t> d(parents.size());
  for (size_t i = 0; i < parents.size(); ++i) d[i] = parents[i] < 0 ? 0 : d[parents[i]] + 1;
  return d;
}

std::vector<int32_t> topological_order(std::span<const int32_t> parents) {
  const int n = static_cast<int>(parents.size());
  std::vector<std::vector<int32_t>> children(n);
  std::vector<int32_t> order, roots;
  for (int i = 0; i < n; ++i) {
    const int p = parents[i];
    if (p < -1 || p >= n || p == i) fail("token tree: parents[{}] = {}: out of range or self", i, p);
    if (p < 0) roots.push_back(i);
    else children[p].push_back(i);
  }
  std::vector<int32_t> stack(roots.rbegin(), roots.rend());
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    order.push_back(v);
    for (auto it = children[v].rbegin(); it != children[v].rend(); ++it) stack.push_back(*it);
  }
  SPW_CHECK(static_cast<int>(order.size()) == n,
            "token tree: parent array has a cycle ({} of {} nodes reachable from the root)",
            order.size(), n);
  return order;
}

std::vector<uint64_t> ancestor_mask(std::span<const int32_t> parents, int* words_out) {
  validate_parents(parents);
  const int n = static_cast<int>(parents.size());
  const int words = (n + 63) / 64;
  std::vector<uint64_t> m(static_cast<size_t>(n) * words, 0);
  for (int i = 0; i < n; ++i) {
    if (parents[i] >= 0)
      std::copy_n(&m[static_cast<size_t>(parents[i]) * words], words, &m[static_cast<size_t>(i) * words]);
    m[static_cast<size_t>(i) * words + i / 64] |= uint64_t{1} << (i % 64);
  }
  if (words_out) *words_out = words;
  return m;
}

std::vector<int32_t> path_to(std::span<const int32_t> parents, int32_t node) {
  std::vector<int32_t> p;
  for (int32_t v = node; v >= 0; v = parents[v]) {
    SPW_CHECK(v < static_cast<int32_t>(parents.size()), "path_to: node {} out of range", v);
    p.push_back(v);
  }
  std::reverse(p.begin(), p.end());
  return p;
}

TokenTree subtree(const TokenTree& tree, std::span<const int32_t> keep) {
  TokenTree t;
  subtree(tree, keep, t);
  return t;
}

void subtree(const TokenTree& tree, std::span<const int32_t> keep, TokenTree& t) {
  SPW_CHECK(&t != &tree, "subtree: out must not be the tree");
  t.clear();
  // keep is ascending and closed under parents: a kept parent's new index is found among the
  // nodes kept before it (no remap table: nothing allocated)
  for (size_t i = 0; i < keep.size(); ++i) {
    const int32_t v = keep[i];
    SPW_CHECK(v >= 0 && v < tree.size() && (i == 0 || v > keep[i - 1]),
              "subtree: keep[{}] = {}: must be a node of the tree, after keep[{}]", i, v, i == 0 ? 0 : i - 1);
    const int32_t p = tree.parents[v];
    int32_t parent_at = -1;
    if (p >= 0) {
      const auto it = std::lower_bound(keep.begin(), keep.end(), p);
      SPW_CHECK(it != keep.end() && *it == p && static_cast<size_t>(it - keep.begin()) < static_cast<size_t>(t.size()),
                "subtree: node {} kept without its parent {}", v, p);
      parent_at = static_cast<int32_t>(it - keep.begin());
    }
    t.tokens.push_back(tree.tokens[v]);
    t.parents.push_back(parent_at);
    t.depths.push_back(tree.depths[v]);
    t.sources.push_back(v < static_cast<int32_t>(tree.sources.size()) ? std::string_view(tree.sources[v])
                                                                      : std::string_view());
    t.scores.push_back(v < static_cast<int32_t>(tree.scores.size()) ? tree.scores[v] : -1.f);
  }
}

TokenTree limit_depth(const TokenTree& tree, int max_depth) {
  std::vector<int32_t> keep;
  for (int i = 0; i < tree.size(); ++i)
    if (tree.depths[i] <= max_depth) keep.push_back(i);
  return subtree(tree, keep);
}

std::vector<int32_t> kv_keep_offsets(std::span<const int32_t> accepted_path) {
  std::vector<int32_t> off;
  kv_keep_offsets(accepted_path, off);
  return off;
}

void kv_keep_offsets(std::span<const int32_t> accepted_path, std::vector<int32_t>& out) {
  out.assign(1, 0);
  for (int32_t v : accepted_path) out.push_back(v + 1);
}

}  // namespace spw::decode

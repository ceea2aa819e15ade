// Shared tree-attention test cases (CPU and GPU tests): random inputs over a shuffled page pool,
// tree shapes (random, chain, star).
#pragma once

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/tree_attention/reference.h"
#include "kernels/tree_attention/tree_attention.h"
#include "tests/common/helpers.h"

namespace spw::tree_attention::test_cases {

inline const DeviceInfo kH100 = DeviceInfo::synthetic(132);

struct Case {
  Problem p;
  std::vector<int32_t> prefix_lens, tree_sizes, parents;
  std::vector<float> q, k_tree, v_tree, k_pages, v_pages;
  std::vector<int32_t> indptr, indices, last_page_len;
  int num_pages = 0;
};

// Random inputs; the prefix pages are a shuffled pool so the page table is non-trivial.
inline Case make_case(std::mt19937_64& rng, Problem p, std::vector<int32_t> prefix_lens,
               std::vector<std::vector<int32_t>> trees) {
  Case c;
  c.p = p;
  c.prefix_lens = prefix_lens;
  for (auto& t : trees) {
    c.tree_sizes.push_back(static_cast<int32_t>(t.size()));
    c.parents.insert(c.parents.end(), t.begin(), t.end());
  }
  const int total = static_cast<int>(c.parents.size()), d = p.head_dim;
  c.indptr.push_back(0);
  for (int b = 0; b < p.batch; ++b) {
    const int pages = (prefix_lens[b] + p.page_size - 1) / p.page_size;
    c.indptr.push_back(c.indptr.back() + pages);
    c.last_page_len.push_back(pages ? prefix_lens[b] - (pages - 1) * p.page_size : 0);
  }
  c.num_pages = c.indptr.back() + 3;
  c.indices.resize(c.num_pages);
  std::iota(c.indices.begin(), c.indices.end(), 0);
  std::shuffle(c.indices.begin(), c.indices.end(), rng);
  c.indices.resize(c.indptr.back());
  c.q = test::random_floats(rng, size_t(total) * p.qo_heads * d, -1, 1, p.dtype);
  c.k_tree = test::random_floats(rng, size_t(total) * p.kv_heads * d, -1, 1, p.dtype);
  c.v_tree = test::random_floats(rng, size_t(total) * p.kv_heads * d, -1, 1, p.dtype);
  const size_t pool = size_t(c.num_pages) * p.page_size * p.kv_heads * d;
  c.k_pages = test::random_floats(rng, pool, -1, 1, p.dtype);
  c.v_pages = test::random_floats(rng, pool, -1, 1, p.dtype);
  return c;
}

inline reference::Inputs inputs(const Case& c) {
  return {c.q, c.k_tree, c.v_tree, c.k_pages, c.v_pages, c.indptr, c.indices};
}

inline Plan plan_of(const Case& c) { return plan(c.p, c.prefix_lens, c.tree_sizes, c.parents, kH100); }

inline std::vector<int32_t> random_tree(std::mt19937_64& rng, int n) {
  std::vector<int32_t> par(n);
  for (int i = 0; i < n; ++i) par[i] = std::uniform_int_distribution<int>(-1, i - 1)(rng);
  return par;
}
inline std::vector<int32_t> chain(int n) {
  std::vector<int32_t> par(n);
  for (int i = 0; i < n; ++i) par[i] = i - 1;
  return par;
}
inline std::vector<int32_t> star(int n) {  // one root, every other token its child
  std::vector<int32_t> par(n, 0);
  par[0] = -1;
  return par;
}

inline Problem small_problem(int qo, int kv, int d, int page) {
  Problem p;
  p.qo_heads = qo;
  p.kv_heads = kv;
  p.head_dim = d;
  p.page_size = page;
  return p;
}
}  // namespace spw::tree_attention::test_cases

// Random decode-attention batches shared by the CPU and GPU tests: the same KV values stored
// contiguously and in shuffled pages, so both layouts must give the same result.
#pragma once

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/decode_attention/reference.h"
#include "tests/common/helpers.h"

namespace spw::decode_attention::test_cases {

struct Case {
  Problem p;  // layout paged; contiguous() gives the same case in the other layout
  std::vector<int32_t> kv_lens;
  std::vector<float> q;                    // [batch, qo_heads, head_dim], rounded to dtype
  std::vector<float> k, v;                 // contiguous [batch, kv_len_max, kv_heads, head_dim]
  std::vector<float> k_pages, v_pages;     // [num_pages, page_size, kv_heads, head_dim]
  std::vector<int32_t> indptr, indices, last_page_len;
  int num_pages = 0;

  Problem contiguous() const {
    Problem c = p;
    c.layout = Layout::contiguous;
    return c;
  }
  reference::KvCache paged_cache() const { return {k_pages, v_pages, indptr, indices, {}, {}}; }
  reference::KvCache contiguous_cache() const { return {{}, {}, {}, {}, k, v}; }
};

/// Builds a case: values in [-1, 1] rounded to p.dtype (q scaled up a little so the softmax is
/// not flat), pages shuffled plus a few unused pages.
inline Case make_case(Problem p, std::vector<int32_t> kv_lens, std::mt19937_64& rng) {
  Case c;
  p.layout = Layout::paged;
  const int max_len = kv_lens.empty() ? 0 : *std::max_element(kv_lens.begin(), kv_lens.end());
  p.kv_len_max = std::max(max_len, 1);
  c.p = p;
  c.kv_lens = kv_lens;
  const size_t d = p.head_dim, row = static_cast<size_t>(p.kv_heads) * d;
  c.q = test::random_floats(rng, static_cast<size_t>(p.batch) * p.qo_heads * d, -2.f, 2.f, p.dtype);
  c.k = test::random_floats(rng, p.batch * p.kv_len_max * row, -1.f, 1.f, p.dtype);
  c.v = test::random_floats(rng, p.batch * p.kv_len_max * row, -1.f, 1.f, p.dtype);
  c.indptr.assign(1, 0);
  for (int b = 0; b < p.batch; ++b) {
    const int pages = (kv_lens[b] + p.page_size - 1) / p.page_size;
    c.indptr.push_back(c.indptr.back() + pages);
    c.last_page_len.push_back(pages ? kv_lens[b] - (pages - 1) * p.page_size : 0);
  }
  c.num_pages = c.indptr.back() + 3;
  std::vector<int32_t> perm(c.num_pages);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  c.indices.assign(perm.begin(), perm.begin() + c.indptr.back());
  const size_t page_elems = static_cast<size_t>(p.page_size) * row;
  c.k_pages = test::random_floats(rng, c.num_pages * page_elems, -1.f, 1.f, p.dtype);  // junk in unused slots
  c.v_pages = test::random_floats(rng, c.num_pages * page_elems, -1.f, 1.f, p.dtype);
  for (int b = 0; b < p.batch; ++b)
    for (int j = 0; j < kv_lens[b]; ++j) {
      const size_t src = (static_cast<size_t>(b) * p.kv_len_max + j) * row;
      const size_t dst = (static_cast<size_t>(c.indices[c.indptr[b] + j / p.page_size]) * p.page_size +
                          j % p.page_size) * row;
      std::copy_n(c.k.begin() + src, row, c.k_pages.begin() + dst);
      std::copy_n(c.v.begin() + src, row, c.v_pages.begin() + dst);
    }
  return c;
}

inline Problem problem(int batch, int qo_heads, int kv_heads, int head_dim, DType dt = DType::f16,
                       int page_size = 16) {
  Problem p;
  p.batch = batch;
  p.qo_heads = qo_heads;
  p.kv_heads = kv_heads;
  p.head_dim = head_dim;
  p.dtype = dt;
  p.page_size = page_size;
  return p;
}

}  // namespace spw::decode_attention::test_cases

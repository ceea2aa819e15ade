// CPU reference of decode attention and of the LSE merge, in double (see decode_attention.h
// for the semantics). The attention reference works the way the GPU does — every request's
// KV range is cut into chunks, each chunk gives a partial (o, lse), and the partials are
// merged with merge_states — so the chunk/merge math is checked against a plain softmax in
// the tests. KV inputs are the GPU layouts as float vectors.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/decode_attention/decode_attention.h"

namespace spw::decode_attention::reference {

/// The KV cache in one of the two layouts (float copies of the device tensors).
struct KvCache {
  // paged: [num_pages, page_size, kv_heads, head_dim] + CSR page table
  std::span<const float> k_pages, v_pages;
  std::span<const int32_t> indptr, indices;
  // contiguous: [batch, kv_len_max, kv_heads, head_dim]
  std::span<const float> k, v;
};

struct Result {
  std::vector<double> o;    // [batch, qo_heads, head_dim]
  std::vector<double> lse;  // [batch, qo_heads], natural log, -inf for kv_len 0
};

/// Attention of q [batch, qo_heads, head_dim] over the cache; chunk_tokens <= 0 = one chunk.
Result attention(const Problem& p, std::span<const int32_t> kv_lens, std::span<const float> q, const KvCache& kv,
                 int chunk_tokens = 0);

/// Merge of n states: v [n, rows, head_dim], lse [n, rows] -> (o [rows, head_dim], lse [rows]).
Result merge_states(int rows, int num_states, int head_dim, std::span<const double> v, std::span<const double> lse);

/// Offset of (request b, token j, kv head h) row in the cache layout of p.
long long kv_row_offset(const Problem& p, const KvCache& kv, int b, int j, int h);

}  // namespace spw::decode_attention::reference

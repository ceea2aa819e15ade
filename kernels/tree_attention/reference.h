// CPU reference of tree attention in double (semantics in tree_attention.h): each tree token
// attends to the request's prefix, its ancestors and itself. The prefix part and the tree part
// are computed as two partial states and combined with decode_attention's reference merge, the
// way the kernel combines them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/decode_attention/reference.h"
#include "kernels/tree_attention/tree_attention.h"

namespace spw::tree_attention::reference {

struct Inputs {
  std::span<const float> q;                // [total_tokens, qo_heads, head_dim]
  std::span<const float> k_tree, v_tree;   // [total_tokens, kv_heads, head_dim]
  std::span<const float> k_pages, v_pages; // prefix pages [num_pages, page_size, kv_heads, head_dim]
  std::span<const int32_t> indptr, indices;
};

/// o [total_tokens, qo_heads, head_dim], lse [total_tokens, qo_heads] (natural log).
decode_attention::reference::Result attention(const Plan& plan, const Inputs& in);

}  // namespace spw::tree_attention::reference

// Token-tree host helpers (issue 6): a tree of draft tokens verified in one target pass.
// Nodes are numbered in creation order, so parents[i] < i always holds and the numbering is
// itself a topological order; parents[i] = -1 means "child of the cached prefix" (the root).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "decode/drafter.h"

namespace spw::decode {

struct TokenTree {
  std::vector<int32_t> tokens;
  std::vector<int32_t> parents;  // parents[i] < i, -1 = root's child
  std::vector<int32_t> depths;   // 0 for root's children
  SourceNames sources;  // per node, the drafter that proposed it
  std::vector<float> scores;  // per node, the creating draft's score (Draft::scores), -1 = none
  int size() const { return static_cast<int>(tokens.size()); }
  /// Room for `n` nodes.
  void reserve(size_t n) {
    tokens.reserve(n);
    parents.reserve(n);
    depths.reserve(n);
    sources.reserve(n);
    scores.reserve(n);
  }
  /// Empties the tree, keeping its vectors' capacity.
  void clear() {
    tokens.clear();
    parents.clear();
    depths.clear();
    sources.clear();
    scores.clear();
  }
};

/// Largest tree accepted by the helpers (the ancestor mask is a bitmask of this many bits).
inline constexpr int kMaxTreeTokens = 1024;

/// Trie of draft sequences: common prefixes merged; nodes in order of first creation; at most
/// max_nodes nodes (later nodes dropped; since parents precede children the rest is a tree).
TokenTree build_token_tree(const std::vector<Draft>& drafts, int max_nodes = kMaxTreeTokens);
/// The same into `out` (cleared first; a tree kept between steps allocates nothing once warm).
void build_token_tree(std::span<const Draft> drafts, int max_nodes, TokenTree& out);
/// Throws naming the bad entry unless parents[i] in [-1, i) for every i and size <= limit.
void validate_parents(std::span<const int32_t> parents, int limit = kMaxTreeTokens);
/// Depth of each node (root's children: 0). Validates.
std::vector<int32_t> tree_depths(std::span<const int32_t> parents);
/// A topological order (parents before children) of ANY parent array with no cycles, e.g.
/// one not numbered in creation order; throws on a cycle or out-of-range parent.
std::vector<int32_t> topological_order(std::span<const int32_t> parents);
/// Ancestor bitmask, row-major [T][words], words = ceil(T / 64): bit j of row i is set when j
/// is i or an ancestor of i (the tree-attention mask).
std::vector<uint64_t> ancestor_mask(std::span<const int32_t> parents, int* words_out = nullptr);
/// Node indices from the root's child down to `node` (empty for node = -1).
std::vector<int32_t> path_to(std::span<const int32_t> parents, int32_t node);
/// Keeps only `keep` nodes (sorted ascending, closed under parents) and renumbers.
TokenTree subtree(const TokenTree& tree, std::span<const int32_t> keep);
/// The same into `out` (cleared first; must not be `tree`).
void subtree(const TokenTree& tree, std::span<const int32_t> keep, TokenTree& out);
/// Drops nodes deeper than max_depth (depth counted from 0).
TokenTree limit_depth(const TokenTree& tree, int max_depth);
/// keep_tokens offsets for a forward whose first token is the pending root token at `base`
/// followed by the tree's nodes: {0, path[0] + 1, path[1] + 1, ...}.
std::vector<int32_t> kv_keep_offsets(std::span<const int32_t> accepted_path);
/// The same into `out` (its capacity reused).
void kv_keep_offsets(std::span<const int32_t> accepted_path, std::vector<int32_t>& out);

}  // namespace spw::decode

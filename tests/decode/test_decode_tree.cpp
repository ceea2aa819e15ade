// Token-tree host helpers: trie build, validation, topological order, depths, ancestor mask,
// accepted path, KV compaction offsets.
#include <gtest/gtest.h>

#include "decode/token_tree.h"
#include "tests/common/helpers.h"

using namespace spw::decode;

namespace {
Draft D(std::vector<int32_t> t) { return Draft{t, {}, {}, {}}; }
}

TEST(TokenTree, TrieMergesCommonPrefixes) {
  auto t = build_token_tree({D({5, 6, 7}), D({5, 6, 8}), D({5, 9}), D({4})});
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{5, 6, 7, 8, 9, 4}));
  EXPECT_EQ(t.parents, (std::vector<int32_t>{-1, 0, 1, 1, 0, -1}));
  EXPECT_EQ(t.depths, (std::vector<int32_t>{0, 1, 2, 2, 1, 0}));
  EXPECT_EQ(tree_depths(t.parents), t.depths);
}

TEST(TokenTree, MaxNodesKeepsAValidTree) {
  auto t = build_token_tree({D({1, 2, 3}), D({1, 4, 5})}, 4);
  EXPECT_EQ(t.size(), 4);
  EXPECT_NO_THROW(validate_parents(t.parents));
  EXPECT_EQ(t.parents, (std::vector<int32_t>{-1, 0, 1, 0}));
}

TEST(TokenTree, DuplicateDraftsAddNothing) {
  auto t = build_token_tree({D({1, 2}), D({1, 2}), D({1})});
  EXPECT_EQ(t.size(), 2);
}

TEST(TokenTree, ValidationNamesTheBadEntry) {
  std::vector<int32_t> bad{-1, 0, 2};
  EXPECT_THROW_MSG(validate_parents(bad), "parents[2] = 2");
  std::vector<int32_t> bad2{-1, -3};
  EXPECT_THROW_MSG(validate_parents(bad2), "parents[1] = -3");
  std::vector<int32_t> big(2000, -1);
  EXPECT_THROW_MSG(validate_parents(big), "tree tokens = 2000");
  // The limit itself is allowed, one more is not (default limit kMaxTreeTokens, or a caller's).
  std::vector<int32_t> full(kMaxTreeTokens, -1);
  EXPECT_NO_THROW(validate_parents(full));
  full.push_back(-1);
  EXPECT_THROW_MSG(validate_parents(full), "tree tokens = 1025: must be <= 1024");
  EXPECT_NO_THROW(validate_parents(std::vector<int32_t>{-1, 0, 1}, 3));
  EXPECT_THROW_MSG(validate_parents(std::vector<int32_t>{-1, 0, 1}, 2), "tree tokens = 3: must be <= 2");
}

TEST(TokenTree, MaxNodesBoundsTheTreeAndIsChecked) {
  EXPECT_EQ(build_token_tree({D({1, 2, 3}), D({4, 5})}, 4).tokens, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(build_token_tree({D({1, 2, 3})}, 0).size(), 0);
  EXPECT_NO_THROW(build_token_tree({D({1})}, kMaxTreeTokens));
  EXPECT_THROW_MSG(build_token_tree({D({1})}, kMaxTreeTokens + 1), "max_nodes = 1025: must be in [0, 1024]");
  EXPECT_THROW_MSG(build_token_tree({D({1})}, -1), "max_nodes = -1: must be in [0, 1024]");
}

TEST(TokenTree, TopologicalOrderOfUnorderedArrayAndCycles) {
  std::vector<int32_t> p{2, -1, 1, 0};  // 1 -> 2 -> 0 -> 3
  auto order = topological_order(p);
  std::vector<int> pos(4);
  for (int i = 0; i < 4; ++i) pos[order[i]] = i;
  for (int i = 0; i < 4; ++i) {
    if (p[i] >= 0) {
      EXPECT_LT(pos[p[i]], pos[i]);
    }
  }
  std::vector<int32_t> cyc{1, 0, -1};
  EXPECT_THROW_MSG(topological_order(cyc), "cycle");
  // Parents just past either end of the array, and a node its own parent.
  EXPECT_THROW_MSG(topological_order(std::vector<int32_t>{-1, 2}), "parents[1] = 2: out of range or self");
  EXPECT_THROW_MSG(topological_order(std::vector<int32_t>{-1, -2}), "parents[1] = -2: out of range or self");
  EXPECT_THROW_MSG(topological_order(std::vector<int32_t>{-1, 1}), "parents[1] = 1: out of range or self");
}

TEST(TokenTree, AncestorMask) {
  std::vector<int32_t> p{-1, 0, 0, 2, -1};
  int words = 0;
  auto m = ancestor_mask(p, &words);
  EXPECT_EQ(words, 1);
  EXPECT_EQ(m[0], 0b00001u);
  EXPECT_EQ(m[1], 0b00011u);
  EXPECT_EQ(m[2], 0b00101u);
  EXPECT_EQ(m[3], 0b01101u);
  EXPECT_EQ(m[4], 0b10000u);
  // Deep chain over 64 nodes crosses words.
  std::vector<int32_t> chain(70);
  for (int i = 0; i < 70; ++i) chain[i] = i - 1;
  auto mc = ancestor_mask(chain, &words);
  EXPECT_EQ(words, 2);
  EXPECT_EQ(mc[69 * 2 + 0], ~uint64_t{0});
  EXPECT_EQ(mc[69 * 2 + 1], (uint64_t{1} << 6) - 1);
}

TEST(TokenTree, PathAndCompactionOffsets) {
  std::vector<int32_t> p{-1, 0, 0, 2, -1};
  EXPECT_EQ(path_to(p, 3), (std::vector<int32_t>{0, 2, 3}));
  EXPECT_TRUE(path_to(p, -1).empty());
  EXPECT_EQ(path_to(p, 4), (std::vector<int32_t>{4}));
  EXPECT_THROW_MSG(path_to(p, 5), "path_to: node 5 out of range");
  EXPECT_EQ(kv_keep_offsets(path_to(p, 3)), (std::vector<int32_t>{0, 1, 3, 4}));
  EXPECT_EQ(kv_keep_offsets({}), (std::vector<int32_t>{0}));
}

TEST(TokenTree, LimitDepthRenumbers) {
  auto t = build_token_tree({D({1, 2, 3}), D({4, 5})});
  auto l = limit_depth(t, 0);
  EXPECT_EQ(l.tokens, (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(l.parents, (std::vector<int32_t>{-1, -1}));
  auto l1 = limit_depth(t, 1);
  EXPECT_EQ(l1.tokens, (std::vector<int32_t>{1, 2, 4, 5}));
  EXPECT_EQ(l1.parents, (std::vector<int32_t>{-1, 0, -1, 2}));
}

TEST(TokenTree, SubtreeRenumbersAndRejectsBadKeepLists) {
  // 0:1 -> 1:2 -> 2:3, 3:4 -> 4:5, 5:6 under 1
  TokenTree t = build_token_tree({D({1, 2, 3}), D({4, 5}), D({1, 2, 6})});
  ASSERT_EQ(t.parents, (std::vector<int32_t>{-1, 0, 1, -1, 3, 1}));
  const std::vector<int32_t> keep{0, 1, 3, 5};
  TokenTree out;
  subtree(t, keep, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{1, 2, 4, 6}));
  EXPECT_EQ(out.parents, (std::vector<int32_t>{-1, 0, -1, 1}));
  EXPECT_EQ(out.depths, (std::vector<int32_t>{0, 1, 0, 2}));
  subtree(t, std::vector<int32_t>{3, 4}, out);  // reused: cleared first
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(out.parents, (std::vector<int32_t>{-1, 0}));
  EXPECT_EQ(subtree(t, keep).tokens, (std::vector<int32_t>{1, 2, 4, 6}));
  EXPECT_THROW_MSG(subtree(t, std::vector<int32_t>{0, 2}), "node 2 kept without its parent 1");
  // node 5's parent 1 is missing, though a node kept earlier (3) sits where 1 would be looked up
  EXPECT_THROW_MSG(subtree(t, std::vector<int32_t>{0, 3, 5}), "node 5 kept without its parent 1");
  EXPECT_THROW_MSG(subtree(t, std::vector<int32_t>{0, 3, 1}), "keep[2] = 1: must be a node of the tree, after keep[1]");
  EXPECT_THROW_MSG(subtree(t, std::vector<int32_t>{0, 6}), "keep[1] = 6");
  EXPECT_THROW_MSG(subtree(t, keep, t), "out must not be the tree");
}

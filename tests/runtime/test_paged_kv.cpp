// PagedKvBook (host bookkeeping of the CUDA backend's paged KV cache): pages handed out and
// returned, rows, CSR page tables in decode_attention's layout, keep() moves with overlapping
// rows replayed on a host "pool", errors naming argument and value with the book unchanged,
// pool exhaustion, id reuse, and a randomised run against the invariants.
#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "kernels/decode_attention/decode_attention.h"
#include "runtime/paged_kv.h"
#include "tests/common/helpers.h"

using namespace spw;
using namespace spw::rt;

namespace {

// Every page is either free or owned by exactly one live sequence, and owns what it needs.
void expect_consistent(const PagedKvBook& book, const std::vector<int>& live) {
  std::set<int32_t> owned;
  for (int s : live) {
    ASSERT_TRUE(book.live(s)) << s;
    const auto pages = book.pages(s);
    EXPECT_EQ(static_cast<int>(pages.size()), (book.length(s) + book.page_size() - 1) / book.page_size()) << s;
    for (int32_t p : pages) {
      EXPECT_TRUE(p >= 0 && p < book.num_pages()) << p;
      EXPECT_TRUE(owned.insert(p).second) << "page " << p << " owned twice";
    }
  }
  EXPECT_EQ(static_cast<int>(owned.size()) + book.free_pages(), book.num_pages());
}

TEST(PagedKvBook, ConstructorRejectsBadSizes) {
  EXPECT_THROW_MSG(PagedKvBook(0, 16, 64), "PagedKvBook: num_pages = 0: must be >= 1");
  EXPECT_THROW_MSG(PagedKvBook(4, 0, 64), "page_size = 0: must be >= 1");
  EXPECT_THROW_MSG(PagedKvBook(4, 16, 0), "max_tokens_per_sequence = 0: must be >= 1");
  EXPECT_THROW_MSG(PagedKvBook(1 << 27, 16, 64), "num_pages * page_size = 2147483648");
}

TEST(PagedKvBook, SmallestSizesAndLimitsAreInclusive) {
  PagedKvBook book(1, 1, 1);  // one page of one token, sequences of at most one token
  const int a = book.create();
  EXPECT_EQ(book.append(a, 1), 0);  // exactly max_tokens: accepted
  EXPECT_EQ(book.row(a, 0), 0);
  EXPECT_EQ(book.free_pages(), 0);
  EXPECT_THROW_MSG(book.append(a, 1), "n = 1: sequence 0 holds 1 tokens; 1 more exceed max_tokens = 1");
  // Sequence ids just past the end are no sequences (and are not read).
  EXPECT_FALSE(book.live(1));
  EXPECT_FALSE(book.live(-1));
  EXPECT_THROW_MSG(book.length(1), "PagedKvBook::length: seq = 1: no such sequence");
  book.release(a);
  EXPECT_EQ(book.free_pages(), 1);
  PagedKvBook wide(2, 8, 16);
  const int b = wide.create();
  EXPECT_EQ(wide.append(b, 16), 0);  // a whole sequence at once, both pages
  EXPECT_EQ(wide.length(b), 16);
  EXPECT_EQ(wide.row(b, 15), 15);
}

TEST(PagedKvBook, AppendTakesPagesInOrderAndRowsFollowThem) {
  PagedKvBook book(8, 4, 100);
  const int a = book.create(), b = book.create();
  EXPECT_EQ(a, 0);
  EXPECT_EQ(b, 1);
  EXPECT_EQ(book.append(a, 5), 0);  // pages 0, 1
  EXPECT_EQ(book.append(b, 3), 0);  // page 2
  EXPECT_EQ(book.append(a, 4), 5);  // fills page 1, then page 3
  EXPECT_EQ(book.length(a), 9);
  EXPECT_EQ(std::vector<int32_t>(book.pages(a).begin(), book.pages(a).end()), (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(std::vector<int32_t>(book.pages(b).begin(), book.pages(b).end()), (std::vector<int32_t>{2}));
  EXPECT_EQ(book.free_pages(), 4);
  EXPECT_EQ(book.row(a, 0), 0);
  EXPECT_EQ(book.row(a, 5), 5);
  EXPECT_EQ(book.row(a, 8), 3 * 4 + 0);
  EXPECT_EQ(book.row(b, 2), 2 * 4 + 2);
  EXPECT_EQ(book.append(a, 0), 9);  // nothing reserved, nothing taken
  EXPECT_EQ(book.free_pages(), 4);
  EXPECT_THROW_MSG(book.row(a, 9), "PagedKvBook::row: index = 9: must be in 0..8");
  EXPECT_THROW_MSG(book.row(a, -1), "index = -1");
  expect_consistent(book, {a, b});
}

TEST(PagedKvBook, TruncateFreesEmptiedPagesOnly) {
  PagedKvBook book(8, 4, 100);
  const int s = book.create();
  book.append(s, 9);  // 3 pages
  book.truncate(s, 8);  // still 2 full pages
  EXPECT_EQ(book.pages(s).size(), 2u);
  EXPECT_EQ(book.free_pages(), 6);
  book.truncate(s, 5);
  EXPECT_EQ(book.pages(s).size(), 2u);
  book.truncate(s, 4);
  EXPECT_EQ(book.pages(s).size(), 1u);
  book.truncate(s, 0);
  EXPECT_EQ(book.pages(s).size(), 0u);
  EXPECT_EQ(book.free_pages(), 8);
  EXPECT_EQ(book.length(s), 0);
  book.append(s, 2);
  EXPECT_THROW_MSG(book.truncate(s, 3), "PagedKvBook::truncate: new_len = 3: must be in 0..2");
  EXPECT_THROW_MSG(book.truncate(s, -1), "new_len = -1");
  EXPECT_EQ(book.length(s), 2);
  expect_consistent(book, {s});
}

TEST(PagedKvBook, PageTableIsDecodeAttentionsCsrLayout) {
  PagedKvBook book(16, 4, 100);
  const int a = book.create(), b = book.create(), c = book.create();
  book.append(a, 6);
  book.append(b, 8);
  book.append(c, 1);
  book.append(a, 5);  // a: 11 tokens on pages 0, 1, 5
  std::vector<int> s3 = {c, a, b};
  std::vector<int> l3 = {1, 11, 0};
  PageTable t = book.page_table(s3, l3);
  EXPECT_EQ(t.indptr, (std::vector<int32_t>{0, 1, 4, 4}));
  EXPECT_EQ(t.indices, (std::vector<int32_t>{4, 0, 1, 5}));
  EXPECT_EQ(t.last_page_len, (std::vector<int32_t>{1, 3, 0}));
  // A prefix of a sequence: its first pages only; an exactly full last page has length page_size.
  std::vector<int> s2 = {a, b};
  std::vector<int> l2 = {8, 8};
  book.page_table(s2, l2, t);  // reuses t
  EXPECT_EQ(t.indptr, (std::vector<int32_t>{0, 2, 4}));
  EXPECT_EQ(t.indices, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(t.last_page_len, (std::vector<int32_t>{4, 4}));
  // The kernels' own validator agrees.
  decode_attention::Problem p{2, 4, 2, 64, DType::f16, decode_attention::Layout::paged, 4};
  std::vector<int32_t> lens = {8, 8};
  EXPECT_NO_THROW(decode_attention::validate_page_table(p, lens, t.indptr, t.indices, t.last_page_len, 16));
  p.batch = 3;
  t = book.page_table(s3, l3);
  std::vector<int32_t> lens3 = {1, 11, 0};
  EXPECT_NO_THROW(decode_attention::validate_page_table(p, lens3, t.indptr, t.indices, t.last_page_len, 16));

  std::vector<int> bad_len = {12, 0, 0};
  EXPECT_THROW_MSG(book.page_table(s3, bad_len), "PagedKvBook::page_table: lengths[0] = 12: must be in 0..1");
  std::vector<int> twice = {a, b, a};
  std::vector<int> zeros = {0, 0, 0};
  EXPECT_THROW_MSG(book.page_table(twice, zeros), "seqs[2] = 0: appears twice (also seqs[0])");
  std::vector<int> short_lens = {1};
  EXPECT_THROW_MSG(book.page_table(s3, short_lens), "lengths.size() = 1: must equal seqs.size() = 3");
  std::vector<int> ghost = {7};
  EXPECT_THROW_MSG(book.page_table(ghost, short_lens), "seq = 7: no such sequence");
}

// Replays the listed moves on a host pool whose rows hold their token's identity, in the
// listed order (what the CUDA kernel does per column) and as one gather-then-scatter.
TEST(PagedKvBook, KeepMovesOverlappingRowsCorrectly) {
  for (bool in_order : {true, false}) {
    PagedKvBook book(8, 4, 100);
    const int other = book.create();
    const int s = book.create();
    book.append(s, 3);
    book.append(other, 2);  // interleave the pages so rows are not contiguous
    book.append(s, 9);      // s: 12 tokens
    std::vector<int> pool(8 * 4, -1);
    for (int i = 0; i < 12; ++i) pool[book.row(s, i)] = 1000 + i;
    // base 2: keep tokens 3, 4, 7, 9 at 2, 3, 4, 5: token 3 is moved (to 2) and then
    // overwritten (by 4), token 4 moved (to 3) and overwritten (by 7).
    const int base = 2;
    const std::vector<int32_t> offsets = {1, 2, 5, 7};
    std::vector<int64_t> src, dst;
    book.keep(s, base, offsets, src, dst);
    ASSERT_EQ(src.size(), 4u);
    ASSERT_EQ(dst.size(), 4u);
    if (in_order) {
      for (size_t i = 0; i < src.size(); ++i) pool[dst[i]] = pool[src[i]];
    } else {
      std::vector<int> tmp;
      for (int64_t r : src) tmp.push_back(pool[r]);
      for (size_t i = 0; i < dst.size(); ++i) pool[dst[i]] = tmp[i];
    }
    EXPECT_EQ(book.length(s), 6);
    EXPECT_EQ(book.pages(s).size(), 2u);
    const std::vector<int> expect = {1000, 1001, 1003, 1004, 1007, 1009};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(pool[book.row(s, i)], expect[i]) << i << (in_order ? " in order" : " gathered");
    expect_consistent(book, {other, s});
  }
}

TEST(PagedKvBook, KeepListsOnlyRowsThatMove) {
  PagedKvBook book(8, 4, 100);
  const int s = book.create();
  book.append(s, 10);
  std::vector<int64_t> src, dst;
  const std::vector<int32_t> same = {0, 1, 2};
  book.keep(s, 4, same, src, dst);  // the first path of a tree: nothing moves
  EXPECT_TRUE(src.empty() && dst.empty());
  EXPECT_EQ(book.length(s), 7);
  const std::vector<int32_t> partial = {0, 2};
  book.keep(s, 4, partial, src, dst);  // token 6 -> 5
  EXPECT_EQ(src, (std::vector<int64_t>{book.row(s, 4) + 2}));
  EXPECT_EQ(dst, (std::vector<int64_t>{book.row(s, 5)}));
  EXPECT_EQ(book.length(s), 6);
  book.keep(s, 6, {}, src, dst);  // keep nothing after base: length stays base
  EXPECT_EQ(book.length(s), 6);
  book.keep(s, 1, {}, src, dst);  // drop everything after 1
  EXPECT_EQ(book.length(s), 1);
  EXPECT_EQ(book.free_pages(), 7);
}

TEST(PagedKvBook, KeepErrorsNameArgumentAndLeaveBookUnchanged) {
  PagedKvBook book(8, 4, 100);
  const int s = book.create();
  book.append(s, 6);
  std::vector<int64_t> src, dst;
  const std::vector<int32_t> unsorted = {1, 0};
  EXPECT_THROW_MSG(book.keep(s, 0, unsorted, src, dst), "PagedKvBook::keep: offsets[1] = 0: offsets must be strictly increasing");
  const std::vector<int32_t> dup = {2, 2};
  EXPECT_THROW_MSG(book.keep(s, 0, dup, src, dst), "offsets[1] = 2: offsets must be strictly increasing");
  const std::vector<int32_t> past = {0, 4};
  EXPECT_THROW_MSG(book.keep(s, 2, past, src, dst), "offsets[1] = 4: must index a cached token after base (< 4)");
  const std::vector<int32_t> neg = {-1};
  EXPECT_THROW_MSG(book.keep(s, 2, neg, src, dst), "offsets[0] = -1");
  EXPECT_THROW_MSG(book.keep(s, 7, {}, src, dst), "base = 7: must be in 0..6");
  EXPECT_THROW_MSG(book.keep(s, -1, {}, src, dst), "base = -1");
  EXPECT_THROW_MSG(book.keep(9, 0, {}, src, dst), "PagedKvBook::keep: seq = 9: no such sequence");
  EXPECT_TRUE(src.empty() && dst.empty());
  EXPECT_EQ(book.length(s), 6);
  EXPECT_EQ(book.free_pages(), 6);
}

TEST(PagedKvBook, PoolExhaustionAndLimitLeaveStateUnchanged) {
  PagedKvBook book(3, 4, 10);
  const int a = book.create(), b = book.create();
  book.append(a, 8);  // 2 pages
  book.append(b, 2);  // 1 page: pool full
  EXPECT_EQ(book.free_pages(), 0);
  EXPECT_EQ(book.append(b, 2), 2);  // fits in b's page
  EXPECT_THROW_MSG(book.append(b, 1), "PagedKvBook::append: n = 1: the KV cache pool is exhausted: sequence 1 needs 1 more pages");
  EXPECT_EQ(book.length(b), 4);
  EXPECT_EQ(book.pages(b).size(), 1u);
  EXPECT_THROW_MSG(book.append(a, 3), "n = 3: sequence 0 holds 8 tokens; 3 more exceed max_tokens = 10");
  EXPECT_THROW_MSG(book.append(a, -1), "n = -1: must be >= 0");
  EXPECT_EQ(book.length(a), 8);
  expect_consistent(book, {a, b});
  book.truncate(a, 3);  // frees one page: b may grow again
  EXPECT_EQ(book.append(b, 4), 4);
  expect_consistent(book, {a, b});
}

TEST(PagedKvBook, ReleaseReturnsPagesAndIdsAreReused) {
  PagedKvBook book(4, 4, 16);
  const int a = book.create(), b = book.create(), c = book.create();
  book.append(a, 4);
  book.append(b, 8);
  book.append(c, 4);
  EXPECT_EQ(book.free_pages(), 0);
  book.release(b);
  EXPECT_FALSE(book.live(b));
  EXPECT_EQ(book.free_pages(), 2);
  EXPECT_THROW_MSG(book.length(b), "PagedKvBook::length: seq = 1: no such sequence");
  EXPECT_THROW_MSG(book.release(b), "PagedKvBook::release: seq = 1: no such sequence");
  EXPECT_THROW_MSG(book.append(-3, 1), "seq = -3: no such sequence");
  const int d = book.create();
  EXPECT_EQ(d, b);  // lowest released id first
  EXPECT_EQ(book.length(d), 0);
  EXPECT_TRUE(book.pages(d).empty());
  EXPECT_EQ(book.append(d, 8), 0);
  EXPECT_EQ(book.free_pages(), 0);
  EXPECT_EQ(book.create(), 3);
  expect_consistent(book, {a, c, d, 3});
}

TEST(PagedKvBook, RandomOperationsKeepInvariants) {
  std::mt19937 rng(7);
  PagedKvBook book(40, 8, 120);
  std::vector<int> live;
  std::vector<std::vector<int>> content;  // per sequence: identity of the token at each index
  std::vector<int> pool(40 * 8, -1);
  int next_value = 0;
  for (int step = 0; step < 3000; ++step) {
    const int op = rng() % 10;
    if (live.empty() || op == 0) {
      const int s = book.create();
      if (std::find(live.begin(), live.end(), s) == live.end()) live.push_back(s);
      if (s >= static_cast<int>(content.size())) content.resize(s + 1);
      content[s].clear();
      continue;
    }
    const int s = live[rng() % live.size()];
    const int len = book.length(s);
    if (op == 1) {
      book.release(s);
      live.erase(std::find(live.begin(), live.end(), s));
    } else if (op <= 5) {
      const int n = rng() % 20;
      const int free_before = book.free_pages();
      try {
        const int first = book.append(s, n);
        for (int i = first; i < first + n; ++i) {
          pool[book.row(s, i)] = next_value;
          content[s].push_back(next_value++);
        }
      } catch (const Error&) {
        EXPECT_EQ(book.length(s), len);
        EXPECT_EQ(book.free_pages(), free_before);
      }
    } else if (op <= 7) {
      const int new_len = len ? static_cast<int>(rng() % (len + 1)) : 0;
      book.truncate(s, new_len);
      content[s].resize(new_len);
    } else {
      const int base = len ? static_cast<int>(rng() % (len + 1)) : 0;
      std::vector<int32_t> offsets;
      for (int i = 0; i < len - base; ++i)
        if (rng() % 2) offsets.push_back(i);
      std::vector<int64_t> src, dst;
      book.keep(s, base, offsets, src, dst);
      for (size_t i = 0; i < src.size(); ++i) pool[dst[i]] = pool[src[i]];
      std::vector<int> kept(content[s].begin(), content[s].begin() + base);
      for (int32_t o : offsets) kept.push_back(content[s][base + o]);
      content[s] = kept;
    }
    for (int q : live) {
      ASSERT_EQ(book.length(q), static_cast<int>(content[q].size()));
      for (int i = 0; i < book.length(q); ++i) ASSERT_EQ(pool[book.row(q, i)], content[q][i]) << step;
    }
  }
  expect_consistent(book, live);
}

}  // namespace

// Byte-level BPE of one pre-tokenized word (GPT-2 / HF `tokenizers` BPE semantics).
// Each byte starts as the token of its GPT-2 byte image; the adjacent pair with the lowest
// merge rank (leftmost on ties) is merged until no pair has a merge. Symbols form a linked
// list and candidate pairs sit in a min-heap; a popped pair whose symbols changed since it
// was pushed is stale and skipped. O(n log n) per word, so a 10k-byte run of one character
// costs milliseconds, not the O(n^2) of rescanning the word after every merge.
#include <queue>

#include "runtime/tokenizer.h"
#include "runtime/unicode.h"

namespace spw::rt {

namespace {

struct Symbol {
  int32_t id;
  int32_t prev, next;  // indices, -1 at the ends
};

struct Candidate {
  int32_t rank;
  int32_t left;  // index of the left symbol
  int32_t left_id, right_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};

}  // namespace

void Tokenizer::encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    std::string mapped;
    for (char c : word) unicode::append_utf8(mapped, unicode::byte_to_codepoint(uint8_t(c)));
    if (auto id = find_token(mapped)) {
      out.push_back(*id);
      return;
    }
  }
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  for (char c : word) {
    int32_t id = byte_token_[uint8_t(c)];
    if (id < 0) id = data_.unk_id;
    if (id < 0) continue;  // no token for this byte and no <unk>: the byte is dropped
    int32_t i = int32_t(symbols.size());
    symbols.push_back({id, i - 1, -1});
    if (i > 0) symbols[size_t(i - 1)].next = i;
  }
  if (symbols.empty()) return;

  auto lookup = [&](int32_t l, int32_t r) -> const Merge* {
    auto it = merges_.find((uint64_t(uint32_t(l)) << 32) | uint32_t(r));
    return it == merges_.end() ? nullptr : &it->second;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = symbols[size_t(left)].next;
    if (right < 0) return;
    int32_t l = symbols[size_t(left)].id, r = symbols[size_t(right)].id;
    if (const Merge* m = lookup(l, r)) heap.push({m->rank, left, l, r});
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) consider(i);

  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[size_t(c.left)];
    if (left.id != c.left_id || left.next < 0) continue;  // left was merged into (or gone)
    Symbol& right = symbols[size_t(left.next)];
    if (right.id != c.right_id) continue;
    left.id = lookup(c.left_id, c.right_id)->result;
    left.next = right.next;
    if (right.next >= 0) symbols[size_t(right.next)].prev = c.left;
    right.id = -1;  // dead: no candidate can match it again
    consider(left.prev);
    consider(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[size_t(i)].next) out.push_back(symbols[size_t(i)].id);
}

}  // namespace spw::rt

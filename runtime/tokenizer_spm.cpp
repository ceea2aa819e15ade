// SentencePiece-style BPE (llama.cpp's `llama` vocabulary type: Llama-2, TinyLlama).
// The text (spaces already replaced by U+2581) starts as one symbol per UTF-8 character;
// the adjacent pair whose concatenation is a vocabulary token with the highest score
// (leftmost on ties) is merged until no pair is a token. A symbol still not in the
// vocabulary at the end is written as its bytes' <0xXX> tokens (byte fallback), or <unk>.
// Same heap + linked list as tokenizer_bpe.cpp: O(n log n) in the text length.
#include <queue>

#include "runtime/tokenizer.h"
#include "runtime/unicode.h"

namespace spw::rt {

namespace {

struct Piece {
  uint32_t begin, size;  // byte range in the text; size 0 = merged away
  int32_t prev, next;
};

struct Bigram {
  float score;
  int32_t left;
  uint32_t size;  // bytes of left + right when pushed; a mismatch later means stale
  bool operator<(const Bigram& o) const {  // max-heap: higher score, then smaller left
    return score != o.score ? score < o.score : left > o.left;
  }
};

}  // namespace

void Tokenizer::encode_spm(std::string_view text, std::vector<int32_t>& out) const {
  thread_local std::vector<Piece> pieces;
  pieces.clear();
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp;
    int len = unicode::decode_one(text, pos, &cp);
    int32_t i = int32_t(pieces.size());
    pieces.push_back({uint32_t(pos), uint32_t(len), i - 1, -1});
    if (i > 0) pieces[size_t(i - 1)].next = i;
    pos += size_t(len);
  }
  if (pieces.empty()) return;

  std::priority_queue<Bigram> heap;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = pieces[size_t(left)].next;
    if (right < 0) return;
    const Piece& l = pieces[size_t(left)];
    const Piece& r = pieces[size_t(right)];
    auto id = find_token(text.substr(l.begin, l.size + r.size));
    if (!id) return;
    heap.push({data_.scores[size_t(*id)], left, l.size + r.size});
  };
  for (int32_t i = 0; i + 1 < int32_t(pieces.size()); ++i) consider(i);

  while (!heap.empty()) {
    Bigram b = heap.top();
    heap.pop();
    Piece& left = pieces[size_t(b.left)];
    if (left.size == 0 || left.next < 0) continue;
    Piece& right = pieces[size_t(left.next)];
    if (left.size + right.size != b.size) continue;  // one side changed since the push
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) pieces[size_t(right.next)].prev = b.left;
    consider(left.prev);
    consider(b.left);
  }
  for (int32_t i = 0; i >= 0; i = pieces[size_t(i)].next) {
    std::string_view s = text.substr(pieces[size_t(i)].begin, pieces[size_t(i)].size);
    if (auto id = find_token(s)) out.push_back(*id);
    else push_bytes_fallback(s, out);
  }
}

}  // namespace spw::rt

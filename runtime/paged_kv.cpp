// PagedKvBook: page lists per sequence over one shared pool (see paged_kv.h).
#include "runtime/paged_kv.h"

#include <algorithm>

#include "kernels/common/error.h"
#include "runtime/forward_passes.h"

namespace spw::rt {

PagedKvBook::PagedKvBook(int num_pages, int page_size, int max_tokens)
    : num_pages_(num_pages), page_size_(page_size), max_tokens_(max_tokens) {
  constexpr const char* w = "PagedKvBook";
  SPW_CHECK_ARG(num_pages >= 1, w, "num_pages", num_pages, "must be >= 1");
  SPW_CHECK_ARG(page_size >= 1, w, "page_size", page_size, "must be >= 1");
  SPW_CHECK_ARG(max_tokens >= 1, w, "max_tokens_per_sequence", max_tokens, "must be >= 1");
  SPW_CHECK_ARG(static_cast<long long>(num_pages) * page_size < (1LL << 31), w, "num_pages * page_size",
                static_cast<long long>(num_pages) * page_size, "must be < 2^31 (int32 pool rows)");
  free_.resize(num_pages);
  // Page 0 on top of the stack: a fresh pool hands out pages 0, 1, 2, ... in order.
  for (int i = 0; i < num_pages; ++i) free_[i] = num_pages - 1 - i;
}

const PagedKvBook::Seq& PagedKvBook::get(int seq, const char* where) const {
  SPW_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].live,
            "PagedKvBook::{}: seq = {}: no such sequence", where, seq);
  return seqs_[seq];
}
PagedKvBook::Seq& PagedKvBook::get(int seq, const char* where) {
  return const_cast<Seq&>(static_cast<const PagedKvBook*>(this)->get(seq, where));
}

int PagedKvBook::create() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i].live = true;
      seqs_[i].len = 0;
      seqs_[i].pages.clear();
      return static_cast<int>(i);
    }
  seqs_.push_back(Seq{true, 0, {}});
  return static_cast<int>(seqs_.size() - 1);
}

void PagedKvBook::release(int seq) {
  Seq& s = get(seq, "release");
  // Reverse order: the sequence's first page ends on top of the stack.
  for (auto it = s.pages.rbegin(); it != s.pages.rend(); ++it) free_.push_back(*it);
  s = Seq{};
}

bool PagedKvBook::live(int seq) const {
  return seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].live;
}

int PagedKvBook::length(int seq) const { return get(seq, "length").len; }

std::span<const int32_t> PagedKvBook::pages(int seq) const { return get(seq, "pages").pages; }

int PagedKvBook::append(int seq, int n) {
  constexpr const char* w = "PagedKvBook::append";
  Seq& s = get(seq, "append");
  SPW_CHECK_ARG(n >= 0, w, "n", n, "must be >= 0");
  SPW_CHECK_ARG(static_cast<long long>(s.len) + n <= max_tokens_, w, "n", n,
                fmt::format("sequence {} holds {} tokens; {} more exceed max_tokens = {}", seq, s.len, n, max_tokens_));
  const int need = pages_for(s.len + n) - static_cast<int>(s.pages.size());
  SPW_CHECK_ARG(need <= free_pages(), w, "n", n,
                fmt::format("the KV cache pool is exhausted: sequence {} needs {} more pages of {} tokens, {} of {} are "
                            "free (free sequences or raise kv_cache_bytes)",
                            seq, need, page_size_, free_pages(), num_pages_));
  for (int i = 0; i < need; ++i) {
    s.pages.push_back(free_.back());
    free_.pop_back();
  }
  const int first = s.len;
  s.len += n;
  return first;
}

void PagedKvBook::truncate(int seq, int new_len) {
  Seq& s = get(seq, "truncate");
  SPW_CHECK_ARG(new_len >= 0 && new_len <= s.len, "PagedKvBook::truncate", "new_len", new_len,
                fmt::format("must be in 0..{} (tokens held)", s.len));
  const size_t keep = static_cast<size_t>(pages_for(new_len));
  while (s.pages.size() > keep) {
    free_.push_back(s.pages.back());
    s.pages.pop_back();
  }
  s.len = new_len;
}

int64_t PagedKvBook::row(int seq, int index) const {
  const Seq& s = get(seq, "row");
  SPW_CHECK_ARG(index >= 0 && index < s.len, "PagedKvBook::row", "index", index,
                fmt::format("must be in 0..{} (tokens held - 1)", s.len - 1));
  return static_cast<int64_t>(s.pages[index / page_size_]) * page_size_ + index % page_size_;
}

void PagedKvBook::page_table(std::span<const int> seqs, std::span<const int> lengths, PageTable& out) const {
  constexpr const char* w = "PagedKvBook::page_table";
  SPW_CHECK_ARG(lengths.size() == seqs.size(), w, "lengths.size()", lengths.size(),
                fmt::format("must equal seqs.size() = {}", seqs.size()));
  for (size_t i = 0; i < seqs.size(); ++i) {
    const Seq& s = get(seqs[i], "page_table");
    SPW_CHECK_ARG(lengths[i] >= 0 && lengths[i] <= s.len, w, fmt::format("lengths[{}]", i), lengths[i],
                  fmt::format("must be in 0..{} (tokens held by sequence {})", s.len, seqs[i]));
    for (size_t j = 0; j < i; ++j)
      SPW_CHECK_ARG(seqs[j] != seqs[i], w, fmt::format("seqs[{}]", i), seqs[i],
                    fmt::format("appears twice (also seqs[{}])", j));
  }
  out.indptr.assign(1, 0);
  out.indices.clear();
  out.last_page_len.clear();
  for (size_t i = 0; i < seqs.size(); ++i) {
    const Seq& s = seqs_[seqs[i]];
    const int n = pages_for(lengths[i]);
    out.indices.insert(out.indices.end(), s.pages.begin(), s.pages.begin() + n);
    out.indptr.push_back(static_cast<int32_t>(out.indices.size()));
    out.last_page_len.push_back(n == 0 ? 0 : lengths[i] - (n - 1) * page_size_);
  }
}

PageTable PagedKvBook::page_table(std::span<const int> seqs, std::span<const int> lengths) const {
  PageTable t;
  page_table(seqs, lengths, t);
  return t;
}

void PagedKvBook::keep(int seq, int base, std::span<const int32_t> offsets, std::vector<int64_t>& src_rows,
                       std::vector<int64_t>& dst_rows) {
  const Seq& s = get(seq, "keep");
  check_keep_tokens(s.len, base, offsets, "PagedKvBook::keep");
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] == static_cast<int32_t>(i)) continue;
    src_rows.push_back(row(seq, base + offsets[i]));
    dst_rows.push_back(row(seq, base + static_cast<int>(i)));
  }
  truncate(seq, base + static_cast<int>(offsets.size()));
}

}  // namespace spw::rt

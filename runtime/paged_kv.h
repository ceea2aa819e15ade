// Host bookkeeping of a paged KV cache (the CUDA backend's; pure host code, tested on the CPU).
//
// A pool of `num_pages` pages of `page_size` token slots is shared by all sequences. A
// sequence owns an ordered list of pages; its token i lives in page pages[i / page_size] at
// slot i % page_size, i.e. at pool row  pages[i / page_size] * page_size + i % page_size.
// Appending takes free pages as needed, truncation returns the pages it empties, and the page
// table of a batch (CSR: indptr / indices / last_page_len, the layout decode_attention and
// tree_attention read) is built from the lists. No device memory is touched here: the owner
// of the pool copies rows (keep) and reads the tables.
//
// Every failing call throws spw::Error naming the argument and its value and leaves the book
// unchanged (validation happens before any change).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace spw::rt {

/// CSR page table of a batch of sequences, as decode_attention::Args expects.
struct PageTable {
  std::vector<int32_t> indptr;         // [batch + 1], indptr[0] = 0
  std::vector<int32_t> indices;        // [indptr[batch]] page ids
  std::vector<int32_t> last_page_len;  // [batch]; tokens in the last page, 0 for an empty sequence
};

class PagedKvBook {
 public:
  /// Throws spw::Error if num_pages < 1, page_size < 1, max_tokens_per_sequence < 1 or the
  /// pool has 2^31 rows or more (rows are int32 on the device).
  PagedKvBook(int num_pages, int page_size, int max_tokens_per_sequence);

  int page_size() const { return page_size_; }
  int num_pages() const { return num_pages_; }
  int free_pages() const { return static_cast<int>(free_.size()); }
  int max_tokens() const { return max_tokens_; }

  /// A new empty sequence; the lowest id of a released sequence is reused first.
  int create();
  /// Returns the sequence's pages to the pool; throws for an unknown id.
  void release(int seq);
  /// Whether `seq` names a sequence that was created and not released.
  bool live(int seq) const;
  /// Tokens held; throws for an unknown id.
  int length(int seq) const;
  /// Pages the sequence holds (ceil(length / page_size)).
  std::span<const int32_t> pages(int seq) const;

  /// Reserves `n` more tokens (n >= 0) and returns the index of the first. Throws (nothing
  /// changed) if the sequence would exceed max_tokens or the pool has too few free pages.
  int append(int seq, int n);
  /// Keeps the first new_len tokens (0 <= new_len <= length) and frees the emptied pages.
  void truncate(int seq, int new_len);

  /// Pool row of token `index` of `seq` (0 <= index < length).
  int64_t row(int seq, int index) const;
  /// Page table describing the first lengths[i] tokens of seqs[i] (0 <= lengths[i] <= length);
  /// a sequence may not appear twice. Writes into `out`, reusing its capacity.
  void page_table(std::span<const int> seqs, std::span<const int> lengths, PageTable& out) const;
  PageTable page_table(std::span<const int> seqs, std::span<const int> lengths) const;

  /// keep_tokens bookkeeping: of the tokens [base, length), token base + offsets[i] moves to
  /// base + i (0 <= base <= length, offsets strictly increasing, base + offsets[i] < length).
  /// Appends to src_rows / dst_rows the pool rows of every move that changes a row (offsets[i]
  /// != i), in increasing i, then truncates the sequence to base + offsets.size(). The caller
  /// copies the rows before any later write to the pool (a source row may sit in a page the
  /// truncation freed) and either copies all rows at once reading before writing, or in the
  /// listed order: a move's destination token precedes its source token (base + i < base +
  /// offsets[i]) and a token is a source at most once, at an earlier move than the one that
  /// overwrites it, so moving in order never reads a row that was already overwritten.
  void keep(int seq, int base, std::span<const int32_t> offsets, std::vector<int64_t>& src_rows,
            std::vector<int64_t>& dst_rows);

 private:
  struct Seq {
    bool live = false;
    int len = 0;
    std::vector<int32_t> pages;
  };
  const Seq& get(int seq, const char* where) const;
  Seq& get(int seq, const char* where);
  int pages_for(int tokens) const { return (tokens + page_size_ - 1) / page_size_; }

  int num_pages_, page_size_, max_tokens_;
  std::vector<int32_t> free_;  // stack of free page ids (back = next to hand out)
  std::vector<Seq> seqs_;
};

}  // namespace spw::rt

// BigramTable builders, file format and the bigram drafter (see bigram.h).
//
// File layout (little-endian):
//   char magic[8] = "SPWBIGR1"; u32 version = 1; u32 vocab_size; u32 top_k; u32 reserved = 0;
//   u64 tokenizer_hash; u64 payload_checksum (FNV-1a 64 of the payload);
//   payload: vocab_size * top_k * { i32 token, f32 prob }.
#include "decode/bigram.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "decode/sampling.h"
#include "kernels/common/error.h"
#include "runtime/model.h"

namespace spw::decode {

namespace {
constexpr char kMagic[8] = {'S', 'P', 'W', 'B', 'I', 'G', 'R', '1'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 8 + 4 * 4 + 8 + 8;

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// Top-k of a weight vector, most likely first, ties to the lower id.
void top_k_of(std::span<const double> w, double total, int k, std::span<BigramTable::Entry> out) {
  std::vector<int32_t> idx(w.size());
  for (size_t i = 0; i < w.size(); ++i) idx[i] = static_cast<int32_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return w[a] > w[b] || (w[a] == w[b] && a < b);
  });
  for (int j = 0; j < k; ++j) out[j] = {idx[j], static_cast<float>(w[idx[j]] / total)};
}

// Top-k of one row of logits, most likely first, ties to the lower id (the order of its
// softmax, without sorting the vocabulary): one scan keeping the k best in a sorted array; a
// later token enters only if strictly larger, so equal logits keep the lower id.
// out[j].prob = probs[token] (the row's softmax).
void top_k_of_logits(std::span<const float> logits, std::span<const float> probs, int k,
                     std::span<BigramTable::Entry> out) {
  int filled = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (std::isnan(l) || (filled == k && !(l > logits[out[k - 1].token]))) continue;
    int j = filled < k ? filled++ : k - 1;
    for (; j > 0 && l > logits[out[j - 1].token]; --j) out[j] = out[j - 1];
    out[j] = {static_cast<int32_t>(i), 0.f};
  }
  // Fewer than k non-NaN logits: the lowest ids not yet taken.
  for (int32_t id = 0; filled < k; ++id)
    if (std::none_of(out.begin(), out.begin() + filled, [&](const auto& e) { return e.token == id; }))
      out[filled++] = {id, 0.f};
  for (int j = 0; j < k; ++j) out[j].prob = probs[out[j].token];
}
}  // namespace

uint64_t tokenizer_hash(const std::vector<std::string>& token_strings) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& s : token_strings) {
    const uint64_t len = s.size();
    h = fnv1a(&len, sizeof len, h);
    h = fnv1a(s.data(), s.size(), h);
  }
  return h;
}

BigramTable::BigramTable(int vocab_size, int top_k, uint64_t hash)
    : vocab_size_(vocab_size), top_k_(top_k), tokenizer_hash_(hash) {
  SPW_CHECK_ARG(vocab_size > 0, "BigramTable", "vocab_size", vocab_size, "must be > 0");
  SPW_CHECK_ARG(top_k >= 1 && top_k <= vocab_size && top_k <= 64, "BigramTable", "top_k", top_k,
                "must be in [1, min(64, vocab_size)]");
  entries_.assign(static_cast<size_t>(vocab_size) * top_k, Entry{});
}

std::span<const BigramTable::Entry> BigramTable::next(int32_t prev) const {
  SPW_CHECK(vocab_size_ > 0, "BigramTable: empty table");
  if (prev < 0 || prev >= vocab_size_) prev = 0;
  return {entries_.data() + static_cast<size_t>(prev) * top_k_, static_cast<size_t>(top_k_)};
}

std::span<BigramTable::Entry> BigramTable::next_mutable(int32_t prev) {
  SPW_CHECK_ARG(prev >= 0 && prev < vocab_size_, "BigramTable::next_mutable", "token", prev,
                "outside the vocabulary");
  return {entries_.data() + static_cast<size_t>(prev) * top_k_, static_cast<size_t>(top_k_)};
}

BigramTable BigramTable::from_sequences(const std::vector<std::vector<int32_t>>& sequences,
                                        int vocab_size, int top_k, uint64_t hash, double alpha) {
  BigramTable t(vocab_size, top_k, hash);
  SPW_CHECK_ARG(alpha > 0, "BigramTable::from_sequences", "alpha", alpha, "must be > 0");
  std::vector<std::unordered_map<int32_t, int64_t>> pairs(vocab_size);
  std::vector<int64_t> unigram(vocab_size, 0), row_total(vocab_size, 0);
  int64_t n = 0;
  for (const auto& seq : sequences) {
    for (size_t i = 0; i < seq.size(); ++i) {
      const int32_t b = seq[i];
      SPW_CHECK_ARG(b >= 0 && b < vocab_size, "BigramTable::from_sequences", "token", b,
                    "outside the vocabulary");
      ++unigram[b];
      ++n;
      if (i > 0) {
        ++pairs[seq[i - 1]][b];
        ++row_total[seq[i - 1]];
      }
    }
  }
  const double vocab_alpha = alpha * vocab_size;
  std::vector<double> w(vocab_size);
  for (int b = 0; b < vocab_size; ++b) w[b] = unigram[b] + alpha;
  std::vector<Entry> unigram_row(top_k);
  top_k_of(w, n + vocab_alpha, top_k, unigram_row);
  for (int a = 0; a < vocab_size; ++a) {
    auto row = t.next_mutable(a);
    if (row_total[a] == 0) {
      std::copy(unigram_row.begin(), unigram_row.end(), row.begin());
      continue;
    }
    // Only seen pairs can beat the smoothed floor; fill from them, ties to lower id, then
    // unseen tokens (lowest ids) at the floor probability.
    std::vector<std::pair<int64_t, int32_t>> seen;
    for (auto [b, c] : pairs[a]) seen.push_back({c, b});
    std::sort(seen.begin(), seen.end(), [](auto x, auto y) {
      return x.first > y.first || (x.first == y.first && x.second < y.second);
    });
    const double denom = row_total[a] + vocab_alpha;
    int j = 0;
    for (; j < top_k && j < static_cast<int>(seen.size()); ++j)
      row[j] = {seen[j].second, static_cast<float>((seen[j].first + alpha) / denom)};
    for (int32_t b = 0; j < top_k && b < vocab_size; ++b)
      if (!pairs[a].count(b)) row[j++] = {b, static_cast<float>(alpha / denom)};
  }
  return t;
}

BigramTable BigramTable::from_model(rt::Model& model, int32_t bos, int top_k, uint64_t hash,
                                    int batch, const Progress& progress) {
  const int vocab = model.config().vocab_size;
  SPW_CHECK_ARG(batch >= 1, "BigramTable::from_model", "batch", batch, "must be >= 1");
  BigramTable t(vocab, top_k, hash);
  batch = std::min(batch, vocab);
  std::vector<int> seqs(batch);
  for (auto& s : seqs) s = model.create_sequence();
  // BOS is run once per sequence slot and kept in its cache; each round only rolls back to
  // it and feeds the one vocabulary token (half the tokens of feeding [BOS, v] every time).
  const int base = bos >= 0 ? 1 : 0;
  std::vector<int32_t> tokens(static_cast<size_t>(batch));
  std::vector<rt::SeqInput> inputs(batch);
  std::vector<float> logits;
  std::vector<float> probs;
  const auto start = std::chrono::steady_clock::now();
  try {
    if (base) {
      for (int i = 0; i < batch; ++i) inputs[i] = {seqs[i], std::span<const int32_t>(&bos, 1), {}, /*logits_rows=*/0};
      model.forward(inputs, logits);
    }
    for (int v0 = 0; v0 < vocab; v0 += batch) {
      const int nb = std::min(batch, vocab - v0);
      for (int i = 0; i < nb; ++i) {
        model.rollback(seqs[i], base);
        tokens[i] = v0 + i;
        inputs[i] = {seqs[i], std::span<const int32_t>(&tokens[i], 1), {}};
      }
      model.forward(std::span<const rt::SeqInput>(inputs.data(), nb), logits);
      for (int i = 0; i < nb; ++i) {
        const std::span<const float> lg(logits.data() + static_cast<size_t>(i) * vocab, vocab);
        softmax(lg, probs);  // vectorised (decode/sampling.h): ~0.1 ms of a row's time
        top_k_of_logits(lg, probs, top_k, t.next_mutable(v0 + i));
      }
      if (progress) {
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const int64_t done = v0 + nb;
        progress(done, vocab, el / done * (vocab - done));
      }
    }
  } catch (...) {
    for (int s : seqs) model.free_sequence(s);
    throw;
  }
  for (int s : seqs) model.free_sequence(s);
  return t;
}

void BigramTable::save(const std::string& path) const {
  SPW_CHECK(vocab_size_ > 0, "BigramTable::save: empty table");
  std::ofstream f(path, std::ios::binary);
  SPW_CHECK(f.good(), "BigramTable::save: cannot open '{}' for writing", path);
  const uint64_t checksum = fnv1a(entries_.data(), entries_.size() * sizeof(Entry));
  const uint32_t head[4] = {kVersion, static_cast<uint32_t>(vocab_size_),
                            static_cast<uint32_t>(top_k_), 0};
  f.write(kMagic, 8);
  f.write(reinterpret_cast<const char*>(head), sizeof head);
  f.write(reinterpret_cast<const char*>(&tokenizer_hash_), 8);
  f.write(reinterpret_cast<const char*>(&checksum), 8);
  f.write(reinterpret_cast<const char*>(entries_.data()),
          static_cast<std::streamsize>(entries_.size() * sizeof(Entry)));
  SPW_CHECK(f.good(), "BigramTable::save: write to '{}' failed", path);
}

BigramTable BigramTable::load(const std::string& path, int expected_vocab, uint64_t expected_hash) {
  std::ifstream f(path, std::ios::binary);
  SPW_CHECK(f.good(), "bigram file '{}': cannot open", path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  SPW_CHECK(bytes.size() >= 8 && std::memcmp(bytes.data(), kMagic, 7) == 0,
            "bigram file '{}': not a Spillway bigram file (bad magic)", path);
  SPW_CHECK(bytes.size() >= kHeaderBytes, "bigram file '{}': truncated header ({} bytes)", path,
            bytes.size());
  uint32_t head[4];
  uint64_t hash, checksum;
  std::memcpy(head, bytes.data() + 8, sizeof head);
  std::memcpy(&hash, bytes.data() + 24, 8);
  std::memcpy(&checksum, bytes.data() + 32, 8);
  SPW_CHECK(head[0] == kVersion && bytes[7] == kMagic[7],
            "bigram file '{}': version {} not supported (this build reads version {})", path,
            head[0], kVersion);
  const int vocab = static_cast<int>(head[1]), top_k = static_cast<int>(head[2]);
  SPW_CHECK(vocab > 0 && top_k >= 1 && top_k <= 64 && top_k <= vocab,
            "bigram file '{}': corrupted header (vocab_size = {}, top_k = {})", path, vocab, top_k);
  const size_t payload = static_cast<size_t>(vocab) * top_k * sizeof(Entry);
  SPW_CHECK(bytes.size() >= kHeaderBytes + payload,
            "bigram file '{}': truncated: {} bytes, expected {}", path, bytes.size(),
            kHeaderBytes + payload);
  SPW_CHECK(bytes.size() == kHeaderBytes + payload,
            "bigram file '{}': {} trailing bytes after the table", path,
            bytes.size() - kHeaderBytes - payload);
  SPW_CHECK(fnv1a(bytes.data() + kHeaderBytes, payload) == checksum,
            "bigram file '{}': corrupted (payload checksum mismatch)", path);
  SPW_CHECK(expected_vocab < 0 || expected_vocab == vocab,
            "bigram file '{}': vocab_size = {}, but the model has {}", path, vocab, expected_vocab);
  SPW_CHECK(expected_hash == 0 || expected_hash == hash,
            "bigram file '{}': tokenizer hash {:016x} does not match the model's {:016x} (built "
            "for another tokenizer)", path, hash, expected_hash);
  BigramTable t(vocab, top_k, hash);
  std::memcpy(t.entries_.data(), bytes.data() + kHeaderBytes, payload);
  for (const auto& e : t.entries_)
    SPW_CHECK(e.token >= 0 && e.token < vocab && e.prob >= 0.f && e.prob <= 1.f,
              "bigram file '{}': corrupted entry (token {}, prob {})", path, e.token, e.prob);
  return t;
}

NextTokens::NextTokens(std::shared_ptr<const BigramTable> table, bool recycle)
    : table_(std::move(table)), recycle_(recycle) {
  SPW_CHECK(table_ != nullptr && table_->vocab_size() > 0, "NextTokens: no bigram table");
  width_ = table_->top_k();
}

std::span<const BigramTable::Entry> NextTokens::next(int32_t prev) const {
  if (static_cast<uint32_t>(prev) < row_of_.size()) {  // (empty until the first observation)
    const int32_t r = row_of_[static_cast<size_t>(prev)];
    if (r >= 0) return {rows_.data() + size_t(r) * width_, size_t(width_)};
  }
  return table_->next(prev);
}

void NextTokens::observe(int32_t prev, std::span<const TopToken> next) {
  const int vocab = table_->vocab_size();
  if (!recycle_ || next.empty() || prev < 0 || prev >= vocab) return;
  const auto base = table_->next(prev);
  if (row_of_.empty()) row_of_.assign(static_cast<size_t>(vocab), -1);
  int32_t& r = row_of_[static_cast<size_t>(prev)];
  if (r < 0) {
    r = static_cast<int32_t>(rows_.size() / width_);
    rows_.resize(rows_.size() + width_);
  }
  BigramTable::Entry* row = rows_.data() + size_t(r) * width_;
  // The observation first, then the table's candidates it does not list, up to the width.
  int n = 0;
  auto listed = [&](int32_t t) { return std::any_of(row, row + n, [&](const auto& e) { return e.token == t; }); };
  for (const TopToken& t : next)
    if (n < width_ && t.token >= 0 && t.token < vocab && !listed(t.token)) row[n++] = {t.token, t.prob};
  for (const auto& e : base)
    if (n < width_ && !listed(e.token)) row[n++] = e;
  for (; n < width_; ++n) row[n] = {row[0].token, 0.f};  // (a table always has width_ distinct)
}

void NextTokens::clear() {
  std::fill(row_of_.begin(), row_of_.end(), -1);
  rows_.clear();
}

void NextTokens::reserve(size_t tokens) {
  if (!recycle_) return;
  const size_t vocab = static_cast<size_t>(table_->vocab_size());
  if (row_of_.empty()) row_of_.assign(vocab, -1);
  rows_.reserve(std::min(vocab, tokens) * static_cast<size_t>(width_));
}

void bigram_fill(const NextTokens& table, int32_t last, int k, Draft& out, float min_p) {
  double p = 1.0;
  while (static_cast<int>(out.tokens.size()) < k) {
    const BigramTable::Entry& e = table.next(last)[0];
    p *= e.prob;
    if (p < min_p) return;
    last = e.token;
    out.push(last, table.source(), e.prob);
  }
}

namespace {
std::shared_ptr<const BigramTable> checked_table(std::shared_ptr<const BigramTable> table) {
  SPW_CHECK(table != nullptr, "BigramDrafter: no bigram table");
  return table;
}
}  // namespace

BigramDrafter::BigramDrafter(std::shared_ptr<const BigramTable> table, float min_p, bool recycle)
    : next_(checked_table(std::move(table)), recycle), min_p_(min_p) {
  SPW_CHECK_ARG(min_p >= 0.f && min_p <= 1.f, "BigramDrafter", "min_p", min_p, "must be in [0, 1]");
}

void BigramDrafter::propose_into(std::span<const int32_t> context, int k, Draft& out) {
  out.clear();
  if (context.empty() || k <= 0) return;
  bigram_fill(next_, context.back(), k, out, min_p_);
}

void BigramDrafter::propose_tree_into(std::span<const int32_t> context, int k, int width, DraftSet& out) {
  out.clear();
  if (context.empty() || k <= 0) return;
  const auto first = next_.next(context.back());
  for (int j = 0; j < width && j < static_cast<int>(first.size()); ++j) {
    if (std::any_of(first.begin(), first.begin() + j, [&](const auto& e) { return e.token == first[j].token; }))
      continue;  // (an observed row pads with its first token when the table is short)
    Draft& d = out.add();
    d.push(first[j].token, next_.source(), first[j].prob);
    bigram_fill(next_, first[j].token, j == 0 ? k : std::min(k, alternative_length(next_.recycling())), d,
                min_p_);
  }
}

}  // namespace spw::decode

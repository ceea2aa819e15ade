// Validation of a forward batch and its split into passes (see forward_passes.h).
#include "runtime/forward_passes.h"

#include <algorithm>

#include "kernels/common/error.h"

namespace spw::rt {

void check_forward_batch(std::span<const SeqInput> batch, const std::function<int(int)>& cached_tokens, int vocab_size,
                         int max_tokens, const ForwardLimits* tree_limits) {
  constexpr const char* w = "Model::forward";
  SPW_CHECK(!batch.empty(), "Model::forward: batch is empty");
  for (size_t b = 0; b < batch.size(); ++b) {
    const SeqInput& in = batch[b];
    const int len = cached_tokens(in.seq_id);
    for (size_t j = 0; j < b; ++j)
      SPW_CHECK(batch[j].seq_id != in.seq_id, "Model::forward: seq_id {} appears twice in one batch", in.seq_id);
    const int n = static_cast<int>(in.tokens.size());
    SPW_CHECK_ARG(n >= 1, w, fmt::format("batch[{}].tokens.size()", b), n, "must be >= 1");
    SPW_CHECK(static_cast<long long>(len) + n <= max_tokens,
              "Model::forward: sequence {} holds {} tokens; {} more exceed the context limit {}", in.seq_id, len, n,
              max_tokens);
    SPW_CHECK_ARG(in.parents.empty() || static_cast<int>(in.parents.size()) == n, w,
                  fmt::format("batch[{}].parents.size()", b), in.parents.size(), fmt::format("must be 0 or {}", n));
    SPW_CHECK_ARG(in.logits_rows >= -1 && in.logits_rows <= n, w, fmt::format("batch[{}].logits_rows", b),
                  in.logits_rows, fmt::format("must be -1 (all) or in 0..{} (tokens.size())", n));
    for (int i = 0; i < n; ++i) {
      SPW_CHECK_ARG(in.tokens[i] >= 0 && in.tokens[i] < vocab_size, w, fmt::format("batch[{}].tokens[{}]", b, i),
                    in.tokens[i], fmt::format("must be in 0..{}", vocab_size - 1));
      if (!in.parents.empty())
        SPW_CHECK_ARG(in.parents[i] >= -1 && in.parents[i] < i, w, fmt::format("batch[{}].parents[{}]", b, i),
                      in.parents[i], "must be -1 or the index of an earlier token");
    }
    if (tree_limits) {
      const ForwardLimits& lim = *tree_limits;
      const int max_tree = std::min(lim.max_piece_tokens, lim.max_pass_tokens);
      SPW_CHECK_ARG(in.parents.empty() || n <= max_tree, w, fmt::format("batch[{}].parents.size()", b), n,
                    fmt::format("a token tree may have at most {} tokens on this backend (tree attention limit {}, "
                                "max_forward_tokens {})",
                                max_tree, lim.max_piece_tokens, lim.max_pass_tokens));
    }
  }
}

void check_rollback(int cached_tokens, int new_len) {
  SPW_CHECK_ARG(new_len >= 0 && new_len <= cached_tokens, "Model::rollback", "new_len", new_len,
                fmt::format("must be in 0..{} (cached tokens)", cached_tokens));
}

void check_keep_tokens(int cached_tokens, int base, std::span<const int32_t> offsets, const char* w) {
  const int len = cached_tokens;
  SPW_CHECK_ARG(base >= 0 && base <= len, w, "base", base, fmt::format("must be in 0..{}", len));
  for (size_t i = 0; i < offsets.size(); ++i) {
    SPW_CHECK_ARG(offsets[i] >= 0 && static_cast<long long>(base) + offsets[i] < len, w,
                  fmt::format("offsets[{}]", i), offsets[i],
                  fmt::format("must index a cached token after base (< {})", len - base));
    SPW_CHECK_ARG(i == 0 || offsets[i] > offsets[i - 1], w, fmt::format("offsets[{}]", i), offsets[i],
                  "offsets must be strictly increasing");
  }
}

ForwardPasses plan_forward_passes(std::span<const SeqInput> batch, const std::function<int(int)>& cached_tokens,
                                  const ForwardLimits& lim) {
  constexpr const char* w = "Model::forward";
  SPW_CHECK(!batch.empty(), "Model::forward: batch is empty");
  SPW_CHECK_ARG(lim.max_pass_tokens >= 1, w, "max_pass_tokens", lim.max_pass_tokens, "must be >= 1");
  SPW_CHECK_ARG(lim.max_piece_tokens >= 1, w, "max_piece_tokens", lim.max_piece_tokens, "must be >= 1");
  ForwardPasses fp;
  check_forward_batch(batch, cached_tokens, lim.vocab_size, lim.max_tokens, &lim);
  for (const SeqInput& in : batch) fp.cached.push_back(cached_tokens(in.seq_id));
  std::vector<int> out_row(batch.size());  // output row of each entry's first wanted token
  for (size_t b = 0; b < batch.size(); ++b) {
    out_row[b] = fp.total_rows;
    fp.total_tokens += static_cast<int>(batch[b].tokens.size());
    fp.total_rows += wanted_rows(batch[b]);
  }

  std::vector<int> done(batch.size(), 0);
  size_t finished = 0;
  while (finished < batch.size()) {
    std::vector<PassPiece> pass;
    int budget = lim.max_pass_tokens;
    for (size_t b = 0; b < batch.size() && budget > 0; ++b) {
      const int n = static_cast<int>(batch[b].tokens.size());
      if (done[b] == n) continue;
      const bool tree = !batch[b].parents.empty();
      int take = tree ? n : std::min({n - done[b], lim.max_piece_tokens, budget});
      if (take > budget) continue;  // a tree waits for a pass with room for all of it
      PassPiece p;
      p.batch_index = static_cast<int>(b);
      p.seq_id = batch[b].seq_id;
      p.first = done[b];
      p.count = take;
      p.prefix = fp.cached[b] + done[b];
      p.tree = tree;
      // Wanted tokens are the entry's last wanted_rows: [n - wanted, n) meets this piece in
      // [first + out_first, first + out_first + out_count).
      const int want_from = n - wanted_rows(batch[b]);
      const int lo = std::max(done[b], want_from), hi = done[b] + take;
      p.out_first = std::max(0, lo - done[b]);
      p.out_count = std::max(0, hi - lo);
      p.out_row = out_row[b] + std::max(0, lo - want_from);
      pass.push_back(p);
      budget -= take;
      done[b] += take;
      if (done[b] == n) ++finished;
    }
    fp.passes.push_back(std::move(pass));  // never empty: the first unfinished entry always fits
  }
  return fp;
}

void piece_positions(const PassPiece& p, const SeqInput& in, std::vector<int32_t>& positions,
                     std::vector<int32_t>& parents) {
  if (!p.tree) {
    for (int j = 0; j < p.count; ++j) {
      positions.push_back(p.prefix + j);
      parents.push_back(j - 1);
    }
    return;
  }
  const size_t base = positions.size();
  for (int i = 0; i < p.count; ++i) {
    const int par = in.parents[i];
    const int depth = par < 0 ? 0 : positions[base + par] - p.prefix + 1;
    positions.push_back(p.prefix + depth);
    parents.push_back(par);
  }
}

void token_attention_table(std::span<const PassPiece> pass, std::span<const int32_t> parents,
                           const PagedKvBook& book, TokenAttentionTable& out) {
  size_t tokens = 0;
  for (const PassPiece& p : pass) tokens += p.count;
  SPW_CHECK(parents.size() == tokens, "token_attention_table: parents.size() = {}: must equal the pass's tokens ({})",
            parents.size(), tokens);
  bool branching = false;
  tokens = 0;
  for (const PassPiece& p : pass) {
    for (int j = 0; j < p.count; ++j) branching |= parents[tokens + j] != j - 1;
    tokens += p.count;
  }
  const int P = book.page_size();
  out.page_size = branching ? 1 : P;
  out.kv_lens.clear();
  out.table.indices.clear();
  out.table.last_page_len.clear();
  out.extends_previous.clear();
  out.table.indptr.assign(1, 0);
  size_t t = 0;
  for (const PassPiece& p : pass) {
    const std::span<const int32_t> pages = book.pages(p.seq_id);
    // (PagedKvBook::row's arithmetic, without its lookup and checks per row)
    auto row = [&](int i) { return static_cast<int32_t>(int64_t(pages[i / P]) * P + i % P); };
    const size_t piece_rows = out.table.indices.size();
    if (branching) {  // the prefix's rows once; each token copies them, then its path
      for (int i = 0; i < p.prefix; ++i) out.table.indices.push_back(row(i));
    }
    for (int j = 0; j < p.count; ++j, ++t) {
      out.extends_previous.push_back(j > 0 && parents[t] == j - 1);
      if (!branching) {
        const int len = p.prefix + j + 1, n = (len + P - 1) / P;
        out.table.indices.insert(out.table.indices.end(), pages.begin(), pages.begin() + n);
        out.kv_lens.push_back(len);
        out.table.last_page_len.push_back(len - (n - 1) * P);
      } else {
        if (j > 0) {  // (not insert(): its source may not be the vector itself)
          const size_t at = out.table.indices.size();
          out.table.indices.resize(at + p.prefix);
          std::copy_n(out.table.indices.begin() + piece_rows, p.prefix, out.table.indices.begin() + at);
        }
        const size_t path = out.table.indices.size();
        for (int a = j; a >= 0; a = parents[t - j + a]) out.table.indices.push_back(row(p.prefix + a));
        std::reverse(out.table.indices.begin() + path, out.table.indices.end());  // root first
        out.kv_lens.push_back(static_cast<int32_t>(out.table.indices.size() - out.table.indptr.back()));
        out.table.last_page_len.push_back(1);
      }
      out.table.indptr.push_back(static_cast<int32_t>(out.table.indices.size()));
    }
  }
}

}  // namespace spw::rt

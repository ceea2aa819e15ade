// Host side of the Model calls, shared by both backends: the argument checks of forward(),
// rollback() and keep_tokens() (one set of checks and messages), and, for a backend with
// limits per pass (the CUDA backend), the split of a forward batch into passes that fit the
// activation buffers and the attention kernels. Pure host code, tested on the CPU.
//
// A pass holds at most `max_pass_tokens` tokens and each sequence at most once. A chain is cut
// into pieces of at most `max_piece_tokens` tokens (tree_attention's per-request limit); a
// later piece of the same chain goes into a later pass and sees the earlier pieces as cached
// prefix. A token tree (parents given) is never cut: it must fit one piece and one pass.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/model.h"
#include "runtime/paged_kv.h"

namespace spw::rt {

/// One sequence's share of a pass: `count` consecutive new tokens of batch[batch_index],
/// starting at its new token `first`.
struct PassPiece {
  int batch_index = 0;  // index into the forward's batch
  int seq_id = -1;
  int first = 0;        // first of the sequence's new tokens in this piece
  int count = 0;
  int prefix = 0;       // tokens cached before this piece (cached at forward start + first)
  bool tree = false;    // the whole token tree of the sequence (parents given)
  // Output rows: the piece's tokens out_first .. out_first + out_count - 1 (piece-local) are
  // wanted (SeqInput::logits_rows), as output rows out_row, out_row + 1, ...
  int out_first = 0;
  int out_count = 0;
  int out_row = 0;
};

struct ForwardLimits {
  int vocab_size = 0;
  int max_tokens = 0;        // per-sequence cache limit
  int max_pass_tokens = 0;   // tokens per pass (activation buffers)
  int max_piece_tokens = 0;  // tokens per sequence and pass (attention kernel limit)
};

struct ForwardPasses {
  int total_tokens = 0;
  int total_rows = 0;                          // output rows (wanted logits rows)
  std::vector<int> cached;                     // per batch entry: tokens cached before the call
  std::vector<std::vector<PassPiece>> passes;  // in execution order
};

/// Checks a forward batch (allocating nothing unless it throws). `cached_tokens(seq_id)`
/// returns a sequence's cached tokens and throws spw::Error for an unknown id (its message is
/// the caller's). Checks, in order: non-empty batch; per entry: known id, not twice, >= 1 token,
/// cache limit `max_tokens`, parents size, logits_rows in -1..N, token ids in 0..vocab_size-1, parents[i] in -1..i-1,
/// and, with `tree_limits`, a tree of at most min(max_piece_tokens, max_pass_tokens) tokens.
/// Throws spw::Error "Model::forward: <argument> = <value>: <why>".
void check_forward_batch(std::span<const SeqInput> batch, const std::function<int(int)>& cached_tokens, int vocab_size,
                         int max_tokens, const ForwardLimits* tree_limits = nullptr);

/// Model::rollback's check: 0 <= new_len <= cached_tokens.
void check_rollback(int cached_tokens, int new_len);
/// Model::keep_tokens's checks: 0 <= base <= cached_tokens, offsets strictly increasing and
/// indexing cached tokens after base; `where` starts the messages (PagedKvBook::keep passes its name).
void check_keep_tokens(int cached_tokens, int base, std::span<const int32_t> offsets,
                       const char* where = "Model::keep_tokens");

/// Validates `batch` (check_forward_batch with these limits) and splits it into passes. `cached_tokens(seq_id)` returns a sequence's
/// cached tokens and throws spw::Error for an unknown id (its message is the caller's). Checks,
/// in the CPU backend's order: non-empty batch; per entry: known id, not twice, >= 1 token,
/// cache limit, parents size, token ids in range, parents[i] in -1..i-1; then (CUDA limit) a
/// tree of at most min(max_piece_tokens, max_pass_tokens) tokens. Throws spw::Error
/// "Model::forward: <argument> = <value>: <why>".
ForwardPasses plan_forward_passes(std::span<const SeqInput> batch, const std::function<int(int)>& cached_tokens,
                                  const ForwardLimits& limits);

/// Appends the RoPE positions and piece-local parent indices (-1 = child of the piece's prefix)
/// of the piece's tokens: a chain piece gives prefix + j and j - 1; a tree gives cached + depth
/// and the batch's parents.
void piece_positions(const PassPiece& piece, const SeqInput& input, std::vector<int32_t>& positions,
                     std::vector<int32_t>& parents);

/// Attention table of a batch-invariant pass (CudaBackendOptions::batch_invariant): every token
/// of the pass is a decode_attention request of its own over the KV rows it sees, in position
/// order: its sequence's cached prefix, then its ancestors in the piece (in a chain: the piece's
/// earlier tokens), then itself. Its rows, their order and its length are then exactly those of
/// the same token decoded alone, so with fixed KV chunks its attention has the same bits.
/// A pass of chains gets page lists (token j of a piece: the first prefix + j + 1 tokens of its
/// sequence; page_size = the pool's); a pass with a branching tree gets row lists (page_size 1,
/// indices = pool rows). Reuses `out`'s capacity (no allocation in steady state).
struct TokenAttentionTable {
  int page_size = 0;                    // the pool's page size, or 1 (indices are pool rows)
  std::vector<int32_t> kv_lens;         // [tokens of the pass]
  PageTable table;                      // one request per token: its page ids (or rows) in
                                        // position order
  /// [tokens] 1 where a token's list is its predecessor's plus its own row (the token's parent
  /// is the previous token): decode_attention::plan's extends_previous, so that the queries of a
  /// chain share their KV reads.
  std::vector<uint8_t> extends_previous;
};

/// Builds the table of `pass` (its pieces' tokens must be in `book` already). `parents`: the
/// pass's piece-local parents, piece after piece (piece_positions' output).
void token_attention_table(std::span<const PassPiece> pass, std::span<const int32_t> parents,
                           const PagedKvBook& book, TokenAttentionTable& out);

}  // namespace spw::rt

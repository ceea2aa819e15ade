// The one forward-pass interface both backends (CPU, CUDA) implement, and that every
// decoding strategy (plain, speculative, cascade, tree) drives.
//
// A Model owns the KV caches of the sequences it serves. forward() appends N new tokens per
// sequence (a chain, or a token tree given by a parent array) and returns their logits;
// after verification the caller keeps only the accepted tokens with rollback()/keep_tokens(),
// which move at most the N appended entries, never the whole cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/common/top_tokens.h"

namespace spw::rt {

using spw::kMaxTopK;
using spw::TopToken;

/// Llama-family hyper-parameters, read from GGUF metadata.
struct ModelConfig {
  std::string architecture = "llama";  // general.architecture
  std::string name;                    // general.name
  int vocab_size = 0;
  int hidden = 0;                      // embedding length
  int intermediate = 0;                // feed-forward length
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_context = 0;                 // context length the model was trained for
  float rms_eps = 1e-5f;
  float rope_theta = 10000.f;
  // Llama-3 RoPE scaling ("llama3" type); factor 0 = none.
  float rope_scaling_factor = 0.f;
  float rope_low_freq_factor = 1.f;
  float rope_high_freq_factor = 4.f;
  int rope_original_context = 8192;
  bool tied_embeddings = false;        // no output.weight: lm_head = token_embd
  bool attention_bias = false;         // Qwen2-style q/k/v biases
};

/// One sequence's part of a forward call.
struct SeqInput {
  int seq_id = -1;                      // from Model::create_sequence()
  std::span<const int32_t> tokens;      // N >= 1 new tokens, appended after the cached ones
  // Empty: the tokens form a chain (token i sees the cache and tokens 0..i).
  // Otherwise size N, parents[i] < i, -1 = child of the cached prefix: token i sees the cache,
  // its ancestors and itself, and its position is cached_tokens + depth(i).
  std::span<const int32_t> parents;
  // Rows of output wanted: the last `logits_rows` of the N tokens; -1 (default) = all N, 0 =
  // none (e.g. a prompt prefill whose logits nobody reads: the lm_head is skipped for it).
  int logits_rows = -1;
};

/// Rows of output `in` asks for: N for -1, else in.logits_rows.
inline int wanted_rows(const SeqInput& in) {
  return in.logits_rows < 0 ? static_cast<int>(in.tokens.size()) : in.logits_rows;
}

/// The most likely token of one row of logits: the lowest index among equal maxima; a NaN
/// never wins unless it is at index 0 (nothing compares greater than it). The rule of greedy
/// decoding everywhere (decode::argmax, Model::forward_argmax on every backend).
int32_t greedy_token(std::span<const float> logits);

/// A loaded model on one backend, serving any number of sequences.
class Model {
 public:
  virtual ~Model() = default;

  virtual const ModelConfig& config() const = 0;
  /// "cpu" or "cuda".
  virtual std::string backend_name() const = 0;
  /// Bytes of weights the backend holds (in the form its forward reads them: the GGUF
  /// encoding on the CPU, fp16/bf16 on the GPU); 0 if unknown. Benchmarks divide by it.
  virtual size_t weight_bytes() const { return 0; }

  /// Creates an empty sequence (empty KV cache) and returns its id.
  virtual int create_sequence() = 0;
  /// Releases a sequence's KV cache.
  virtual void free_sequence(int seq_id) = 0;
  /// Tokens currently held in the sequence's KV cache.
  virtual int cached_tokens(int seq_id) const = 0;
  /// Largest number of tokens one sequence's cache can hold.
  virtual int max_tokens() const = 0;

  /// Runs one forward pass over the new tokens of every sequence in `batch` and appends
  /// their K/V to the caches. `logits` is resized to [wanted rows, vocab_size], row-major
  /// fp32: each sequence's wanted rows (SeqInput::logits_rows; all its new tokens by default)
  /// in the order of `batch`, then of the sequence's tokens.
  virtual void forward(std::span<const SeqInput> batch, std::vector<float>& logits) = 0;

  /// forward(), returning for each wanted row only its greedy_token (`tokens` resized to the
  /// wanted rows, same order): all that greedy decoding and verification read. The default
  /// runs forward() and reduces the rows on the host; the CUDA backend reduces on the device
  /// and copies 4 bytes per row instead of 4 * vocab_size.
  virtual void forward_argmax(std::span<const SeqInput> batch, std::vector<int32_t>& tokens);

  /// forward(), returning for each wanted row its k (1..kMaxTopK) most likely tokens with their
  /// softmax probabilities: `top` resized to [wanted rows, k], rows in forward()'s order, each
  /// as spw::top_tokens ranks them, so top[r * k].token is the row's greedy_token and a greedy
  /// verifier can read it. For drafters that learn from the target's predictions (decode/
  /// recycle.h). The default runs forward() and ranks on the host; the CUDA backend ranks on
  /// the device and copies 8k bytes per row.
  virtual void forward_topk(std::span<const SeqInput> batch, int k, std::vector<TopToken>& top);

  /// forward(), leaving the logits in memory the model owns instead of a caller's vector: the
  /// same rows, in the same order, with the same values. What sampled decoding reads. On the
  /// CUDA backend that memory is pinned, so the device writes the rows straight into it (into
  /// a pageable vector the driver stages every copy through a pinned buffer of its own, a second
  /// pass over each row); it grows only when a pass wants more rows than any pass before. The
  /// default runs forward() into a vector the model keeps. The view is valid until the next
  /// forward_view() on this model.
  virtual std::span<const float> forward_view(std::span<const SeqInput> batch);

  /// forward_view() and forward_topk() of ONE pass: the wanted rows' logits in memory the model
  /// owns, and their top k in `top`. What sampled decoding with a drafter that learns from the
  /// target reads. The default ranks forward_view()'s rows on the host; the CUDA backend ranks
  /// on the device beside copying the logits.
  virtual std::span<const float> forward_view_topk(std::span<const SeqInput> batch, int k, std::vector<TopToken>& top);

  /// Drops every cached token at position >= new_len (new_len <= cached_tokens).
  virtual void rollback(int seq_id, int new_len) = 0;

  /// Of the cached tokens at indices [base, cached_tokens), keeps those at base + offsets[i]
  /// (offsets strictly increasing), moved to base + i; the cache then holds base +
  /// offsets.size() tokens. Used to keep the accepted root-to-leaf path of a token tree.
  virtual void keep_tokens(int seq_id, int base, std::span<const int32_t> offsets) = 0;

 protected:
  /// Throws unless 1 <= k <= min(vocab_size, kMaxTopK) (forward_topk's and forward_view_topk's k).
  void check_top_k(int k, const char* where) const;

 private:
  std::vector<float> view_rows_;  // forward_view()'s rows (default implementation)
};

}  // namespace spw::rt

// SpeculativeDecoder: the generation loop shared by plain autoregressive decoding and
// speculative decoding with any Drafter (Max-Gram, bigram, model, cascades), chain or tree.
//
// Cache discipline: the last emitted token is "pending" (not yet in the target's KV cache).
// Each step runs ONE target forward over [pending, draft...] for every active sequence of the
// batch (a chain, or a tree given by a parent array with the pending token as root), verifies,
// then keeps the accepted entries with rollback() (chain) or keep_tokens() (tree), and the
// target's correction/bonus token becomes the new pending token. Row 0 of a sequence's logits
// is therefore always the target's prediction after the accepted text.
//
// Limits: a sequence stops at max_new_tokens, at an EOS token (emitted, then stop), or when
// prompt + output reaches the target's max_tokens() (context limit; drafts are shortened so
// the cache never overflows). An empty prompt starts from `bos` when given, otherwise it
// generates nothing (stop = empty_prompt). Nothing throws on these conditions.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "decode/drafter.h"
#include "decode/metrics.h"
#include "decode/sampling.h"

namespace spw::rt {
class Model;
}

namespace spw::decode {

// kMaxDraftTokens (a chain's length, a tree's depth) and kMaxTreeWidth: decode/drafter.h

/// How many tokens a drafter is asked for each step (a chain's length, a tree's depth).
enum class DraftLength {
  fixed,     // always k (fewer only near max_new_tokens / the context limit)
  adaptive,  // per sequence: starts at k; +2 after a step that accepted the whole draft (a
             // tree: a path to its deepest level), -1 (down to 1) after one that did not: cheap
             // 1-2 token drafts while the drafter is wrong, long ones while it is right.
             // Exactness is unaffected (the length only depends on earlier steps).
  cost,      // per sequence: a chain's length (1..k), or the nodes of a tree of depth k, that
             // maximise the expected tokens per unit of target cost, from
             // GenerateParams::pass_costs and the sequence's recent acceptance per position
             // (a tree's: per drafter, sibling rank and depth; decode/draft_length.h).
};

struct GenerateParams {
  int max_new_tokens = 128;
  int k = 4;               // draft length (tree depth); the upper bound when adaptive
  DraftLength draft_length = DraftLength::fixed;
  int tree_width = 1;      // 1: chain drafts; > 1: up to tree_width branches (token tree)
  int max_tree_nodes = 64; // tree size limit per step
  // DraftLength::cost: t(n) of a target pass over n tokens per sequence, n = 1, 2, ... (any
  // unit; linear beyond the last value), e.g. measure_pass_costs() or runtime_step's curve.
  std::vector<double> pass_costs;
  // DraftLength::cost, trees, a drafter with a next-token table (Drafter::next_tokens): grow
  // the drafter's tree best-first from that table before pruning (CostAwareTree::grow).
  bool grow_tree = false;
  SamplingParams sampling; // temperature 0 = greedy; sequence i uses seed + i
  std::vector<int32_t> eos_tokens;
  int32_t bos = -1;        // only used for an empty prompt
  // Called for every emitted token: (index of the sequence in the batch, token).
  std::function<void(int, int32_t)> on_token;
};

/// Median wall time (ms) of target passes over n = 1..max_n new tokens of one scratch sequence
/// after a `context`-token prefix of token `filler` (rolled back after each pass; `reps` passes
/// per n after one warm-up, fewer once kCostBudgetMs of one n have been timed: at least one):
/// the curve for DraftLength::cost on this machine. Every n up to 8
/// and max_n are timed, above 8 only the n that pass_cost_measured() names (10, 12, .., 16,
/// 20, .., 32, 40, .., 64: a tree's curve in a few seconds), linear in between. The sequence
/// is freed before returning.
bool pass_cost_measured(int n, int max_n);
/// Milliseconds of timed passes of one n after which measure_pass_costs stops repeating it.
inline constexpr double kCostBudgetMs = 100;
std::vector<double> measure_pass_costs(rt::Model& target, int max_n, int context = 64, int reps = 5,
                                       int32_t filler = 1);

/// Why a sequence stopped (see Limits above).
enum class StopReason { max_tokens, eos, context_limit, empty_prompt };
/// "max_tokens", "eos", "context_limit" or "empty_prompt" (JSON output, status lines).
const char* stop_reason_name(StopReason r);

/// One sequence's output and the metrics of its run.
struct Generation {
  std::vector<int32_t> tokens;  // generated tokens (prompt excluded)
  StopReason stop = StopReason::max_tokens;
  DecodeStats stats;
};

class SpeculativeDecoder {
 public:
  /// An empty factory gives plain autoregressive decoding through the same loop.
  explicit SpeculativeDecoder(rt::Model& target, DrafterFactory drafter = {});

  /// Decodes one sequence after `prompt` (prefilled in passes of the target's forward limit)
  /// until a stop condition; the drafter (if any) is made by the factory for this sequence.
  /// Greedy (temperature 0): the tokens equal plain greedy decoding's on the same target;
  /// sampled: distributed exactly as the target's. Throws spw::Error naming the field for
  /// invalid params (k, tree_width, max_tree_nodes, max_new_tokens, temperature, top_p;
  /// DraftLength::cost without pass_costs), a prompt token outside the vocabulary, or a
  /// drafter that proposes one.
  Generation generate(std::span<const int32_t> prompt, const GenerateParams& params);
  /// Several sequences, one target forward per step for all of them (each with its own
  /// draft length and acceptance).
  std::vector<Generation> generate_batch(const std::vector<std::vector<int32_t>>& prompts,
                                         const GenerateParams& params);

 private:
  rt::Model& target_;
  DrafterFactory factory_;
};

}  // namespace spw::decode

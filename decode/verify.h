// Exact verification of drafts against the target's logits.
//
// Greedy: accept the longest prefix where draft == target argmax, then append the target's
// own argmax (bonus/correction): the output is bit-identical to plain greedy decoding.
//
// Stochastic (chain): p = target sampling distribution (temperature, top-p), q = drafter's
// distribution (one-hot on the drafted token when the drafter gives none). Draft token x is
// accepted with probability min(1, p(x) / q(x)); on rejection the next token is drawn from the
// residual norm(max(0, p - q)) and the step ends; after full acceptance a bonus token is drawn
// from p at the next position. The emitted tokens are distributed exactly as the target's.
//
// Stochastic (tree): SpecInfer-style sequential sibling verification with one-hot q for every
// node: at a node, its children x_1, x_2, ... (distinct tokens) are tried in order; x_j is
// accepted with probability p_j(x_j) where p_1 = p and p_{j+1} = norm(max(0, p_j - onehot(x_j)))
// (= p with the rejected tokens removed, renormalised). When every child is rejected the token
// is drawn from the last residual. One-hot q makes this exact whatever way the tree was built
// (drafter probabilities are not used in trees).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "decode/sampling.h"

namespace spw::decode {

struct VerifyResult {
  int accepted = 0;            // draft tokens accepted
  int32_t next_token = -1;     // correction or bonus token from the target
  std::vector<int32_t> path;   // tree: accepted node indices, root's child first
};

/// `logits`: rows [n + 1][vocab]; row i is the target after context + draft[:i].
/// `draft_probs`: empty (one-hot q), or the drafter's rows [n][vocab] (Draft::probs).
VerifyResult verify_chain(std::span<const float> logits, int vocab, std::span<const int32_t> draft,
                          std::span<const float> draft_probs, const SamplingParams& params, Rng& rng);

/// `logits`: rows [T + 1][vocab]; row 0 is the target at the root (after the context), row
/// i + 1 after tree node i.
VerifyResult verify_tree(std::span<const float> logits, int vocab, std::span<const int32_t> tokens,
                         std::span<const int32_t> parents, const SamplingParams& params, Rng& rng);
/// The same into `out` (its path's capacity reused: a decoder's result kept between steps).
void verify_tree(std::span<const float> logits, int vocab, std::span<const int32_t> tokens,
                 std::span<const int32_t> parents, const SamplingParams& params, Rng& rng, VerifyResult& out);

/// Greedy verification from the target's greedy tokens alone (Model::forward_argmax), the same
/// result as verify_chain / verify_tree with greedy params on the logits they came from:
/// target[i] is the greedy token of logits row i (n + 1, resp. T + 1 rows).
VerifyResult verify_chain_greedy(std::span<const int32_t> target, std::span<const int32_t> draft);
VerifyResult verify_tree_greedy(std::span<const int32_t> target, std::span<const int32_t> tokens,
                                std::span<const int32_t> parents);
void verify_tree_greedy(std::span<const int32_t> target, std::span<const int32_t> tokens,
                        std::span<const int32_t> parents, VerifyResult& out);
// The stochastic verifiers keep their target-distribution row in a thread-local scratch, so a
// warm decoding thread verifies without allocating.

}  // namespace spw::decode

// Greedy and stochastic chain/tree verification (see verify.h for the rules).
#include "decode/verify.h"

#include <algorithm>

#include "kernels/common/error.h"

namespace spw::decode {

namespace {
std::span<const float> row(std::span<const float> logits, int vocab, size_t i) {
  return logits.subspan(i * vocab, vocab);
}

// Greedy chain: target(i) = the target's greedy token after context + draft[:i].
template <typename Target>
VerifyResult greedy_chain(const Target& target, std::span<const int32_t> draft) {
  VerifyResult r;
  while (static_cast<size_t>(r.accepted) < draft.size() && draft[r.accepted] == target(r.accepted)) ++r.accepted;
  r.next_token = target(r.accepted);
  return r;
}

void check_parents(std::span<const int32_t> parents, const char* where) {
  for (int i = 0; i < static_cast<int>(parents.size()); ++i)
    SPW_CHECK(parents[i] >= -1 && parents[i] < i, "{}: parents[{}] = {}: must be in [-1, {})", where, i,
              parents[i], i);
}

// The target's sampling distribution of one row, reused across calls (no allocation per row).
std::vector<float>& row_scratch() {
  thread_local std::vector<float> p;
  return p;
}

// Greedy tree walk over a checked parent array: target(i) = the target's greedy token at row i
// (0 = root, i + 1 = node i); below each node, its first child (in index order) holding it.
// Children come after their parent, so the scan starts there: no allocation, O(nodes x depth).
template <typename Target>
void greedy_tree(const Target& target, std::span<const int32_t> tokens, std::span<const int32_t> parents,
                 VerifyResult& r) {
  r.accepted = 0;
  r.path.clear();
  const int t = static_cast<int>(tokens.size());
  for (int cur = -1;;) {
    const int32_t a = target(cur + 1);
    int next = -1;
    for (int i = cur + 1; i < t && next < 0; ++i)
      if (parents[i] == cur && tokens[i] == a) next = i;
    if (next < 0) {
      r.next_token = a;
      return;
    }
    r.path.push_back(next);
    ++r.accepted;
    cur = next;
  }
}
}  // namespace

VerifyResult verify_chain_greedy(std::span<const int32_t> target, std::span<const int32_t> draft) {
  SPW_CHECK(target.size() == draft.size() + 1, "verify_chain_greedy: {} target tokens for {} draft tokens (expected {})",
            target.size(), draft.size(), draft.size() + 1);
  return greedy_chain([&](size_t i) { return target[i]; }, draft);
}

VerifyResult verify_tree_greedy(std::span<const int32_t> target, std::span<const int32_t> tokens,
                                std::span<const int32_t> parents) {
  VerifyResult r;
  verify_tree_greedy(target, tokens, parents, r);
  return r;
}

void verify_tree_greedy(std::span<const int32_t> target, std::span<const int32_t> tokens,
                        std::span<const int32_t> parents, VerifyResult& out) {
  SPW_CHECK(parents.size() == tokens.size(), "verify_tree_greedy: {} parents for {} tokens", parents.size(),
            tokens.size());
  SPW_CHECK(target.size() == tokens.size() + 1, "verify_tree_greedy: {} target tokens for {} tree tokens (expected {})",
            target.size(), tokens.size(), tokens.size() + 1);
  check_parents(parents, "verify_tree_greedy");
  greedy_tree([&](size_t i) { return target[i]; }, tokens, parents, out);
}

VerifyResult verify_chain(std::span<const float> logits, int vocab, std::span<const int32_t> draft,
                          std::span<const float> draft_probs, const SamplingParams& params, Rng& rng) {
  const size_t n = draft.size();
  SPW_CHECK(logits.size() == (n + 1) * static_cast<size_t>(vocab),
            "verify_chain: logits has {} values, expected ({} + 1) * {}", logits.size(), n, vocab);
  SPW_CHECK(draft_probs.empty() || draft_probs.size() == n * static_cast<size_t>(vocab),
            "verify_chain: {} draft probabilities for {} draft tokens of a {}-token vocabulary (expected 0 or {})",
            draft_probs.size(), n, vocab, n * static_cast<size_t>(vocab));
  if (params.greedy()) return greedy_chain([&](size_t i) { return argmax(row(logits, vocab, i)); }, draft);
  VerifyResult r;
  std::vector<float>& p = row_scratch();
  for (size_t i = 0; i < n; ++i) {
    sampling_probs(row(logits, vocab, i), params, p);
    const int32_t x = draft[i];
    SPW_CHECK(x >= 0 && x < vocab, "verify_chain: draft token {} outside the vocabulary", x);
    const bool has_q = !draft_probs.empty();
    const std::span<const float> q = has_q ? row(draft_probs, vocab, i) : std::span<const float>();
    const double qx = has_q ? q[x] : 1.0;
    const double accept = qx > 0 ? std::min(1.0, p[x] / qx) : 1.0;
    if (rng.uniform() < accept) {
      ++r.accepted;
      continue;
    }
    if (!params.test_broken_residual) {
      if (has_q) {
        for (int v = 0; v < vocab; ++v) p[v] = std::max(0.f, p[v] - q[v]);
      } else {
        p[x] = 0.f;
      }
    }
    r.next_token = sample(p, rng);
    return r;
  }
  sampling_probs(row(logits, vocab, n), params, p);
  r.next_token = sample(p, rng);
  return r;
}

VerifyResult verify_tree(std::span<const float> logits, int vocab, std::span<const int32_t> tokens,
                         std::span<const int32_t> parents, const SamplingParams& params, Rng& rng) {
  VerifyResult r;
  verify_tree(logits, vocab, tokens, parents, params, rng, r);
  return r;
}

void verify_tree(std::span<const float> logits, int vocab, std::span<const int32_t> tokens,
                 std::span<const int32_t> parents, const SamplingParams& params, Rng& rng, VerifyResult& r) {
  const int t = static_cast<int>(tokens.size());
  SPW_CHECK(static_cast<int>(parents.size()) == t, "verify_tree: {} parents for {} tokens",
            parents.size(), t);
  SPW_CHECK(logits.size() == static_cast<size_t>(t + 1) * vocab,
            "verify_tree: logits has {} values, expected ({} + 1) * {}", logits.size(), t, vocab);
  check_parents(parents, "verify_tree");
  if (params.greedy()) {
    greedy_tree([&](size_t i) { return argmax(row(logits, vocab, i)); }, tokens, parents, r);
    return;
  }
  r.accepted = 0;
  r.path.clear();
  int cur = -1;  // current node (-1 = root)
  std::vector<float>& p = row_scratch();
  while (true) {
    const auto lg = row(logits, vocab, cur + 1);
    int next = -1;
    sampling_probs(lg, params, p);
    double total = positive_sum(p);  // mass left after the rejected children (kept running)
    // its children in index order (they follow their parent: the scan starts there)
    for (int c = cur + 1; c < t; ++c) {
      if (parents[c] != cur) continue;
      const int32_t x = tokens[c];
      if (rng.uniform() * total < p[x]) {
        next = c;
        break;
      }
      if (!params.test_broken_residual) {
        total = std::max(0.0, total - p[x]);
        p[x] = 0.f;
      }
    }
    if (next < 0) {
      r.next_token = sample(p, rng);
      return;
    }
    r.path.push_back(next);
    ++r.accepted;
    cur = next;
  }
}

}  // namespace spw::decode

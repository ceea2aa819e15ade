// The generation loop (see speculative.h).
#include "decode/speculative.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "decode/draft_length.h"
#include "decode/token_tree.h"
#include "decode/verify.h"
#include "kernels/common/error.h"
#include "runtime/model.h"

namespace spw::decode {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct SeqState {
  int index = 0;
  int seq_id = -1;
  std::vector<int32_t> text;  // prompt + generated; text.back() is pending (not cached)
  std::unique_ptr<Drafter> drafter;
  std::string drafter_name;  // drafter->name(), asked once (a cascade's is built each call)
  Rng rng;
  bool done = false;
  Generation gen;
  // This step's draft and its verification: kept between steps, so that a warm step reuses
  // their memory (with a statistical drafter a step allocates nothing).
  std::vector<int32_t> step_tokens, step_parents;
  Draft chain;
  DraftSet drafts;
  TokenTree tree, tree_work;  // (tree_work: grow's and the cost pruning's output, then swapped in)
  std::vector<int32_t> tree_keep;
  VerifyResult vr;
  std::vector<int32_t> emitted, keep_offsets;
  std::vector<char> on_path;
  bool is_tree = false;
  int k_now = 0;  // this sequence's current draft length (DraftLength::adaptive)
  CostAwareLength cost_len{nullptr};  // DraftLength::cost, chains
  CostAwareTree cost_tree{nullptr};   // DraftLength::cost, trees
};

void count(DecodeStats& s, size_t pos, const std::string& src, bool acc) {
  if (s.proposed_at.size() <= pos) {
    s.proposed_at.resize(pos + 1);
    s.accepted_at.resize(pos + 1);
  }
  auto& b = s.by_source[src];
  ++b.first;
  if (acc) ++b.second;
}
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::max_tokens: return "max_tokens";
    case StopReason::eos: return "eos";
    case StopReason::context_limit: return "context_limit";
    case StopReason::empty_prompt: return "empty_prompt";
  }
  return "?";
}

SpeculativeDecoder::SpeculativeDecoder(rt::Model& target, DrafterFactory drafter)
    : target_(target), factory_(std::move(drafter)) {}

Generation SpeculativeDecoder::generate(std::span<const int32_t> prompt, const GenerateParams& params) {
  return std::move(generate_batch({std::vector<int32_t>(prompt.begin(), prompt.end())}, params)[0]);
}

std::vector<Generation> SpeculativeDecoder::generate_batch(const std::vector<std::vector<int32_t>>& prompts,
                                                           const GenerateParams& params) {
  const char* where = "SpeculativeDecoder::generate";
  SPW_CHECK_ARG(params.k >= 0 && params.k <= kMaxDraftTokens, where, "k", params.k, "must be in [0, 64]");
  SPW_CHECK_ARG(params.tree_width >= 1 && params.tree_width <= kMaxTreeWidth, where, "tree_width",
                params.tree_width, "must be in [1, 16]");
  SPW_CHECK_ARG(params.max_tree_nodes >= 1 && params.max_tree_nodes <= kMaxTreeTokens, where,
                "max_tree_nodes", params.max_tree_nodes, "must be in [1, 1024]");
  SPW_CHECK_ARG(params.max_new_tokens >= 0, where, "max_new_tokens", params.max_new_tokens, "must be >= 0");
  SPW_CHECK_ARG(params.sampling.temperature >= 0.f && std::isfinite(params.sampling.temperature), where,
                "sampling.temperature", params.sampling.temperature, "must be a finite number >= 0 (0: greedy)");
  SPW_CHECK_ARG(params.sampling.top_p > 0.f && params.sampling.top_p <= 1.f, where, "sampling.top_p",
                params.sampling.top_p, "must be in (0, 1]");
  const bool by_cost = params.draft_length == DraftLength::cost;
  SPW_CHECK(!by_cost || !params.pass_costs.empty(),
            "{}: draft_length cost needs pass_costs (the target's t(n); measure_pass_costs measures it)", where);
  const PassCostCurve curve = by_cost ? PassCostCurve(params.pass_costs) : PassCostCurve();
  const int vocab = target_.config().vocab_size;
  const int max_tokens = target_.max_tokens();
  const double target_cost = estimate_parameters(target_.config());

  std::vector<SeqState> seqs(prompts.size());
  auto finish = [&](SeqState& s, StopReason why) {
    s.done = true;
    s.gen.stop = why;
  };
  struct Release {  // frees target sequences even when something throws
    rt::Model& m;
    std::vector<SeqState>& seqs;
    ~Release() {
      for (auto& s : seqs)
        if (s.seq_id >= 0) m.free_sequence(s.seq_id);
    }
  } release{target_, seqs};

  // Prefill: one forward over every prompt (all but its last token).
  const auto t_prefill = Clock::now();
  std::vector<rt::SeqInput> inputs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto& s = seqs[i];
    s.index = static_cast<int>(i);
    s.text = prompts[i];
    s.rng = Rng(params.sampling.seed + i);
    s.k_now = params.k;
    s.cost_len = CostAwareLength(&curve);
    s.cost_tree = CostAwareTree(&curve);
    s.gen.stats.target_cost = target_cost;
    // Sized once for what the sequence can reach: its text, output, per-position and per-pass
    // counts then never grow during decoding.
    const size_t most_new = static_cast<size_t>(std::min(params.max_new_tokens, max_tokens));
    s.text.reserve(std::min<size_t>(s.text.size() + most_new + 1, static_cast<size_t>(max_tokens) + 1));
    s.gen.tokens.reserve(most_new);
    s.gen.stats.proposed_at.reserve(kMaxDraftTokens);
    s.gen.stats.accepted_at.reserve(kMaxDraftTokens);
    s.gen.stats.passes_of.reserve(static_cast<size_t>(std::max(params.k, params.max_tree_nodes)) + 2);
    for (int32_t t : s.text)
      SPW_CHECK(t >= 0 && t < vocab, "{}: prompt {} has token {} outside the vocabulary ({})", where, i, t, vocab);
    if (s.text.empty()) {
      if (params.bos < 0) {
        finish(s, StopReason::empty_prompt);
        continue;
      }
      s.text.push_back(params.bos);
    }
    if (static_cast<int>(s.text.size()) >= max_tokens) {
      finish(s, StopReason::context_limit);
      continue;
    }
    if (params.max_new_tokens == 0) {
      finish(s, StopReason::max_tokens);
      continue;
    }
    s.seq_id = target_.create_sequence();
    if (factory_) {
      s.drafter = factory_();
      s.drafter_name = s.drafter->name();
      // what its context (text + a draft) can reach
      s.drafter->reserve(std::min(s.text.capacity() + kMaxDraftTokens, static_cast<size_t>(max_tokens) + kMaxDraftTokens));
      // the step's draft, tree and verification at their largest
      const size_t depth = static_cast<size_t>(params.k), nodes = static_cast<size_t>(params.max_tree_nodes);
      s.chain.reserve(depth);
      if (params.tree_width > 1) {
        s.drafts.reserve(static_cast<size_t>(params.tree_width), depth);
        s.tree.reserve(kMaxTreeTokens);  // (growing for DraftLength::cost ranks up to this many)
        if (by_cost) {
          s.tree_work.reserve(kMaxTreeTokens);
          s.tree_keep.reserve(kMaxTreeTokens);
          s.cost_tree.reserve(kMaxTreeTokens, params.max_tree_nodes, params.k);
        }
        s.on_path.reserve(kMaxTreeTokens);
        s.step_parents.reserve(kMaxTreeTokens + 1);
      }
      s.step_tokens.reserve(std::max(depth, params.tree_width > 1 ? nodes : 0) + 1);
      s.vr.path.reserve(depth);
      s.keep_offsets.reserve(depth + 1);
      s.emitted.reserve(depth + 1);
    }
    if (s.text.size() > 1)
      inputs.push_back({s.seq_id, std::span<const int32_t>(s.text.data(), s.text.size() - 1), {}, /*logits_rows=*/0});
  }
  // Drafters that learn from the target (recycle) see its top tokens of every row it computes,
  // the prompt's included: the prefill then ranks every prompt row instead of skipping its
  // lm_head.
  int topk = 0;
  for (const auto& s : seqs)
    if (s.drafter) topk = std::max(topk, std::min({s.drafter->wants_target_topk(), kMaxTopK, vocab}));
  std::vector<int32_t> target_tokens;
  std::vector<TopToken> top;  // [rows, topk] of the last forward_topk
  if (!inputs.empty() && topk == 0) {
    std::vector<float> none;
    target_.forward(inputs, none);  // no rows wanted: fills the caches
  } else if (!inputs.empty()) {
    for (auto& in : inputs) in.logits_rows = -1;
    target_.forward_topk(inputs, topk, top);
    size_t row = 0;
    for (auto& s : seqs) {
      if (s.seq_id < 0 || s.text.size() < 2) continue;
      for (size_t i = 0; i + 1 < s.text.size(); ++i, ++row)
        s.drafter->observe_target(s.text[i], std::span<const TopToken>(top).subspan(row * topk, topk));
    }
  }
  const double prefill_s = since(t_prefill);
  for (auto& s : seqs) s.gen.stats.prefill_s = prefill_s;

  // Accepted draft tokens that are emitted: those up to and including the first EOS (the
  // sequence ends there, so tokens the target also accepted after it count nowhere).
  auto up_to_eos = [&](std::span<const int32_t> accepted) {
    for (size_t i = 0; i < accepted.size(); ++i)
      if (std::find(params.eos_tokens.begin(), params.eos_tokens.end(), accepted[i]) != params.eos_tokens.end())
        return static_cast<int>(i) + 1;
    return static_cast<int>(accepted.size());
  };
  // The target's top tokens of every row of a step, to the sequence's drafter (topk > 0): the
  // rows of rejected draft tokens first, then the kept ones (the root and the accepted path),
  // whose context is the text that stays, so their observation of a token wins. Recycling the
  // rejected rows too, as Token Recycling does: on the e2e prompts (SmolLM2-135M, CPU backend,
  // maxgram+recycle trees of 16 branches, k 12, alternatives of 2 tokens) 2.78 tokens per pass,
  // against 2.52 from the kept rows alone and 2.45 for maxgram+bigram.
  auto observe_rows = [&](SeqState& s, const std::vector<int>& kept, size_t first_row, size_t n) {
    auto observe = [&](size_t r) {
      s.drafter->observe_target(s.step_tokens[r], std::span<const TopToken>(top).subspan((first_row + r) * topk, topk));
    };
    for (size_t r = 0; r < n; ++r)
      if (std::find(kept.begin(), kept.end(), static_cast<int>(r)) == kept.end()) observe(r);
    for (int r : kept) observe(r);
  };
  // The decoding loop's own vectors at their largest: a step's rows are at most every
  // sequence's pending token and draft (chain or tree).
  const size_t step_rows = std::max(params.k, params.tree_width > 1 ? params.max_tree_nodes : 0) + size_t{1};
  std::vector<SeqState*> active;
  std::vector<int> kept_rows;
  active.reserve(seqs.size());
  inputs.reserve(seqs.size());
  kept_rows.reserve(step_rows);
  target_tokens.reserve(seqs.size() * step_rows);
  if (topk > 0) top.reserve(seqs.size() * step_rows * static_cast<size_t>(topk));
  const auto t_loop = Clock::now();
  while (true) {
    active.clear();
    inputs.clear();
    for (auto& s : seqs) {
      if (s.done) continue;
      const int len = static_cast<int>(s.text.size());
      const int remaining = params.max_new_tokens - static_cast<int>(s.gen.tokens.size());
      const int room = max_tokens - len;
      if (remaining <= 0) finish(s, StopReason::max_tokens);
      else if (room <= 0) finish(s, StopReason::context_limit);
      if (s.done) {
        s.gen.stats.decode_s = since(t_loop);
        continue;
      }
      s.is_tree = params.tree_width > 1;
      // cost: a chain's length is chosen before drafting, a tree is pruned after (depth k)
      const int k = params.draft_length == DraftLength::fixed || (by_cost && s.is_tree) ? params.k
                    : by_cost                                                           ? s.cost_len.choose(params.k)
                                                                                        : s.k_now;
      const int dmax = std::max(0, std::min({k, remaining - 1, room - 1}));
      s.step_tokens.assign(1, s.text.back());
      s.step_parents.clear();
      s.chain.clear();
      s.tree.clear();
      if (s.drafter && dmax > 0) {
        const auto t_draft = Clock::now();
        // a drafter's draft cut to dmax tokens, each named (the drafter where it gave no name)
        // and checked against the vocabulary
        auto take = [&](Draft& d) {
          d.truncate(static_cast<size_t>(dmax));
          d.sources.resize(d.tokens.size(), s.drafter_name);
          for (int32_t t : d.tokens)
            SPW_CHECK(t >= 0 && t < vocab, "{}: drafter '{}' proposed token {} outside the vocabulary ({})",
                      where, s.drafter_name, t, vocab);
        };
        if (!s.is_tree) {
          s.drafter->propose_into(s.text, dmax, s.chain);
          SPW_CHECK(s.chain.probs.empty() || s.chain.probs.size() == s.chain.tokens.size() * static_cast<size_t>(vocab),
                    "{}: drafter '{}' gave {} probabilities for {} tokens (expected 0 or tokens x {}, the vocabulary)",
                    where, s.drafter_name, s.chain.probs.size(), s.chain.tokens.size(), vocab);
          take(s.chain);
          s.step_tokens.insert(s.step_tokens.end(), s.chain.tokens.begin(), s.chain.tokens.end());
        } else {
          auto& drafts = s.drafts;
          s.drafter->propose_tree_into(s.text, dmax, params.tree_width, drafts);
          for (auto& d : drafts) take(d);
          const int max_nodes = std::min(params.max_tree_nodes, room - 1);
          const NextTokens* table = by_cost && params.grow_tree ? s.drafter->next_tokens() : nullptr;
          // growing ranks all of the drafter's nodes, not only the first max_nodes
          build_token_tree(drafts.drafts(), table ? std::min(kMaxTreeTokens, room - 1) : max_nodes, s.tree);
          if (table) {
            s.cost_tree.grow(s.tree, s.text.back(), *table, max_nodes, dmax, s.tree_work);
            std::swap(s.tree, s.tree_work);
          }
          if (by_cost) {
            s.cost_tree.choose(s.tree, s.tree_keep);
            subtree(s.tree, s.tree_keep, s.tree_work);
            std::swap(s.tree, s.tree_work);
          }
          s.step_parents.push_back(-1);
          for (int i = 0; i < s.tree.size(); ++i) {
            s.step_tokens.push_back(s.tree.tokens[i]);
            s.step_parents.push_back(s.tree.parents[i] + 1);
          }
        }
        s.gen.stats.draft_s += since(t_draft);
      }
      active.push_back(&s);
      inputs.push_back({s.seq_id, s.step_tokens,
                        s.step_parents.empty() ? std::span<const int32_t>() : std::span<const int32_t>(s.step_parents)});
    }
    if (active.empty()) break;

    // Greedy verification reads only the target's greedy tokens: forward_argmax (on the CUDA
    // backend 4 bytes per row leave the device instead of a row of logits); sampled
    // verification reads the rows where the model left them (forward_view: pinned memory that
    // the CUDA backend copies into directly).
    const bool greedy = params.sampling.greedy();
    const auto t_fwd = Clock::now();
    std::span<const float> logits;
    if (greedy && topk > 0) {
      target_.forward_topk(inputs, topk, top);
      target_tokens.resize(top.size() / topk);
      for (size_t r = 0; r < target_tokens.size(); ++r) target_tokens[r] = top[r * topk].token;
    } else if (greedy) {
      target_.forward_argmax(inputs, target_tokens);
    } else if (topk > 0) {
      logits = target_.forward_view_topk(inputs, topk, top);
    } else {
      logits = target_.forward_view(inputs);
    }
    const double fwd_s = since(t_fwd);
    size_t row = 0;
    for (SeqState* sp : active) {
      SeqState& s = *sp;
      auto& st = s.gen.stats;
      st.target_s += fwd_s;
      ++st.target_passes;
      const size_t n = s.step_tokens.size();
      if (st.passes_of.size() <= n) st.passes_of.resize(n + 1);
      ++st.passes_of[n];
      std::span<const float> lg = greedy ? std::span<const float>() : std::span<const float>(logits.data() + row * vocab, n * vocab);
      std::span<const int32_t> tg = greedy ? std::span<const int32_t>(target_tokens.data() + row, n) : std::span<const int32_t>();
      const size_t first_row = row;
      row += n;
      const int cached = static_cast<int>(s.text.size()) - 1;  // pending goes at index `cached`
      VerifyResult& vr = s.vr;
      std::vector<int32_t>& emitted = s.emitted;
      kept_rows.clear();  // rows of the step whose text was kept: the root and the accepted path
      if (!s.is_tree || s.tree.size() == 0) {
        const VerifyResult c = greedy ? verify_chain_greedy(tg, s.chain.tokens)
                                      : verify_chain(lg, vocab, s.chain.tokens, s.chain.probs, params.sampling, s.rng);
        vr.accepted = c.accepted;  // (field by field: vr.path keeps its capacity for tree steps)
        vr.next_token = c.next_token;
        vr.path.clear();
        vr.accepted = up_to_eos(std::span<const int32_t>(s.chain.tokens).first(vr.accepted));
        for (size_t i = 0; i < s.chain.tokens.size(); ++i) {
          count(st, i, s.chain.sources[i], static_cast<int>(i) < vr.accepted);
          ++st.proposed_at[i];
          if (static_cast<int>(i) < vr.accepted) ++st.accepted_at[i];
        }
        st.drafted += s.chain.tokens.size();
        if (by_cost) s.cost_len.observe(static_cast<int>(s.chain.tokens.size()), vr.accepted);
        if (!s.chain.tokens.empty())
          s.k_now = vr.accepted == static_cast<int>(s.chain.tokens.size()) ? std::min(params.k, s.k_now + 2)
                                                                            : std::max(1, s.k_now - 1);
        emitted.assign(s.chain.tokens.begin(), s.chain.tokens.begin() + vr.accepted);
        target_.rollback(s.seq_id, cached + 1 + vr.accepted);
        for (int r = 0; r <= vr.accepted; ++r) kept_rows.push_back(r);
      } else {
        const auto tree_tokens = std::span<const int32_t>(s.step_tokens).subspan(1);
        if (greedy) verify_tree_greedy(tg, tree_tokens, s.tree.parents, vr);
        else verify_tree(lg, vocab, tree_tokens, s.tree.parents, params.sampling, s.rng, vr);
        emitted.clear();  // the accepted path's tokens, up to the first EOS
        for (int32_t v : vr.path) emitted.push_back(s.tree.tokens[v]);
        vr.accepted = up_to_eos(emitted);
        emitted.resize(vr.accepted);
        vr.path.resize(vr.accepted);
        auto& on_path = s.on_path;
        on_path.assign(s.tree.size(), 0);
        for (int32_t v : vr.path) on_path[v] = 1;
        int max_depth = -1;
        for (int i = 0; i < s.tree.size(); ++i) {
          count(st, s.tree.depths[i], s.tree.sources[i], on_path[i]);
          max_depth = std::max(max_depth, s.tree.depths[i]);
        }
        for (int d = 0; d <= max_depth; ++d) {
          ++st.proposed_at[d];
          if (d < vr.accepted) ++st.accepted_at[d];
        }
        st.drafted += s.tree.size();
        if (by_cost) s.cost_tree.observe(s.tree, vr.path);
        // adaptive depth, as for chains: deeper after a step that accepted a deepest branch
        s.k_now = vr.accepted == max_depth + 1 ? std::min(params.k, s.k_now + 2) : std::max(1, s.k_now - 1);
        kept_rows.push_back(0);
        for (int32_t v : vr.path) kept_rows.push_back(v + 1);
        kv_keep_offsets(vr.path, s.keep_offsets);
        target_.keep_tokens(s.seq_id, cached, s.keep_offsets);
      }
      st.accepted += vr.accepted;
      if (topk > 0) observe_rows(s, kept_rows, first_row, n);
      emitted.push_back(vr.next_token);
      for (int32_t t : emitted) {
        s.text.push_back(t);
        s.gen.tokens.push_back(t);
        ++st.generated;
        if (params.on_token) params.on_token(s.index, t);
        if (std::find(params.eos_tokens.begin(), params.eos_tokens.end(), t) != params.eos_tokens.end()) {
          finish(s, StopReason::eos);
          st.decode_s = since(t_loop);
          break;
        }
      }
    }
  }
  std::vector<Generation> out;
  for (auto& s : seqs) {
    if (s.drafter) s.drafter->collect_costs(s.gen.stats.drafter_costs);
    out.push_back(std::move(s.gen));
  }
  return out;
}

bool pass_cost_measured(int n, int max_n) {
  if (n <= 8 || n == max_n) return true;
  const int step = n <= 16 ? 2 : n <= 32 ? 4 : 8;  // 10 12 .. 16 20 .. 32 40 .. 64
  return n % step == 0;
}

std::vector<double> measure_pass_costs(rt::Model& target, int max_n, int context, int reps, int32_t filler) {
  const char* where = "measure_pass_costs";
  SPW_CHECK_ARG(max_n >= 1 && max_n <= kMaxDraftTokens + 1, where, "max_n", max_n, "must be in [1, 65]");
  SPW_CHECK_ARG(context >= 0 && context + max_n <= target.max_tokens(), where, "context", context,
                "plus max_n must fit the target's context");
  SPW_CHECK_ARG(reps >= 1, where, "reps", reps, "must be >= 1");
  SPW_CHECK_ARG(filler >= 0 && filler < target.config().vocab_size, where, "filler", filler,
                "must be a token of the vocabulary");
  const int seq = target.create_sequence();
  struct Free {
    rt::Model& m;
    int seq;
    ~Free() { m.free_sequence(seq); }
  } release{target, seq};
  std::vector<float> logits;
  std::vector<int32_t> out;
  const std::vector<int32_t> tokens(static_cast<size_t>(context + max_n), filler);
  if (context > 0) target.forward(std::vector<rt::SeqInput>{{seq, std::span<const int32_t>(tokens.data(), context), {}, 0}}, logits);
  std::vector<double> curve(static_cast<size_t>(max_n), 0.0);
  int last = 0;  // the previous measured n
  for (int n = 1; n <= max_n; ++n) {
    if (!pass_cost_measured(n, max_n)) continue;
    const std::vector<rt::SeqInput> in{{seq, std::span<const int32_t>(tokens.data() + context, n), {}, -1}};
    std::vector<double> ms;
    double timed_ms = 0;
    // The first pass of each n warms up; then up to `reps` timed ones, fewer once a size has
    // been timed for kCostBudgetMs (a slow device's large n: one or two passes suffice).
    for (int r = 0; r <= reps && (r <= 1 || timed_ms < kCostBudgetMs); ++r) {
      const auto t0 = Clock::now();
      target.forward_argmax(in, out);
      if (r > 0) ms.push_back(since(t0) * 1e3), timed_ms += ms.back();
      target.rollback(seq, context);
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    curve[n - 1] = std::max(ms[ms.size() / 2], 1e-6);  // a positive t(n) even off a coarse clock
    for (int m = last + 1; m < n; ++m)  // linear between measured points
      curve[m - 1] = curve[last - 1] + (curve[n - 1] - curve[last - 1]) * (m - last) / (n - last);
    last = n;
  }
  return curve;
}

}  // namespace spw::decode

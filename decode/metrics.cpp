// Metrics (see metrics.h).
#include "decode/metrics.h"

#include <fmt/format.h>

#include "runtime/model.h"

namespace spw::decode {

double standardized_walltime_improvement(int64_t generated, int64_t target_passes, double target_cost,
                                         const std::vector<DraftCost>& drafter_costs) {
  double cost = static_cast<double>(target_passes) * target_cost;
  for (const auto& d : drafter_costs) cost += d.forwards * d.cost_per_forward;
  return cost > 0 ? generated * target_cost / cost : 0;
}

double DecodeStats::swi() const {
  return standardized_walltime_improvement(generated, target_passes, target_cost, drafter_costs);
}

void DecodeStats::merge(const DecodeStats& o) {
  generated += o.generated;
  target_passes += o.target_passes;
  drafted += o.drafted;
  accepted += o.accepted;
  prefill_s += o.prefill_s;
  decode_s += o.decode_s;
  draft_s += o.draft_s;
  target_s += o.target_s;
  if (proposed_at.size() < o.proposed_at.size()) {
    proposed_at.resize(o.proposed_at.size());
    accepted_at.resize(o.proposed_at.size());
  }
  for (size_t i = 0; i < o.proposed_at.size(); ++i) {
    proposed_at[i] += o.proposed_at[i];
    accepted_at[i] += o.accepted_at[i];
  }
  if (passes_of.size() < o.passes_of.size()) passes_of.resize(o.passes_of.size());
  for (size_t n = 0; n < o.passes_of.size(); ++n) passes_of[n] += o.passes_of[n];
  for (const auto& [k, v] : o.by_source) {
    by_source[k].first += v.first;
    by_source[k].second += v.second;
  }
  for (const auto& c : o.drafter_costs) {
    bool found = false;
    for (auto& d : drafter_costs)
      if (d.name == c.name) {
        d.forwards += c.forwards;
        found = true;
      }
    if (!found) drafter_costs.push_back(c);
  }
  if (target_cost == 0) target_cost = o.target_cost;
}

std::string DecodeStats::summary() const {
  std::string s = fmt::format(
      "{} tokens in {:.3f} s ({:.2f} tok/s), {} target passes, {:.2f} tokens/pass, "
      "acceptance {:.1f}% ({}/{}), drafting {:.1f}% of time",
      generated, decode_s, tokens_per_s(), target_passes, tokens_per_pass(),
      100 * acceptance_rate(), accepted, drafted, 100 * draft_time_share());
  if (target_cost > 0) s += fmt::format(", SWI {:.2f}", swi());
  for (const auto& [k, v] : by_source)
    s += fmt::format("\n  {}: {}/{} accepted ({:.1f}%)", k.empty() ? "?" : k, v.second, v.first,
                     v.first ? 100.0 * v.second / v.first : 0.0);
  if (!proposed_at.empty()) {
    s += "\n  by position:";
    for (size_t i = 0; i < proposed_at.size(); ++i)
      s += fmt::format(" {:.0f}%", proposed_at[i] ? 100.0 * accepted_at[i] / proposed_at[i] : 0.0);
  }
  return s;
}

double estimate_parameters(const rt::ModelConfig& c, int layers) {
  const double h = c.hidden, hd = c.head_dim > 0 ? c.head_dim : (c.num_heads ? double(c.hidden) / c.num_heads : 0);
  const double attn = h * hd * c.num_heads * 2 + h * hd * c.num_kv_heads * 2;
  const double mlp = 3.0 * h * c.intermediate;
  const int l = layers > 0 && layers < c.num_layers ? layers : c.num_layers;
  return l * (attn + mlp) + double(c.vocab_size) * h * (c.tied_embeddings ? 1 : 2);
}

}  // namespace spw::decode

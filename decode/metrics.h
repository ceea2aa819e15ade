// Decoding metrics: throughput, target passes, acceptance per position and per drafter,
// drafter time share, and CS Drafting's standardized walltime improvement (SWI).
//
// SWI (Chen et al., "Cascade Speculative Drafting", reference code lfsszd/CS-Drafting main.py
// get_total_time_cost): every neural model m is given a standardized cost per forward call c_m
// (its parameter count, or a measured relative latency); statistical drafters (Max-Gram,
// bigram) cost 0. The cost of a generation is sum_m forwards_m * c_m (target included), and
//   SWI = (generated_tokens * c_target) / (target_passes * c_target + sum_drafters forwards_d * c_d)
// i.e. the standardized cost of autoregressive decoding (one target forward per token) divided
// by that of the speculative run.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "decode/drafter.h"

namespace spw::rt {
struct ModelConfig;
}

namespace spw::decode {

struct DecodeStats {
  int64_t generated = 0;      // tokens emitted
  int64_t target_passes = 0;  // verification/decoding forwards the sequence took part in
  int64_t drafted = 0;        // draft tokens sent to the target
  int64_t accepted = 0;       // draft tokens accepted
  double prefill_s = 0, decode_s = 0, draft_s = 0, target_s = 0;
  std::vector<int64_t> proposed_at, accepted_at;  // per draft position (depth)
  std::vector<int64_t> passes_of;  // passes_of[n]: target passes that carried n tokens (pending + draft)
  std::map<std::string, std::pair<int64_t, int64_t>> by_source;  // proposed, accepted
  std::vector<DraftCost> drafter_costs;
  double target_cost = 0;  // standardized cost of one target forward

  double tokens_per_s() const { return decode_s > 0 ? generated / decode_s : 0; }
  double tokens_per_pass() const { return target_passes ? double(generated) / target_passes : 0; }
  double accepted_per_pass() const { return target_passes ? double(accepted) / target_passes : 0; }
  double acceptance_rate() const { return drafted ? double(accepted) / drafted : 0; }
  double draft_time_share() const { return decode_s > 0 ? draft_s / decode_s : 0; }
  double swi() const;
  void merge(const DecodeStats& other);
  std::string summary() const;
};

double standardized_walltime_improvement(int64_t generated, int64_t target_passes, double target_cost,
                                         const std::vector<DraftCost>& drafter_costs);

/// Approximate parameter count of a Llama-family model with `layers` layers (<= 0: all):
/// the standardized cost used for SWI.
double estimate_parameters(const rt::ModelConfig& config, int layers = 0);

}  // namespace spw::decode

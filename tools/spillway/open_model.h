// Model loading shared by the CLI subcommands that run a model (generate, bigram).
#pragma once

#include <memory>
#include <string>

#include "runtime/model.h"
#include "runtime/model_loader.h"

namespace spw::cli {

/// The default model, fetched by tools/fetch_model.sh.
inline constexpr const char* kDefaultModel = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Loads a GGUF model on a backend ("" = cpu; max_layers <= 0: all layers; batch_invariant:
/// rt::LoadOptions::batch_invariant, for the CUDA backend).
inline std::shared_ptr<rt::Model> open_model(const std::string& path, int max_layers, const std::string& backend,
                                             int context = 2048, bool batch_invariant = false) {
  rt::LoadOptions lo;
  lo.batch_invariant = batch_invariant;
  lo.backend = backend.empty() ? "cpu" : backend;
  lo.max_layers = max_layers > 0 ? max_layers : -1;
  lo.max_tokens = context;
  return rt::load_model(path, lo);
}

}  // namespace spw::cli

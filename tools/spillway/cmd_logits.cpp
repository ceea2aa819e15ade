// `spillway logits --model F ID...`: runs the token ids through the CPU backend and prints the
// last token's logits, one per line (the NumPy reference test compares them).
#include <fmt/format.h>

#include "runtime/model_loader.h"
#include "tools/spillway/cli_args.h"
#include "tools/spillway/command.h"

namespace {

int logits(const std::vector<std::string>& argv) {
  using spw::cli::Args;
  Args a = Args::parse(argv, {"--help"});
  if (a.has("--help") || !a.has("--model") || a.positional.empty()) {
    fmt::print("usage: spillway logits --model FILE [--layers L] TOKEN_ID...\n"
               "Prints the logits after the last token (CPU backend), one per line.\n");
    return a.has("--help") ? 0 : 2;
  }
  a.only({"--model", "--layers"});
  spw::rt::LoadOptions o;
  o.max_layers = a.get_int("--layers", -1);
  auto model = spw::rt::load_model(a.get("--model"), o);
  std::vector<int32_t> ids;
  for (const auto& p : a.positional) {
    size_t used = 0;
    int v = 0;
    try { v = std::stoi(p, &used); } catch (...) { used = 0; }
    SPW_CHECK(used == p.size() && used > 0, "token id '{}' is not an integer", p);
    ids.push_back(v);
  }
  const int seq = model->create_sequence();
  std::vector<float> out;
  spw::rt::SeqInput in{seq, ids, {}};
  model->forward(std::span(&in, 1), out);
  const int vocab = model->config().vocab_size;
  std::string text;
  for (int j = 0; j < vocab; ++j) text += fmt::format("{:.6f}\n", out[out.size() - vocab + j]);
  fmt::print("{}", text);
  return 0;
}

spw::cli::CommandRegistration reg({"logits", "print a model's next-token logits for token ids (CPU backend)", logits});

}  // namespace

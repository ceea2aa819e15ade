// `spillway step --model F`: the cost curve speculative decoding relies on — latency of one
// target forward over k new tokens (k = 1, 2, 4, ..., 64) after a context of C tokens, on the
// CPU backend. Prints one JSON object per (context, k) (bench/runtime_step.py collects them).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "runtime/model_loader.h"
#include "tools/spillway/cli_args.h"
#include "tools/spillway/command.h"

namespace {

std::vector<int> parse_list(const std::string& s, const char* name) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    try {
      out.push_back(std::stoi(item));
    } catch (...) {
      spw::fail("--{} = '{}': expected comma-separated integers", name, s);
    }
    SPW_CHECK(out.back() > 0, "--{}: {} must be > 0", name, out.back());
    start = end + 1;
  }
  return out;
}

int step(const std::vector<std::string>& argv) {
  using spw::cli::Args;
  Args a = Args::parse(argv, {"--help"});
  if (a.has("--help")) {
    fmt::print("usage: spillway step [--model F] [--contexts 128,512] [--ks 1,2,4,8,16,32,64] [--reps 5]\n"
               "Median latency of one forward over k tokens after a context (CPU backend), as JSON lines.\n");
    return 0;
  }
  a.only({"--model", "--contexts", "--ks", "--reps", "--threads"});
  const std::string path = a.get("--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf");
  const auto contexts = parse_list(a.get("--contexts", "128,512"), "contexts");
  const auto ks = parse_list(a.get("--ks", "1,2,4,8,16,32,64"), "ks");
  const int reps = a.get_int("--reps", 5);
  SPW_CHECK(reps >= 1, "--reps = {}: must be >= 1", reps);
  spw::rt::LoadOptions lo;
  lo.threads = a.get_int("--threads", 0);
  auto model = spw::rt::load_model(path, lo);
  const int vocab = model->config().vocab_size;
  std::mt19937 rng(1);
  std::vector<float> logits;
  for (int ctx : contexts) {
    const int seq = model->create_sequence();
    std::vector<int32_t> prompt(ctx);
    for (auto& t : prompt) t = static_cast<int32_t>(rng() % vocab);
    spw::rt::SeqInput pre{seq, prompt, {}};
    model->forward(std::span(&pre, 1), logits);
    for (int k : ks) {
      std::vector<int32_t> draft(k);
      for (auto& t : draft) t = static_cast<int32_t>(rng() % vocab);
      std::vector<double> ms;
      for (int r = 0; r < reps + 1; ++r) {  // the first run warms caches and is dropped
        spw::rt::SeqInput in{seq, draft, {}};
        auto t0 = std::chrono::steady_clock::now();
        model->forward(std::span(&in, 1), logits);
        auto t1 = std::chrono::steady_clock::now();
        model->rollback(seq, ctx);
        if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
      std::sort(ms.begin(), ms.end());
      const double median = ms[ms.size() / 2];
      fmt::print("{{\"context\": {}, \"k\": {}, \"median_ms\": {:.3f}, \"tokens_per_s\": {:.2f}, \"reps\": {}}}\n", ctx, k,
                 median, k / (median / 1000.0), reps);
      std::fflush(stdout);
    }
    model->free_sequence(seq);
  }
  return 0;
}

spw::cli::CommandRegistration reg({"step", "time one target forward over k tokens (CPU cost curve)", step});

}  // namespace

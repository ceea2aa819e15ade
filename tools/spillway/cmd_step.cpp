// `spillway step`: the cost curve speculative decoding relies on — latency of one target
// forward over k new tokens (k = 1, 2, 4, ..., 64) per sequence, for a batch of sequences after
// a context of C tokens each, on the CPU or CUDA backend (or a random-weight Llama-2-7B shape
// on the GPU). Prints one JSON object per (batch, context, k); bench/runtime_step.py collects them.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <chrono>
#include <random>

#include "runtime/cuda_backend.h"
#include "runtime/model_loader.h"
#include "tools/spillway/cli_args.h"
#include "tools/spillway/command.h"

namespace {

std::vector<int> parse_list(const std::string& s, const char* name) {
  std::vector<int> out;
  for (const std::string& item : spw::cli::split_commas(s)) {
    try {
      out.push_back(std::stoi(item));
    } catch (...) {
      spw::fail("--{} = '{}': expected comma-separated integers", name, s);
    }
    SPW_CHECK(out.back() > 0, "--{}: {} must be > 0", name, out.back());
  }
  return out;
}

// B sequences, each prefilled with `ctx` random tokens; one JSON line per k: the median
// latency of a forward of k new tokens for every sequence (rolled back after each run).
// output: logits (forward), argmax (forward_argmax: what greedy verification runs, only the
// greedy tokens come back) or topk (forward_topk with k = kMaxTopK: greedy verification for a
// drafter that recycles the target's predictions).
void time_context(spw::rt::Model& model, int ctx, int batch, const std::vector<int>& ks, int reps, std::mt19937& rng,
                  const std::string& label, const std::string& output, bool invariant) {
  const int vocab = model.config().vocab_size;
  std::vector<int> seqs(batch);
  std::vector<std::vector<int32_t>> prompts(batch, std::vector<int32_t>(ctx));
  std::vector<spw::rt::SeqInput> inputs;
  for (int b = 0; b < batch; ++b) {
    seqs[b] = model.create_sequence();
    for (auto& t : prompts[b]) t = static_cast<int32_t>(rng() % vocab);
    inputs.push_back({seqs[b], prompts[b], {}, /*logits_rows=*/0});
  }
  std::vector<float> logits;
  std::vector<int32_t> tokens;
  std::vector<spw::TopToken> top;
  model.forward(inputs, logits);
  for (int k : ks) {
    std::vector<std::vector<int32_t>> drafts(batch, std::vector<int32_t>(k));
    inputs.clear();
    for (int b = 0; b < batch; ++b) {
      for (auto& t : drafts[b]) t = static_cast<int32_t>(rng() % vocab);
      inputs.push_back({seqs[b], drafts[b], {}});
    }
    std::vector<double> ms;
    for (int r = 0; r < reps + 1; ++r) {  // the first run warms caches and is dropped
      auto t0 = std::chrono::steady_clock::now();
      if (output == "argmax") model.forward_argmax(inputs, tokens);  // returns with the tokens on the host
      else if (output == "topk") model.forward_topk(inputs, spw::kMaxTopK, top);  // the top k on the host
      else model.forward(inputs, logits);                             // the logits on the host
      auto t1 = std::chrono::steady_clock::now();
      for (int s : seqs) model.rollback(s, ctx);
      if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    fmt::print(
        "{{\"model\": \"{}\", \"backend\": \"{}\", \"context\": {}, \"batch\": {}, \"k\": {}, \"median_ms\": {:.3f}, "
        "\"min_ms\": {:.3f}, \"tokens_per_s\": {:.2f}, \"reps\": {}, \"output\": \"{}\", \"weight_bytes\": {}, "
        "\"batch_invariant\": {}}}\n",
        label, model.backend_name(), ctx, batch, k, median, ms.front(), batch * k / (median / 1000.0), reps,
        output, model.weight_bytes(), invariant);
    std::fflush(stdout);
  }
  for (int s : seqs) model.free_sequence(s);
}

int step(const std::vector<std::string>& argv) {
  using spw::cli::Args;
  Args a = Args::parse(argv, {"--help", "--batch-invariant"});
  if (a.has("--help")) {
    fmt::print(
        "usage: spillway step [--model F | --random llama2-7b] [--backend cpu|cuda] [--dtype f16|bf16]\n"
        "                     [--contexts 128,512] [--batch 1] [--ks 1,2,4,8,16,32,64] [--reps 5] [--threads N]\n"
        "                     [--output logits|argmax|topk] [--cuda-graph-tokens 128] [--batch-invariant]\n"
        "Median latency of one forward over k new tokens per sequence, for `batch` sequences after a\n"
        "context of C tokens each, as JSON lines (bench/runtime_step.py collects them).\n"
        "--random llama2-7b: a Llama-2-7B-shaped model with random weights (cuda backend only).\n"
        "--output argmax: time forward_argmax (greedy verification: only the greedy tokens come back);\n"
        "topk: forward_topk, k = 8 (greedy verification for a drafter recycling the target's top 8).\n"
        "--cuda-graph-tokens N: cuda passes of at most N tokens run as CUDA graphs (0: every kernel\n"
        "launched on its own); how the passes ran is printed to stderr at the end.\n"
        "--batch-invariant: the cuda backend's batch-invariant mode (CudaBackendOptions::batch_invariant);\n"
        "the JSON lines say \"batch_invariant\": true.\n");
    return 0;
  }
  a.only({"--model", "--random", "--backend", "--dtype", "--contexts", "--batch", "--ks", "--reps", "--threads", "--output",
          "--cuda-graph-tokens", "--batch-invariant"});
  const std::string output = a.get("--output", "logits");
  SPW_CHECK(output == "logits" || output == "argmax" || output == "topk",
            "--output = '{}': must be logits, argmax or topk", output);
  const auto contexts = parse_list(a.get("--contexts", "128,512"), "contexts");
  const auto batches = parse_list(a.get("--batch", "1"), "batch");
  const auto ks = parse_list(a.get("--ks", "1,2,4,8,16,32,64"), "ks");
  const int reps = a.get_int("--reps", 5);
  SPW_CHECK(reps >= 1, "--reps = {}: must be >= 1", reps);
  const std::string backend = a.get("--backend", "cpu");
  SPW_CHECK(backend == "cpu" || backend == "cuda", "--backend = '{}': must be cpu or cuda", backend);
  const std::string dtype = a.get("--dtype", "f16");
  SPW_CHECK(dtype == "f16" || dtype == "bf16", "--dtype = '{}': must be f16 or bf16", dtype);
  const int graph_tokens = a.get_int("--cuda-graph-tokens", 128);
  SPW_CHECK(graph_tokens >= 0, "--cuda-graph-tokens = {}: must be >= 0 (0: no CUDA graphs)", graph_tokens);
  const bool invariant = a.has("--batch-invariant");
  SPW_CHECK(!invariant || backend == "cuda", "--batch-invariant is a cuda backend mode (the CPU backend always is)");
  int longest = 0;
  for (int c : contexts) longest = std::max(longest, c);
  const int max_k = *std::max_element(ks.begin(), ks.end());

  std::unique_ptr<spw::rt::Model> model;
  std::string label;
  if (a.has("--random")) {
    SPW_CHECK(a.get("--random") == "llama2-7b", "--random = '{}': the only random shape is llama2-7b", a.get("--random"));
    SPW_CHECK(backend == "cuda", "--random needs --backend cuda (no CPU backend for random weights)");
    SPW_CHECK(!a.has("--model"), "--random and --model exclude each other");
    spw::rt::CudaBackendOptions co;
    co.dtype = dtype == "bf16" ? spw::DType::bf16 : spw::DType::f16;
    co.max_tokens = longest + max_k;
    co.cuda_graph_tokens = graph_tokens;
    co.batch_invariant = invariant;
    model = spw::rt::make_cuda_model_random(spw::rt::llama2_7b_config(), 1, co);
    label = "llama2-7b-random";
  } else {
    const std::string path = a.get("--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf");
    spw::rt::LoadOptions lo;
    lo.backend = backend;
    lo.threads = a.get_int("--threads", 0);
    lo.dtype = dtype == "bf16" ? spw::DType::bf16 : spw::DType::f16;
    lo.cuda_graph_tokens = graph_tokens;
    lo.batch_invariant = invariant;
    model = spw::rt::load_model(path, lo);
    label = std::filesystem::path(path).stem().string();
  }
  SPW_CHECK(longest + max_k <= model->max_tokens(), "context {} + k {} exceeds the model's limit {}", longest, max_k,
            model->max_tokens());
  std::mt19937 rng(1);
  for (int batch : batches)
    for (int ctx : contexts) time_context(*model, ctx, batch, ks, reps, rng, label, output, invariant);
  if (model->backend_name() == "cuda") {
    const spw::rt::CudaGraphStats g = spw::rt::cuda_graph_stats(*model);
    fmt::print(stderr, "cuda graphs (tokens <= {}): {} replays, {} captures ({} updates, {} new), {} plain passes{}\n",
               graph_tokens, g.replays, g.captures, g.updates, g.instantiations, g.plain,
               g.disabled.empty() ? "" : "; disabled: " + g.disabled);
  }
  return 0;
}

spw::cli::CommandRegistration reg({"step", "time one target forward over k tokens (cost curve; CPU or CUDA)", step});

}  // namespace

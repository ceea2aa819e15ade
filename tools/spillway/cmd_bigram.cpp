// `spillway bigram build`: builds the bigram table behind Max-Gram (issue 11) for a model,
// from text files tokenized with the model's tokenizer (pair counts, add-alpha smoothing) or
// from the model itself (its next-token distribution after [BOS, v] for every token v,
// batched forwards with a progress line and ETA). Writes MODEL.bigram unless --out is given;
// `spillway generate` picks that file up automatically.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "decode/bigram.h"
#include "kernels/common/error.h"
#include "runtime/model.h"
#include "runtime/model_loader.h"
#include "runtime/tokenizer.h"
#include "tools/spillway/cli_args.h"
#include "tools/spillway/command.h"
#include "tools/spillway/open_model.h"

namespace {

using namespace spw;

using cli::kDefaultModel;
using cli::open_model;

void usage() {
  fmt::print(
      "usage: spillway bigram build [--model FILE.gguf] (--text FILE... | --from-model) [options]\n"
      "  --model FILE     model whose tokenizer (and, with --from-model, weights) to use\n"
      "                   (default {})\n"
      "  --text FILE...   count token pairs in these text files\n"
      "  --from-model     record the model's own next token after each vocabulary token\n"
      "  --out FILE       output (default MODEL.bigram, next to the model)\n"
      "  --top-k K        candidates kept per token (default 16: token trees branch on them;\n"
      "                   chains read the first)\n"
      "  --batch N        sequences per forward with --from-model (default 512)\n"
      "  --no-bos         context [v] instead of [BOS, v] with --from-model\n"
      "  --backend cpu|cuda\n",
      kDefaultModel);
}

int bigram(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    usage();
    return args.empty() ? 2 : 0;
  }
  SPW_CHECK(args[0] == "build", "bigram: unknown subcommand '{}' (expected 'build')", args[0]);
  std::string model = kDefaultModel, out, backend;
  std::vector<std::string> texts;
  bool from_model = false, no_bos = false;
  int top_k = -1, batch = 512;  // -1: the default, 16 (fewer for a vocabulary under 16 tokens)
  auto positive_int = [](const std::string& flag, const std::string& v) {
    const std::optional<int> x = cli::to_int(v);
    SPW_CHECK(x.has_value(), "bigram build: {} = '{}': {}", flag, v, cli::int_problem(v));
    SPW_CHECK(*x >= 1, "bigram build: {} = {}: must be >= 1", flag, *x);
    return *x;
  };
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      SPW_CHECK(i + 1 < args.size(), "bigram build: {} needs a value", a);
      return args[++i];
    };
    if (a == "--help" || a == "-h") { usage(); return 0; }
    else if (a == "--model") model = value();
    else if (a == "--out") out = value();
    else if (a == "--from-model") from_model = true;
    else if (a == "--no-bos") no_bos = true;
    else if (a == "--top-k") top_k = positive_int(a, value());
    else if (a == "--batch") batch = positive_int(a, value());
    else if (a == "--backend") backend = value();
    else if (a == "--text") {
      texts.push_back(value());
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) texts.push_back(args[++i]);
    } else {
      fmt::print(stderr, "spillway bigram build: unknown option '{}'\n", a);
      usage();
      return 2;
    }
  }
  SPW_CHECK(from_model != !texts.empty(), "bigram build: give either --text FILE... or --from-model");
  if (!std::filesystem::exists(model)) {
    fmt::print(stderr, "spillway bigram: model '{}' not found. Get the default model with: tools/fetch_model.sh\n", model);
    return 1;
  }
  if (out.empty()) out = model + ".bigram";
  auto tok = rt::Tokenizer::from_gguf_file(model);
  std::vector<std::string> strings;
  for (int32_t i = 0; i < tok.n_vocab(); ++i) strings.push_back(tok.token_text(i));
  const uint64_t hash = decode::tokenizer_hash(strings);
  if (top_k < 0) top_k = std::min(16, tok.n_vocab());
  const auto t0 = std::chrono::steady_clock::now();
  decode::BigramTable table;
  if (from_model) {
    auto m = open_model(model, 0, backend);
    // BOS even where the tokenizer does not add it (SmolLM2: add_bos = false): a lone token at
    // position 0 is an attention sink whose prediction is nearly constant ('-' after every
    // token on SmolLM2-135M), while after BOS it is the real one-token continuation.
    const int32_t bos = no_bos ? -1 : tok.bos_id();
    fmt::print(stderr, "bigram from model: {} tokens, batch {}, context {}\n", m->config().vocab_size, batch,
               bos >= 0 ? "[BOS, v]" : "[v]");
    table = decode::BigramTable::from_model(*m, bos, top_k, hash, batch, [](int64_t done, int64_t total, double eta) {
      fmt::print(stderr, "\r  {}/{} tokens ({:.0f}%), ETA {:.0f} s   ", done, total, 100.0 * done / total, eta);
      std::fflush(stderr);
    });
    fmt::print(stderr, "\n");
  } else {
    std::vector<std::vector<int32_t>> seqs;
    size_t n = 0;
    for (const auto& f : texts) {
      std::ifstream in(f, std::ios::binary);
      SPW_CHECK(in.good(), "bigram build: cannot open --text '{}'", f);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      seqs.push_back(tok.encode(text, false, false));
      n += seqs.back().size();
    }
    fmt::print(stderr, "bigram from text: {} files, {} tokens\n", texts.size(), n);
    table = decode::BigramTable::from_sequences(seqs, tok.n_vocab(), top_k, hash);
  }
  table.save(out);
  fmt::print("wrote {} ({} tokens, top-{}) in {:.1f} s\n", out, table.vocab_size(), table.top_k(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

cli::CommandRegistration reg({"bigram", "build the bigram table behind Max-Gram drafting", bigram});

}  // namespace

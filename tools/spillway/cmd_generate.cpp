// `spillway generate`: the end-to-end decode demo. Loads a GGUF model, streams generated
// text, shows a live status line (stderr, when it is a terminal) and a summary; --draft picks
// autoregressive decoding, one drafter or a cascade (grammar: decode/README.md); --compare
// runs autoregressive decoding on the same prompt first and prints the speedup.
// --prompts FILE.jsonl + --json OUT run a prompt set without streaming (bench/e2e_decode.py);
// --replay REF.jsonl (a greedy --json output of the same prompts) replaces the target by the
// recorded greedy outputs (decode/replay_model.h): exact tokens per pass, drafters only.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>

#include "decode/bigram.h"
#include "decode/draft_length.h"
#include "decode/drafter_config.h"
#include "decode/json_line.h"
#include "decode/replay_model.h"
#include "decode/speculative.h"
#include "kernels/common/error.h"
#include "runtime/chat_template.h"
#include "runtime/llama_weights.h"
#include "runtime/model.h"
#include "runtime/gguf.h"
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
      "usage: spillway generate [options]\n"
      "  --model FILE.gguf   model (default {})\n"
      "  --prompt TEXT       prompt (default: read stdin)\n"
      "  --chat              wrap the prompt in the model's chat template (default on when the\n"
      "                      model has one; --raw turns it off)\n"
      "  --max-tokens N      tokens to generate (default 128)\n"
      "  --context N         tokens per sequence, prompt and output together (default 2048 or\n"
      "                      the model's trained context if shorter, which is also the most;\n"
      "                      the KV cache grows with it)\n"
      "  --draft SPEC        none | maxgram | maxgram+bigram | bigram | maxgram+recycle |\n"
      "                      recycle | model:PATH | self:L | vcascade(...) | hcascade(...)\n"
      "                      (recycle: the bigram table refreshed by the target's top-8\n"
      "                      predictions as it decodes) (default: maxgram, or maxgram+bigram\n"
      "                      when MODEL.bigram exists; grammar in decode/README.md);\n"
      "                      @FILE reads the spec from FILE (# comments, any layout)\n"
      "  --k N               draft tokens per step (default 6; the maximum unless fixed)\n"
      "  --draft-length L    cost (default: the chain length, or the nodes of a depth-k tree,\n"
      "                      that maximise expected tokens per unit of target time, from the\n"
      "                      target's cost curve t(n), measured at start, and the recent\n"
      "                      acceptance per position; a tree's per drafter and branch rank) |\n"
      "                      adaptive (shorter drafts while they are rejected, longer while\n"
      "                      accepted; the default with --replay and no --cost-curve) |\n"
      "                      fixed (always k)\n"
      "  --cost-curve LIST   t(1),t(2),... for --draft-length cost (any unit; default: measured\n"
      "                      on the target at start, printed)\n"
      "  --tree W            token-tree drafts with up to W branches (default 1 = chain)\n"
      "  --tree-grow         with --tree and --draft-length cost, a drafter with a bigram\n"
      "                      table (recycled or not): grow the tree best-first from the\n"
      "                      table below every node, before the cost pruning\n"
      "  --compare           run autoregressive decoding first and print the speedup\n"
      "  --temperature T     0 = greedy (default 0)\n"
      "  --top-p P           nucleus sampling (default 1)\n"
      "  --seed S            sampling seed (default 0)\n"
      "  --bigram FILE       bigram table (default MODEL.bigram when present)\n"
      "  --backend cpu|cuda  cpu (default; the fp32 reference) or cuda (GPU 0, fp16; not yet run on a GPU)\n"
      "  --batch-invariant   cuda: the target's logits bitwise independent of how many tokens a\n"
      "                      pass carries, so greedy speculative output is exactly the\n"
      "                      autoregressive one (slower kernels; the CPU backend always is)\n"
      "  --prompts FILE      JSONL prompt set: one JSON object per line with string \"id\"\n"
      "                      (unique) and \"prompt\" (blank lines skipped): no streaming\n"
      "  --json OUT          write per-prompt results as JSON lines (with --prompts), the\n"
      "                      generated token ids included\n"
      "  --replay REF        (with --prompts, greedy) answer for the target from REF, the --json\n"
      "                      output of a greedy run of the same prompts (decode/replay_model.h):\n"
      "                      the same steps as with the model, in a fraction of the time;\n"
      "                      tokens/pass and acceptance are exact, tokens/s are drafting only;\n"
      "                      the target's weights are not loaded (its GGUF gives the config)\n",
      kDefaultModel);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += static_cast<char>(c); }
    else if (c == '\n') o += "\\n";
    else if (c < 0x20) o += fmt::format("\\u{:04x}", c);
    else o += static_cast<char>(c);
  }
  return o;
}

uint64_t token_hash(const std::vector<int32_t>& t) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t x : t) {
    h ^= static_cast<uint32_t>(x);
    h *= 0x100000001b3ull;
  }
  return h;
}

struct Options {
  std::string model = kDefaultModel, prompt, draft, bigram, backend, prompts_file, json_out, replay, cost_curve;
  std::string draft_file;  // --draft @FILE: the file the spec came from
  bool draft_length_given = false;
  bool have_prompt = false, compare = false, chat = true, batch_invariant = false;
  int context = 0;  // --context: the target's (and model drafters') tokens per sequence; 0: the default
  decode::GenerateParams gp;
};

struct Run {
  decode::Generation gen;
  double seconds = 0;
};

Run run_one(decode::SpeculativeDecoder& dec, const std::vector<int32_t>& prompt,
            const decode::GenerateParams& gp, const rt::Tokenizer& tok, bool stream, const char* label) {
  decode::GenerateParams p = gp;
  rt::StreamDecoder sd(tok, false);
  const bool tty = isatty(fileno(stderr));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n = 0;
  if (stream) {
    p.on_token = [&](int, int32_t t) {
      ++n;
      std::fputs(sd.push(t).c_str(), stdout);
      std::fflush(stdout);
      if (tty && n % 4 == 0) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        fmt::print(stderr, "\0337\033[999;1H\033[2K[{}] {} tokens  {:.1f} tok/s\0338", label, n, n / s);
        std::fflush(stderr);
      }
    };
  }
  Run r;
  r.gen = dec.generate(prompt, p);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stream) {
    std::fputs(sd.flush().c_str(), stdout);
    std::fputs("\n", stdout);
    if (tty) fmt::print(stderr, "\0337\033[999;1H\033[2K\0338");
    std::fflush(stdout);
  }
  return r;
}

// "t1,t2,...": the target's pass cost for 1, 2, ... tokens (any unit).
std::vector<double> parse_cost_curve(const std::string& list) {
  std::vector<double> out;
  for (const std::string& item : cli::split_commas(list)) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw 0;
    } catch (...) {
      fail("generate: --cost-curve '{}': '{}' is not a number (expected t(1),t(2),...)", list, item);
    }
  }
  decode::PassCostCurve check(out);  // positive and finite, or an error naming the value
  return out;
}

int generate(const std::vector<std::string>& args) {
  Options o;
  bool context_given = false;
  o.gp.max_new_tokens = 128;
  o.gp.k = 6;
  // cost: the best or within 2% of the best draft length in every replay and CPU e2e
  // comparison so far, on the CPU's steep cost curve and on nearly flat ones (decode/README.md)
  o.gp.draft_length = decode::DraftLength::cost;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      SPW_CHECK(i + 1 < args.size(), "generate: {} needs a value", a);
      return args[++i];
    };
    auto number = [&](const char* what) {
      const std::string& v = value();
      try {
        size_t used = 0;
        const double d = std::stod(v, &used);
        if (used != v.size()) throw 0;
        return d;
      } catch (...) {
        fail("generate: {} = '{}': not a number ({})", a, v, what);
      }
    };
    // A whole number in int's range (a count: "2.5" or "1e10" are refused, not truncated).
    auto integer = [&](const char* what) {
      const std::string& v = value();
      const std::optional<int> x = cli::to_int(v);
      SPW_CHECK(x.has_value(), "generate: {} = '{}': {} ({})", a, v, cli::int_problem(v), what);
      return *x;
    };
    if (a == "--help" || a == "-h") { usage(); return 0; }
    else if (a == "--model") o.model = value();
    else if (a == "--prompt") { o.prompt = value(); o.have_prompt = true; }
    else if (a == "--max-tokens") o.gp.max_new_tokens = integer("tokens");
    else if (a == "--draft") {
      const std::string& v = value();
      o.draft_file = !v.empty() && v[0] == '@' ? v.substr(1) : "";
      o.draft = decode::read_drafter_spec(v);  // "@FILE": the spec written in FILE
      SPW_CHECK(!o.draft.empty(), "generate: --draft '{}': an empty spec (none: autoregressive; grammar in "
                "decode/README.md)", v);
    }
    else if (a == "--k") o.gp.k = integer("draft tokens");
    else if (a == "--draft-length") {
      o.draft_length_given = true;
      const std::string& v = value();
      SPW_CHECK(v == "fixed" || v == "adaptive" || v == "cost",
                "generate: --draft-length = '{}': must be fixed, adaptive or cost", v);
      o.gp.draft_length = v == "fixed" ? decode::DraftLength::fixed
                          : v == "cost" ? decode::DraftLength::cost
                                        : decode::DraftLength::adaptive;
    }
    else if (a == "--cost-curve") o.cost_curve = value();
    else if (a == "--tree") o.gp.tree_width = integer("branches");
    else if (a == "--tree-grow") o.gp.grow_tree = true;
    else if (a == "--compare") o.compare = true;
    else if (a == "--temperature") o.gp.sampling.temperature = static_cast<float>(number("temperature"));
    else if (a == "--top-p") o.gp.sampling.top_p = static_cast<float>(number("top-p"));
    else if (a == "--seed") {
      const std::string& v = value();
      size_t used = 0;
      try {
        if (!v.empty() && v[0] != '-') o.gp.sampling.seed = std::stoull(v, &used);
      } catch (...) {
        used = 0;
      }
      SPW_CHECK(used == v.size() && !v.empty(), "generate: --seed = '{}': not an integer in [0, 2^64)", v);
    }
    else if (a == "--bigram") o.bigram = value();
    else if (a == "--backend") o.backend = value();
    else if (a == "--batch-invariant") o.batch_invariant = true;
    else if (a == "--chat") o.chat = true;
    else if (a == "--raw") o.chat = false;
    else if (a == "--prompts") o.prompts_file = value();
    else if (a == "--json") o.json_out = value();
    else if (a == "--replay") o.replay = value();
    else if (a == "--context") o.context = integer("tokens"), context_given = true;
    else {
      fmt::print(stderr, "spillway generate: unknown option '{}'\n", a);
      usage();
      return 2;
    }
  }
  SPW_CHECK_ARG(o.gp.max_new_tokens >= 0, "generate", "--max-tokens", o.gp.max_new_tokens, "must be >= 0");
  SPW_CHECK_ARG(o.gp.k >= 0 && o.gp.k <= decode::kMaxDraftTokens, "generate", "--k", o.gp.k, "must be in [0, 64]");
  SPW_CHECK_ARG(o.gp.tree_width >= 1 && o.gp.tree_width <= decode::kMaxTreeWidth, "generate", "--tree",
                o.gp.tree_width, fmt::format("must be in [1, {}] (1: a chain)", decode::kMaxTreeWidth));
  SPW_CHECK_ARG(o.gp.sampling.temperature >= 0.f && std::isfinite(o.gp.sampling.temperature), "generate",
                "--temperature", o.gp.sampling.temperature, "must be a finite number >= 0 (0: greedy)");
  SPW_CHECK_ARG(o.gp.sampling.top_p > 0.f && o.gp.sampling.top_p <= 1.f, "generate", "--top-p", o.gp.sampling.top_p,
                "must be in (0, 1]");
  SPW_CHECK(o.replay.empty() || (!o.prompts_file.empty() && o.gp.sampling.greedy()),
            "generate: --replay needs --prompts and greedy decoding (--temperature 0)");
  if (!std::filesystem::exists(o.model)) {
    fmt::print(stderr,
               "spillway generate: model '{}' not found.\n"
               "Get the default model with:  tools/fetch_model.sh\n"
               "or pass another GGUF file with --model FILE.gguf\n", o.model);
    return 1;
  }
  const auto t_load = std::chrono::steady_clock::now();
  // The GGUF's metadata, parsed once: the tokenizer and the target's hyper-parameters. --replay
  // answers for the target from recorded outputs: only these are read (no weights loaded; the
  // same context limit).
  std::shared_ptr<rt::Tokenizer> tok;
  rt::ModelConfig target_config;
  {
    const rt::GgufFile gguf = rt::GgufFile::open(o.model);
    tok = std::make_shared<rt::Tokenizer>(rt::Tokenizer::from_gguf(gguf));
    target_config = rt::read_llama_config(gguf);
  }
  if (!context_given) o.context = std::min(2048, target_config.max_context);
  SPW_CHECK_ARG(o.context >= 1 && o.context <= target_config.max_context, "generate", "--context", o.context,
                fmt::format("must be in [1, {}] (the model's trained context)", target_config.max_context));
  std::shared_ptr<rt::Model> target;
  if (o.replay.empty()) target = open_model(o.model, 0, o.backend, o.context, o.batch_invariant);
  const int vocab = target_config.vocab_size;
  std::vector<std::string> strings;
  for (int32_t i = 0; i < tok->n_vocab(); ++i) strings.push_back(tok->token_text(i));
  const uint64_t thash = decode::tokenizer_hash(strings);

  decode::DrafterEnv env;
  env.vocab_size = vocab;
  env.target_path = o.model;
  env.sampling = o.gp.sampling;
  env.load_model = [&](const std::string& path, int layers) { return open_model(path, layers, o.backend, o.context); };
  std::string bigram_path = o.bigram.empty() ? o.model + ".bigram" : o.bigram;
  if (!o.bigram.empty() || std::filesystem::exists(bigram_path))
  {
    auto table = decode::BigramTable::load(bigram_path, -1, thash);
    SPW_CHECK(table.vocab_size() <= vocab, "bigram file '{}': vocab_size = {}, but the model has {}",
              bigram_path, table.vocab_size(), vocab);
    env.bigram = std::make_shared<decode::BigramTable>(std::move(table));
  }
  if (o.draft.empty()) o.draft = env.bigram ? "maxgram+bigram" : "maxgram";
  decode::DrafterFactory factory;
  try {
    factory = decode::make_drafter_factory(o.draft, env);
  } catch (const Error& e) {
    if (o.draft_file.empty()) throw;
    fail("--draft @{}: {}", o.draft_file, e.what());
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  for (int32_t id = 0; id < tok->n_vocab(); ++id)
    if (tok->is_end_of_generation(id)) o.gp.eos_tokens.push_back(id);
  o.gp.bos = tok->bos_id();

  auto encode = [&](const std::string& text) {
    if (o.chat && !tok->chat_template().empty()) {
      const auto tmpl = rt::ChatTemplate::detect(tok->chat_template());
      const std::vector<rt::ChatMessage> msgs{{"user", text}};
      return tok->encode(tmpl.apply(msgs, true), true, true);
    }
    return tok->encode(text, true, false);
  };

  // A prompt that leaves no room in the context generates nothing (stop: context_limit): say why.
  auto warn_if_full = [&](size_t tokens, const std::string& what) {
    if (tokens >= static_cast<size_t>(o.context))
      fmt::print(stderr, "spillway generate: {} has {} tokens, which fill the context of {}: nothing is generated "
                 "(--context N raises it, up to {})\n", what, tokens, o.context, target_config.max_context);
  };

  // --prompts: the prompt set, read and checked before anything runs.
  struct Prompt {
    std::string id, text;
  };
  std::vector<Prompt> prompt_set;
  if (!o.prompts_file.empty()) {
    std::map<std::string, int> line_of;
    for (const auto& l : decode::read_json_lines(o.prompts_file, "--prompts")) {
      Prompt p{decode::json_string(l.value, "id", l.where), decode::json_string(l.value, "prompt", l.where)};
      const auto [it, fresh] = line_of.emplace(p.id, l.line);
      SPW_CHECK(fresh, "{}: id '{}' is line {}'s already (ids name the results)", l.where, p.id, it->second);
      prompt_set.push_back(std::move(p));
    }
    SPW_CHECK(!prompt_set.empty(), "generate: --prompts '{}' holds no prompts", o.prompts_file);
  }

  // --replay: the recorded greedy outputs, keyed by prompt id, become the target.
  std::unique_ptr<decode::ReplayModel> replay;
  std::map<std::string, std::vector<int32_t>> recorded;
  if (!o.replay.empty()) {
    for (const auto& l : decode::read_json_lines(o.replay, "--replay"))
      recorded[decode::json_string(l.value, "id", l.where)] = decode::json_int_array(l.value, "output", l.where);
    SPW_CHECK(!recorded.empty(), "generate: --replay '{}' holds no results", o.replay);
    std::vector<std::vector<int32_t>> refs;
    for (const auto& p : prompt_set) {
      auto it = recorded.find(p.id);
      SPW_CHECK(it != recorded.end(), "generate: --replay '{}' has no output for prompt '{}'", o.replay, p.id);
      refs.push_back(encode(p.text));
      refs.back().insert(refs.back().end(), it->second.begin(), it->second.end());
    }
    replay = std::make_unique<decode::ReplayModel>(target_config, std::move(refs), o.context, o.gp.eos_tokens);
    fmt::print(stderr, "replaying the target from {} ({} outputs): tokens/s below are drafting speed only\n",
               o.replay, recorded.size());
  }
  rt::Model& decoder_target = replay ? static_cast<rt::Model&>(*replay) : *target;
  const auto& tcfg = decoder_target.config();
  if (factory && o.gp.draft_length == decode::DraftLength::cost && replay && o.cost_curve.empty() &&
      !o.draft_length_given) {
    o.gp.draft_length = decode::DraftLength::adaptive;  // the default's fallback: nothing to time
    fmt::print(stderr, "draft length adaptive: --replay has no target to time (--cost-curve gives cost one)\n");
  }
  if (factory && o.gp.draft_length == decode::DraftLength::cost) {
    // The target's t(n): given (reproducible; --replay has no target to time), else measured here.
    if (!o.cost_curve.empty()) {
      o.gp.pass_costs = parse_cost_curve(o.cost_curve);
    } else {
      SPW_CHECK(!replay, "generate: --replay with --draft-length cost needs --cost-curve (no target to time)");
      // a chain: the pending token + up to k drafts; a tree: + up to max_tree_nodes nodes; no
      // pass carries more than the context holds (beyond the curve's end t(n) is extrapolated)
      const int max_n = std::min({decode::kMaxDraftTokens + 1, target->max_tokens(),
                                  1 + (o.gp.tree_width > 1 ? o.gp.max_tree_nodes : o.gp.k)});
      const int context = std::max(0, std::min(64, target->max_tokens() - max_n));
      o.gp.pass_costs = decode::measure_pass_costs(*target, max_n, context);
    }
    std::vector<double> rel;
    for (double t : o.gp.pass_costs) rel.push_back(t / o.gp.pass_costs[0]);
    fmt::print(stderr, "draft length by cost, t(n)/t(1) for n = 1..{}: {:.2f}\n", rel.size(), fmt::join(rel, " "));
  } else {
    SPW_CHECK(o.cost_curve.empty(), "generate: --cost-curve is for --draft-length cost with a drafter");
    // plain decoding drafts nothing: no cost curve to measure (the decoder needs one for cost)
    if (!factory) o.gp.draft_length = decode::DraftLength::adaptive;
  }
  if (o.gp.grow_tree) {
    SPW_CHECK(factory && o.gp.tree_width > 1 && o.gp.draft_length == decode::DraftLength::cost,
              "generate: --tree-grow needs a drafter, --tree W > 1 and --draft-length cost");
    SPW_CHECK(factory()->next_tokens() != nullptr,
              "generate: --tree-grow: drafter '{}' has no bigram table to grow trees from (maxgram+bigram, "
              "maxgram+recycle, bigram and recycle have one)", o.draft);
  }
  decode::SpeculativeDecoder ar(decoder_target), spec(decoder_target, factory);
  const bool greedy = o.gp.sampling.greedy();
  fmt::print(stderr, "model {} ({} backend, {} layers, vocab {}), loaded in {:.1f} s; draft: {}{}\n",
             o.model, decoder_target.backend_name(), tcfg.num_layers, vocab, load_s,
             factory ? o.draft : "none (autoregressive)", env.bigram ? fmt::format(", bigram {}", bigram_path) : "");

  if (!o.prompts_file.empty()) {
    std::unique_ptr<std::ofstream> out;
    if (!o.json_out.empty()) {
      out = std::make_unique<std::ofstream>(o.json_out);
      SPW_CHECK(out->good(), "generate: cannot write --json '{}'", o.json_out);
    }
    decode::DecodeStats total_ar, total_spec;
    for (const auto& p : prompt_set) {
      const std::string& id = p.id;
      const auto prompt = encode(p.text);
      warn_if_full(prompt.size(), fmt::format("prompt '{}'", id));
      Run a;
      if (o.compare) a = run_one(ar, prompt, o.gp, *tok, false, "ar");
      Run s = run_one(spec, prompt, o.gp, *tok, false, "spec");
      const bool same = !o.compare || !greedy || a.gen.tokens == s.gen.tokens;
      if (o.compare) total_ar.merge(a.gen.stats);
      total_spec.merge(s.gen.stats);
      const auto& st = s.gen.stats;
      fmt::print(stderr, "{:<10} {:4} tokens  {:7.2f} tok/s  {:.2f} accepted/pass{}{}\n", id, st.generated,
                 st.tokens_per_s(), st.accepted_per_pass(),
                 o.compare ? fmt::format("  speedup {:.2f}x", st.tokens_per_s() / std::max(1e-9, a.gen.stats.tokens_per_s())) : "",
                 same ? "" : "  OUTPUT DIFFERS");
      if (out) {
        *out << fmt::format(
            "{{\"id\": \"{}\", \"draft\": \"{}\", \"tokens\": {}, \"tokens_per_s\": {:.4f}, "
            "\"ar_tokens_per_s\": {:.4f}, \"target_passes\": {}, \"accepted_per_step\": {:.4f}, "
            "\"acceptance\": {:.4f}, \"draft_share\": {:.4f}, \"swi\": {:.4f}, \"identical\": {}, "
            "\"output_hash\": \"{:016x}\"",
            json_escape(id), json_escape(o.draft), st.generated, st.tokens_per_s(),
            o.compare ? a.gen.stats.tokens_per_s() : 0.0, st.target_passes, st.accepted_per_pass(),
            st.acceptance_rate(), st.draft_time_share(), st.swi(), same ? "true" : "false",
            token_hash(s.gen.tokens));
        *out << fmt::format(", \"drafted\": {}, \"replay\": {}, \"output\": [{}]", st.drafted,
                            replay ? "true" : "false", fmt::join(s.gen.tokens, ", "));
        *out << fmt::format(", \"passes_of\": [{}]", fmt::join(st.passes_of, ", "));  // [n]: passes of n tokens
        *out << ", \"by_source\": {";
        bool first = true;
        for (const auto& [k, v] : st.by_source) {
          *out << fmt::format("{}\"{}\": [{}, {}]", first ? "" : ", ", json_escape(k), v.first, v.second);
          first = false;
        }
        *out << "}}\n";
      }
    }
    fmt::print(stderr, "total: {}\n", total_spec.summary());
    if (o.compare && total_ar.decode_s > 0)
      fmt::print(stderr, "autoregressive: {:.2f} tok/s; speedup {:.2f}x\n", total_ar.tokens_per_s(),
                 total_spec.tokens_per_s() / std::max(1e-9, total_ar.tokens_per_s()));
    return 0;
  }

  if (!o.have_prompt) {
    o.prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  const auto prompt = encode(o.prompt);
  warn_if_full(prompt.size(), "the prompt");
  Run a;
  if (o.compare) {
    fmt::print(stderr, "--- autoregressive ---\n");
    a = run_one(ar, prompt, o.gp, *tok, true, "autoregressive");
    fmt::print(stderr, "{}\n--- {} ---\n", a.gen.stats.summary(), factory ? o.draft : "autoregressive");
  }
  Run s = run_one(factory ? spec : ar, prompt, o.gp, *tok, true, factory ? o.draft.c_str() : "autoregressive");
  fmt::print(stderr, "{} prompt tokens, stop: {}\n{}\n", prompt.size(), decode::stop_reason_name(s.gen.stop),
             s.gen.stats.summary());
  if (o.compare) {
    const double sa = a.gen.stats.tokens_per_s(), ss = s.gen.stats.tokens_per_s();
    fmt::print(stderr, "\n{:<28} {:>10} {:>14} {:>10}\n", "method", "tok/s", "tokens/pass", "speedup");
    fmt::print(stderr, "{:<28} {:>10.2f} {:>14.2f} {:>9.2f}x\n", "autoregressive", sa, a.gen.stats.tokens_per_pass(), 1.0);
    fmt::print(stderr, "{:<28} {:>10.2f} {:>14.2f} {:>9.2f}x\n", o.draft.substr(0, 28), ss,
               s.gen.stats.tokens_per_pass(), ss / std::max(1e-9, sa));
    if (greedy) {
      // Only the CUDA backend's default mode may round a verification pass unlike a one-token
      // pass (a near tie can then part the outputs); anywhere else a difference is a bug.
      const bool may_part = decoder_target.backend_name() == "cuda" && !o.batch_invariant;
      fmt::print(stderr, "greedy outputs {}\n",
                 a.gen.tokens == s.gen.tokens ? "identical"
                 : may_part ? "DIFFER (a near tie rounded apart by the CUDA backend's default mode; "
                              "--batch-invariant makes them identical)"
                            : "DIFFER (bug!)");
    }
  }
  return 0;
}

cli::CommandRegistration reg({"generate", "generate text with speculative / cascade drafting (the decode demo)", generate});

}  // namespace

// `spillway tinymodel --out F [...]`: writes a tiny random-weight Llama GGUF for tests.
#include <fmt/format.h>

#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "tools/spillway/cli_args.h"
#include "tools/spillway/command.h"

namespace {

int tinymodel(const std::vector<std::string>& argv) {
  using spw::cli::Args;
  Args a = Args::parse(argv, {"--help", "--untied"});
  if (a.has("--help") || !a.has("--out")) {
    fmt::print("usage: spillway tinymodel --out FILE [--vocab 320] [--hidden 64] [--layers 2] [--heads 4]\n"
               "         [--kv-heads 2] [--inter 128] [--context 512] [--type f32|f16|bf16|q8_0|q4_0|q4_1|q4_k|q6_k]\n"
               "         [--arch llama|qwen2] [--untied] [--seed 1]\n"
               "Writes a tiny random-weight Llama GGUF with a byte-level tokenizer vocabulary.\n");
    return a.has("--help") ? 0 : 2;
  }
  a.only({"--out", "--vocab", "--hidden", "--layers", "--heads", "--kv-heads", "--inter", "--context", "--type",
          "--arch", "--untied", "--seed"});
  spw::rt::TinyLlamaSpec s;
  s.vocab = a.get_int("--vocab", s.vocab);
  s.hidden = a.get_int("--hidden", s.hidden);
  s.layers = a.get_int("--layers", s.layers);
  s.heads = a.get_int("--heads", s.heads);
  s.kv_heads = a.get_int("--kv-heads", s.kv_heads);
  s.intermediate = a.get_int("--inter", s.intermediate);
  s.context = a.get_int("--context", s.context);
  s.seed = static_cast<uint64_t>(a.get_int("--seed", 1));
  s.arch = a.get("--arch", "llama");
  s.tied = !a.has("--untied");
  const std::string type = a.get("--type", "f32");
  const std::pair<const char*, spw::rt::TensorType> types[] = {
      {"f32", spw::rt::TensorType::F32}, {"f16", spw::rt::TensorType::F16}, {"bf16", spw::rt::TensorType::BF16},
      {"q8_0", spw::rt::TensorType::Q8_0}, {"q4_0", spw::rt::TensorType::Q4_0}, {"q4_1", spw::rt::TensorType::Q4_1},
      {"q4_k", spw::rt::TensorType::Q4_K}, {"q6_k", spw::rt::TensorType::Q6_K}};
  bool found = false;
  for (const auto& [name, t] : types)
    if (type == name) { s.type = static_cast<uint32_t>(t); found = true; }
  SPW_CHECK(found, "--type = {}: must be f32, f16, bf16, q8_0, q4_0, q4_1, q4_k or q6_k", type);
  SPW_CHECK(s.arch == "llama" || s.arch == "qwen2", "--arch = {}: must be llama or qwen2", s.arch);
  spw::rt::write_tiny_llama(a.get("--out"), s);
  fmt::print("wrote {} ({} layers, hidden {}, vocab {}, {})\n", a.get("--out"), s.layers, s.hidden, s.vocab, type);
  return 0;
}

spw::cli::CommandRegistration reg({"tinymodel", "write a tiny random-weight Llama GGUF (tests)", tinymodel});

}  // namespace

// Tokenizer from GGUF metadata: tokenizer.ggml.* and tokenizer.chat_template, read through
// GgufFile's typed getters (which check every length and type and name the key when a value
// is missing or malformed). Absent optional keys get llama.cpp's defaults.
#include "kernels/common/error.h"
#include "runtime/gguf.h"
#include "runtime/tokenizer.h"

namespace spw::rt {

namespace {

std::optional<bool> optional_bool(const GgufFile& f, const std::string& key) {
  if (!f.has(key)) return std::nullopt;
  return f.get_bool(key);
}

}  // namespace

TokenizerData read_tokenizer_data(const GgufFile& f) {
  const std::string k = "tokenizer.ggml.";
  SPW_CHECK(f.has(k + "model"), "GGUF {}: metadata key tokenizer.ggml.model is missing: the file has no tokenizer",
            f.path());
  TokenizerData d;
  d.model = f.get_string(k + "model");
  d.pre = f.get_string_or(k + "pre", "");
  d.tokens = f.get_strings(k + "tokens");
  if (f.has(k + "scores")) {
    for (double s : f.get_numbers(k + "scores")) d.scores.push_back(float(s));
  }
  if (f.has(k + "token_type")) {
    for (double t : f.get_numbers(k + "token_type")) d.token_types.push_back(int32_t(t));
  }
  if (f.has(k + "merges")) d.merges = f.get_strings(k + "merges");
  d.bos_id = int32_t(f.get_int_or(k + "bos_token_id", -1));
  d.eos_id = int32_t(f.get_int_or(k + "eos_token_id", -1));
  d.unk_id = int32_t(f.get_int_or(k + "unknown_token_id", -1));
  d.pad_id = int32_t(f.get_int_or(k + "padding_token_id", -1));
  for (const char* key : {"eot_token_id", "eom_token_id"})
    if (int64_t e = f.get_int_or(k + key, -1); e >= 0) d.extra_eog_ids.push_back(int32_t(e));
  // llama.cpp's defaults when the flags are absent: SentencePiece adds BOS, GPT-2 BPE does not.
  d.add_bos = optional_bool(f, k + "add_bos_token").value_or(d.model == "llama");
  d.add_eos = optional_bool(f, k + "add_eos_token").value_or(false);
  d.add_space_prefix = optional_bool(f, k + "add_space_prefix");
  d.chat_template = f.get_string_or("tokenizer.chat_template", "");
  return d;
}

Tokenizer Tokenizer::from_gguf(const GgufFile& file) { return Tokenizer(read_tokenizer_data(file)); }

Tokenizer Tokenizer::from_gguf_file(const std::string& path) { return from_gguf(GgufFile::open(path)); }

}  // namespace spw::rt

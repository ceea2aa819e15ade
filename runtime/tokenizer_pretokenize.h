// Pre-tokenizers of byte-level BPE: the regexes HF tokenizers / llama.cpp select by
// `tokenizer.ggml.pre`, written by hand as one left-to-right scan over code points.
// std::regex has no \p{L} and backtracks; these scans are linear in the text length.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spw::rt {

enum class PreTokenizer {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  gpt2,
  // every \p{N} code point isolated first, then gpt2 on the rest (SmolLM, StarCoder)
  smollm,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  llama3,
  // llama3 with \p{N} instead of \p{N}{1,3}
  qwen2,
};

// Maps a `tokenizer.ggml.pre` value to a pre-tokenizer. "" (key absent) and "default" give
// gpt2; unknown names give gpt2 and a warning text in *warning (empty otherwise).
PreTokenizer pre_tokenizer_from_name(std::string_view name, std::string* warning);
const char* pre_tokenizer_name(PreTokenizer p);

// Splits `text` into words; appends their byte ranges [first, second) to `words` (cleared
// first). The ranges cover the whole text, in order.
void pre_tokenize(PreTokenizer p, std::string_view text,
                  std::vector<std::pair<uint32_t, uint32_t>>& words);

}  // namespace spw::rt

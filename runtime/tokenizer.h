// Tokenizer of a GGUF model: byte-level BPE (`tokenizer.ggml.model = "gpt2"`: SmolLM2,
// Llama-3, Qwen2) and SentencePiece-style BPE (`"llama"`: Llama-2, TinyLlama), special
// tokens, decoding (also streamed token by token) and the chat template.
//
// The core is built from a plain TokenizerData, so it can be tested without a GGUF file;
// from_gguf() only reads the `tokenizer.*` metadata into one. Ids match HF `tokenizers` /
// llama.cpp on the same vocabulary (tests/runtime/test_tokenizer*.cpp,
// tools/testdata/gen_tokenizer_expectations.py).
//
// Why it is fast: merges are looked up by (left id, right id) in one hash map and applied
// in rank/score order with a heap over a linked list of symbols (O(n log n) per word, not
// O(n^2)); the pre-tokenizer is a linear hand-written scan (tokenizer_pretokenize.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer_pretokenize.h"

namespace spw::rt {

class GgufFile;
struct TokenizerData;
// The tokenizer.* metadata of a GGUF file as a TokenizerData (tokenizer_gguf.cpp).
TokenizerData read_tokenizer_data(const GgufFile& file);

// llama.cpp's token types (`tokenizer.ggml.token_type`).
enum class TokenType : int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       // <|im_start|>, <s>: matched in text only with parse_special
  user_defined = 4,  // added tokens: always matched as whole tokens in text
  unused = 5,
  byte = 6,  // <0xXX> byte fallback of SentencePiece vocabularies
};

struct TokenizerData {
  std::string model;  // "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE)
  std::string pre;    // tokenizer.ggml.pre (gpt2 only): selects the pre-tokenizer regex
  std::vector<std::string> tokens;
  std::vector<float> scores;          // llama: merge priority; may be empty for gpt2
  std::vector<int32_t> token_types;   // TokenType values; empty = all normal
  std::vector<std::string> merges;    // gpt2: "left right", in rank order
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  std::vector<int32_t> extra_eog_ids;  // more end-of-generation ids (e.g. <|im_end|>, eot)
  bool add_bos = false, add_eos = false;
  std::optional<bool> add_space_prefix;  // llama: default true; gpt2: default false
  std::string chat_template;             // tokenizer.chat_template (Jinja text)
};

class Tokenizer {
 public:
  // Builds the lookup tables (vocabulary, merges, special tokens) from `data`; throws
  // spw::Error for an unknown model kind or an inconsistent vocabulary.
  explicit Tokenizer(TokenizerData data);
  // Reads tokenizer.ggml.* and tokenizer.chat_template; throws spw::Error naming the key
  // that is missing or malformed.
  static Tokenizer from_gguf(const GgufFile& file);
  static Tokenizer from_gguf_file(const std::string& path);  // opens the file, then from_gguf

  // add_special: BOS/EOS as the metadata says. parse_special: control tokens written in
  // the text (e.g. "<|im_start|>") become their ids instead of being tokenized as text.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                              bool parse_special = false) const;

  // Bytes of one token: byte-level / <0xXX> / "▁" undone. Control tokens give their text
  // when render_special, else "". A piece may end inside a UTF-8 character.
  std::string token_to_piece(int32_t id, bool render_special = true) const;
  // Concatenated pieces; SentencePiece's prefix space is removed from the first piece.
  std::string decode(std::span<const int32_t> ids, bool render_special = true) const;

  int32_t n_vocab() const { return int32_t(data_.tokens.size()); }
  const std::string& token_text(int32_t id) const;  // vocabulary entry as stored
  TokenType token_type(int32_t id) const;                        // as the metadata says
  std::optional<int32_t> find_token(std::string_view text) const;  // id of a vocabulary entry
  int32_t bos_id() const { return data_.bos_id; }
  int32_t eos_id() const { return data_.eos_id; }
  bool add_bos() const { return data_.add_bos; }
  bool is_byte_level() const { return byte_level_; }
  // EOS, the extra EOG ids, and control tokens named like an end of turn.
  bool is_end_of_generation(int32_t id) const;
  PreTokenizer pre_tokenizer() const { return pre_; }
  const std::string& chat_template() const { return data_.chat_template; }
  // Things the constructor had to guess (unknown pre-tokenizer name, ...).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct StringViewHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  void check_id(int32_t id, const char* what) const;
  void encode_text(std::string_view text, bool first_fragment, std::vector<int32_t>& out) const;
  void encode_bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void push_bytes_fallback(std::string_view bytes, std::vector<int32_t>& out) const;

  TokenizerData data_;
  bool byte_level_ = false;
  bool add_space_prefix_ = false;
  bool ignore_merges_ = false;  // Llama-3: a whole word in the vocabulary is one token
  PreTokenizer pre_ = PreTokenizer::gpt2;
  std::unordered_map<std::string_view, int32_t, StringViewHash, std::equal_to<>> token_to_id_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::array<int32_t, 256> byte_token_{};       // id of each byte's token, -1 if none
  std::array<std::vector<int32_t>, 256> specials_by_first_byte_;  // longest first
  std::vector<int32_t> eog_ids_;
  std::vector<std::string> warnings_;
};

// Turns ids into text one at a time for streaming: holds back the bytes of a UTF-8
// character until its last byte has arrived, so every returned string is valid UTF-8.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = true)
      : tok_(tok), render_special_(render_special) {}
  std::string push(int32_t id);
  // Whatever is still held (an incomplete character: returned as U+FFFD per byte).
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool render_special_;
  std::string pending_;
};

}  // namespace spw::rt

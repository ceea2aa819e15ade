// The committed tokenizer fixtures (tests/data/tokenizer/, written by
// tools/testdata/gen_tokenizer_expectations.py) as TokenizerData: SmolLM2's vocabulary subset
// under a chosen pre-tokenizer, a synthetic SentencePiece BPE vocabulary, and two checks. Used by the
// tokenizer tests and the tokenizer fuzz target (tests/runtime/tokenizer_text_fuzz.cpp).
#pragma once

#include <string>
#include <string_view>

#include "runtime/tokenizer.h"
#include "runtime/unicode.h"
#include "tests/runtime/test_tokenizer_json.h"

namespace spw::test {

/// SmolLM2's byte-level BPE from `dir`/smollm2_vocab.json with pre-tokenizer `pre`; the ids the
/// fixture does not list become unique unused placeholders.
inline rt::TokenizerData smollm2_tokenizer_data(const std::string& dir, const std::string& pre) {
  const auto f = testjson::load(dir + "/smollm2_vocab.json");
  rt::TokenizerData d;
  d.model = f["model"].str;
  d.pre = pre;
  const size_t n = size_t(f["n_vocab"].as_int());
  d.tokens.resize(n);
  d.token_types.assign(n, int32_t(rt::TokenType::unused));
  for (size_t i = 0; i < n; ++i) d.tokens[i] = "<unused_placeholder_" + std::to_string(i) + ">";
  for (const auto& t : f["tokens"].arr) {
    const size_t id = size_t(t.arr[0].as_int());
    d.tokens[id] = t.arr[1].str;
    d.token_types[id] = int32_t(t.arr[2].as_int());
  }
  for (const auto& m : f["merges"].arr) d.merges.push_back(m.str);
  d.bos_id = int32_t(f["bos_id"].as_int());
  d.eos_id = int32_t(f["eos_id"].as_int());
  d.unk_id = int32_t(f["unk_id"].as_int());
  d.pad_id = int32_t(f["pad_id"].as_int());
  d.add_bos = f["add_bos"].b;
  d.chat_template = f["chat_template"].str;
  return d;
}

/// The synthetic SentencePiece BPE vocabulary of `dir`/spm_synthetic.json.
inline rt::TokenizerData spm_tokenizer_data(const std::string& dir) {
  const auto v = testjson::load(dir + "/spm_synthetic.json");
  rt::TokenizerData d;
  d.model = v["model"].str;
  for (const auto& t : v["tokens"].arr) d.tokens.push_back(t.str);
  for (const auto& s : v["scores"].arr) d.scores.push_back(float(s.num));
  for (const auto& t : v["token_types"].arr) d.token_types.push_back(int32_t(t.num));
  d.bos_id = int32_t(v["bos_id"].as_int());
  d.eos_id = int32_t(v["eos_id"].as_int());
  d.unk_id = int32_t(v["unk_id"].as_int());
  d.add_bos = v["add_bos"].b;
  return d;
}

/// Whether byte `b` has a token of its own in byte-level BPE tokenizer `tok` (one without
/// becomes <unk> when encoded, so text holding it cannot decode back to itself).
inline bool byte_has_token(const rt::Tokenizer& tok, uint8_t b) {
  return tok.find_token(rt::unicode::to_utf8(rt::unicode::byte_to_codepoint(b))).has_value();
}

/// Whether `s` is valid UTF-8 (the tokenizer's own decoder finds no invalid byte).
inline bool valid_utf8(std::string_view s) {
  for (size_t p = 0; p < s.size();) {
    uint32_t cp;
    p += size_t(rt::unicode::decode_one(s, p, &cp));
    if (cp >= rt::unicode::kInvalidBase) return false;
  }
  return true;
}

}  // namespace spw::test

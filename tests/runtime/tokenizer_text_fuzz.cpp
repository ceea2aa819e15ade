// libFuzzer target for the tokenizer's text side: any byte string, encoded by SmolLM2's byte-level
// BPE under each of its four pre-tokenizers (smollm, llama3, qwen2, gpt2) or by a SentencePiece
// BPE (the committed fixtures, tests/runtime/tokenizer_fixtures.h), must give ids in the
// vocabulary that decode back to the same bytes, and a streamed decode must give valid UTF-8
// (the text itself, when the text is valid UTF-8; SentencePiece keeps its prefix space there).
// Built and run for a bounded time by tests/common/run_fuzz.sh tokenizer (ctest
// `runtime_tokenizer_fuzz`); by hand, also on a real model's whole vocabulary:
//   FUZZ_SECONDS=600 SPW_TOKENIZER_GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf \
//     tests/common/run_fuzz.sh tokenizer . build/tools/spillway /tmp/f
//
// The input's first byte chooses: bits 0-2 the tokenizer (0-3 BPE, 4-6 SentencePiece, 7 the
// SPW_TOKENIZER_GGUF model's when set, else SentencePiece), bit 3 parse_special (BPE: control
// tokens written in the text become their ids), bit 4 maps every byte onto the BPE fixture's
// bytes that have a token (the fixture holds a subset of SmolLM2's vocabulary: a byte without
// one becomes <unk>, which cannot round-trip). The rest is the text.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer.h"
#include "tests/runtime/tokenizer_fixtures.h"

namespace {

using spw::rt::StreamDecoder;
using spw::rt::Tokenizer;
using spw::test::valid_utf8;

// A tokenizer and what the round-trip checks need of it, worked out once.
struct Target {
  std::unique_ptr<Tokenizer> tok;
  std::array<bool, 256> has_byte{};       // byte-level: the bytes that have a token
  std::vector<std::string> user_defined;  // tokens matched whole in any text
};
Target make_target(std::unique_ptr<Tokenizer> tok) {
  Target t{std::move(tok)};
  for (int b = 0; b < 256; ++b) t.has_byte[b] = spw::test::byte_has_token(*t.tok, uint8_t(b));
  for (int32_t id = 0; id < t.tok->n_vocab(); ++id)
    if (t.tok->token_type(id) == spw::rt::TokenType::user_defined) t.user_defined.push_back(t.tok->token_text(id));
  return t;
}

struct Fixtures {
  Target bpe[4], spm, gguf;     // gguf: SPW_TOKENIZER_GGUF's, or no tokenizer
  std::vector<char> bpe_bytes;  // the bytes that have a token in the BPE fixture
};

const Fixtures& fixtures() {
  static const Fixtures f = [] {
    const char* dir = std::getenv("SPW_TOKENIZER_DATA");
    if (!dir) {
      std::fprintf(stderr, "tokenizer_text_fuzz: set SPW_TOKENIZER_DATA to tests/data/tokenizer\n");
      std::abort();
    }
    Fixtures x;
    const char* pres[4] = {"smollm", "llama3", "qwen2", "gpt2"};
    for (int i = 0; i < 4; ++i)
      x.bpe[i] = make_target(std::make_unique<Tokenizer>(spw::test::smollm2_tokenizer_data(dir, pres[i])));
    x.spm = make_target(std::make_unique<Tokenizer>(spw::test::spm_tokenizer_data(dir)));
    if (const char* model = std::getenv("SPW_TOKENIZER_GGUF"))
      x.gguf = make_target(std::make_unique<Tokenizer>(Tokenizer::from_gguf_file(model)));
    for (int b = 0; b < 256; ++b)
      if (x.bpe[0].has_byte[b]) x.bpe_bytes.push_back(char(b));
    return x;
  }();
  return f;
}

[[noreturn]] void fail(const char* what, const std::string& text) {
  std::fprintf(stderr, "tokenizer_text_fuzz: %s (text of %zu bytes)\n", what, text.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Fixtures& fx = fixtures();
  const uint8_t sel = data[0];
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Target& target = (sel & 7) < 4 ? fx.bpe[sel & 3] : (sel & 7) == 7 && fx.gguf.tok ? fx.gguf : fx.spm;
  const Tokenizer& tok = *target.tok;
  const bool spm = !tok.is_byte_level(), parse_special = !spm && (sel & 8), onto_bytes = sel & 16;
  if (onto_bytes)
    for (char& c : text) c = fx.bpe_bytes[uint8_t(c) % fx.bpe_bytes.size()];
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/spm, parse_special);
  for (int32_t id : ids)
    if (id < 0 || id >= tok.n_vocab()) fail("an id outside the vocabulary", text);
  // Round trips are checked where they are promised: BPE text whose every byte has a token;
  // SentencePiece text without a user-defined token (after one, SentencePiece adds a prefix
  // space again, as llama.cpp and HF's legacy Llama tokenizer do: "a<sep>b" gives "a<sep> b")
  // and without U+2581, SentencePiece's own escape of a space ("a\u2581b" gives "a b").
  bool round_trips = true;
  if (spm) {
    for (const std::string& u : target.user_defined)
      if (text.find(u) != std::string::npos) round_trips = false;
    if (text.find("\xE2\x96\x81") != std::string::npos) round_trips = false;
  } else {
    for (char c : text)
      if (!target.has_byte[uint8_t(c)]) round_trips = false;
  }
  // SentencePiece: BOS is added and not rendered back; BPE renders what parse_special matched.
  if (round_trips && tok.decode(ids, /*render_special=*/!spm) != text) fail("decode(encode(text)) != text", text);
  StreamDecoder stream(tok, !spm);
  std::string streamed;
  for (int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (!valid_utf8(streamed)) fail("the streamed decode is not valid UTF-8", text);
  // (A streamed SentencePiece decode keeps the prefix space that decode() takes off.)
  const std::string want = spm && !text.empty() ? " " + text : text;
  if (round_trips && valid_utf8(text) && streamed != want) fail("the streamed decode differs from the text", text);
  return 0;
}

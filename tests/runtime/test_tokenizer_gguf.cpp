// The tokenizer read from the real SmolLM2-135M-Instruct GGUF (full 49k vocabulary, 48.9k
// merges) against the HF `tokenizers` ids of tests/data/tokenizer/smollm2_cases.json.
// Skipped when models/SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/fetch_model.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <unistd.h>

#include "runtime/chat_template.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/tokenizer.h"
#include "tests/common/helpers.h"
#include "tests/runtime/test_tokenizer_json.h"

namespace {

using spw::rt::Tokenizer;

std::string model_path() { return std::string(SPW_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"; }

const Tokenizer* smollm2() {
  static std::unique_ptr<Tokenizer> tok;
  if (!tok && std::filesystem::exists(model_path()))
    tok = std::make_unique<Tokenizer>(Tokenizer::from_gguf_file(model_path()));
  return tok.get();
}

#define REQUIRE_MODEL()                                                                         \
  if (!smollm2()) GTEST_SKIP() << model_path() << " is absent (tools/fetch_model.sh fetches it)"

const spw::testjson::Value& cases() {
  static const auto v = spw::testjson::load(std::string(SPW_TEST_DATA_DIR) + "/tokenizer/smollm2_cases.json");
  return v;
}

TEST(TokenizerGguf, MetadataOfSmolLM2) {
  REQUIRE_MODEL();
  const Tokenizer& tok = *smollm2();
  EXPECT_EQ(tok.n_vocab(), 49152);
  EXPECT_TRUE(tok.is_byte_level());
  EXPECT_EQ(tok.pre_tokenizer(), spw::rt::PreTokenizer::smollm);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_TRUE(tok.warnings().empty()) << tok.warnings()[0];
  EXPECT_EQ(tok.token_text(1), "<|im_start|>");
  EXPECT_EQ(tok.token_type(1), spw::rt::TokenType::control);
  EXPECT_EQ(spw::rt::ChatTemplate::detect(tok.chat_template()).kind(), spw::rt::ChatTemplate::Kind::chatml);
}

TEST(TokenizerGguf, FullVocabularyMatchesHfTokenizers) {
  REQUIRE_MODEL();
  const Tokenizer& tok = *smollm2();
  int checked = 0;
  for (const auto& c : cases()["cases"].arr) {
    if (c["pre"].str != "smollm") continue;
    auto got = tok.encode(c["text"].str, false, c["parse_special"].b);
    EXPECT_EQ(got, c["ids"].as_ids()) << c["name"].str;
    EXPECT_EQ(tok.decode(got), c["text"].str) << c["name"].str;
    ++checked;
  }
  EXPECT_GT(checked, 60);
}

TEST(TokenizerGguf, TenThousandCharPromptInMilliseconds) {
  REQUIRE_MODEL();
  const Tokenizer& tok = *smollm2();
  std::string prose, prompt;
  for (const auto& c : cases()["cases"].arr)
    if (c["name"].str == "long_mixed" && c["pre"].str == "smollm") prose = c["text"].str;
  ASSERT_FALSE(prose.empty());
  while (prompt.size() < 10000) prompt += prose;
  prompt.resize(10000);
  tok.encode(prompt, true, false);  // warm up
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok.encode(prompt, true, false);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GT(ids.size(), 3000u);
  EXPECT_LT(ms, 100.0) << "10k chars took " << ms << " ms";
  RecordProperty("encode_10k_chars_ms", std::to_string(ms));
}

// ---------------------------------------------- a GGUF written here (no model needed)

// Minimal GGUF v3 writer: header + metadata, no tensors.
class GgufWriter {
 public:
  template <class T>
  void pod(T v) {
    buf_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void str(std::string_view s) {
    pod<uint64_t>(s.size());
    buf_ += s;
  }
  void kv_string(std::string_view k, std::string_view v) { str(k), pod<uint32_t>(8), str(v); }
  void kv_u32(std::string_view k, uint32_t v) { str(k), pod<uint32_t>(4), pod(v); }
  void kv_bool(std::string_view k, bool v) { str(k), pod<uint32_t>(7), pod<uint8_t>(v); }
  void kv_strings(std::string_view k, const std::vector<std::string>& v) {
    str(k), pod<uint32_t>(9), pod<uint32_t>(8), pod<uint64_t>(v.size());
    for (auto& x : v) str(x);
  }
  template <class T>
  void kv_array(std::string_view k, uint32_t type, const std::vector<T>& v) {
    str(k), pod<uint32_t>(9), pod<uint32_t>(type), pod<uint64_t>(v.size());
    for (auto x : v) pod(x);
  }
  std::string file(uint64_t n_kv) {
    std::string head = "GGUF";
    GgufWriter h;
    h.pod<uint32_t>(3), h.pod<uint64_t>(0), h.pod<uint64_t>(n_kv);
    return head + h.buf_ + buf_;
  }

 private:
  std::string buf_;
};

std::string write_temp(const std::string& name, const std::string& bytes) {
  auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return path.string();
}

// The SentencePiece test vocabulary as a GGUF file, with an unrelated key in between.
std::string spm_gguf_bytes() {
  auto v = spw::testjson::load(std::string(SPW_TEST_DATA_DIR) + "/tokenizer/spm_synthetic.json");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (auto& t : v["tokens"].arr) tokens.push_back(t.str);
  for (auto& x : v["scores"].arr) scores.push_back(float(x.num));
  for (auto& x : v["token_types"].arr) types.push_back(int32_t(x.num));
  GgufWriter w;
  w.kv_string("general.architecture", "llama");
  w.kv_string("tokenizer.ggml.model", "llama");
  w.kv_strings("tokenizer.ggml.tokens", tokens);
  w.kv_array<float>("tokenizer.ggml.scores", 6, scores);
  w.kv_array<float>("llama.unrelated_floats", 6, {1.f, 2.f});
  w.kv_array<int32_t>("tokenizer.ggml.token_type", 5, types);
  w.kv_u32("tokenizer.ggml.bos_token_id", 1);
  w.kv_u32("tokenizer.ggml.eos_token_id", 2);
  w.kv_u32("tokenizer.ggml.unknown_token_id", 0);
  w.kv_bool("tokenizer.ggml.add_bos_token", true);
  w.kv_string("tokenizer.chat_template", "{{ '<|user|>\\n' }}{{ '<|assistant|>' }}");
  return w.file(11);
}

TEST(TokenizerGgufFile, SentencePieceVocabularyFromAWrittenFile) {
  std::string path = write_temp("spw_tok_spm.gguf", spm_gguf_bytes());
  Tokenizer tok = Tokenizer::from_gguf_file(path);
  EXPECT_FALSE(tok.is_byte_level());
  EXPECT_TRUE(tok.add_bos());
  auto v = spw::testjson::load(std::string(SPW_TEST_DATA_DIR) + "/tokenizer/spm_synthetic.json");
  for (const auto& c : v["cases"].arr) {
    auto want = c["ids"].as_ids();
    want.insert(want.begin(), 1);
    EXPECT_EQ(tok.encode(c["text"].str), want) << c["name"].str;
  }
  EXPECT_EQ(spw::rt::ChatTemplate::detect(tok.chat_template()).kind(), spw::rt::ChatTemplate::Kind::zephyr);
}

// Every tokenizer.ggml.* key lands in its TokenizerData field; absent keys get llama.cpp's
// defaults (BOS added for SentencePiece only, no EOS, ids -1, no extra end-of-generation ids,
// add_space_prefix unset: the tokenizer's per-model default).
TEST(TokenizerGgufFile, EveryKeyIsReadAndAbsentOnesGetDefaults) {
  auto read = [](GgufWriter& w, uint64_t n_kv) {
    const std::string bytes = w.file(n_kv);
    return spw::rt::read_tokenizer_data(
        spw::rt::GgufFile::from_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end()), "tok"));
  };
  const std::vector<std::string> tokens{"<|eot|>", "a", "b", "ab", "<pad>", "<|eom|>", "<s>"};  // ids 0..6
  GgufWriter all;
  all.kv_string("tokenizer.ggml.model", "gpt2");
  all.kv_string("tokenizer.ggml.pre", "llama-bpe");
  all.kv_strings("tokenizer.ggml.tokens", tokens);
  all.kv_strings("tokenizer.ggml.merges", {"a b"});
  all.kv_u32("tokenizer.ggml.bos_token_id", 6);
  all.kv_u32("tokenizer.ggml.eos_token_id", 0);
  all.kv_u32("tokenizer.ggml.unknown_token_id", 1);
  all.kv_u32("tokenizer.ggml.padding_token_id", 4);
  all.kv_u32("tokenizer.ggml.eot_token_id", 0);  // id 0 is an id too
  all.kv_u32("tokenizer.ggml.eom_token_id", 5);
  all.kv_bool("tokenizer.ggml.add_bos_token", true);
  all.kv_bool("tokenizer.ggml.add_eos_token", true);
  all.kv_bool("tokenizer.ggml.add_space_prefix", false);
  all.kv_string("tokenizer.chat_template", "{{ messages }}");
  const spw::rt::TokenizerData d = read(all, 14);
  EXPECT_EQ(d.model, "gpt2");
  EXPECT_EQ(d.pre, "llama-bpe");
  EXPECT_EQ(d.tokens, tokens);
  EXPECT_EQ(d.merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(d.bos_id, 6);
  EXPECT_EQ(d.eos_id, 0);
  EXPECT_EQ(d.unk_id, 1);
  EXPECT_EQ(d.pad_id, 4);
  EXPECT_EQ(d.extra_eog_ids, (std::vector<int32_t>{0, 5}));
  EXPECT_TRUE(d.add_bos) << "set: overrides gpt2's default";
  EXPECT_TRUE(d.add_eos);
  EXPECT_EQ(d.add_space_prefix, std::optional<bool>(false));
  EXPECT_EQ(d.chat_template, "{{ messages }}");
  const Tokenizer tok(d);
  EXPECT_TRUE(tok.is_end_of_generation(5)) << "eom";
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{6, 3, 0})) << "BOS, ab, EOS";

  for (const char* model : {"gpt2", "llama"}) {
    GgufWriter few;
    few.kv_string("tokenizer.ggml.model", model);
    few.kv_strings("tokenizer.ggml.tokens", tokens);
    const spw::rt::TokenizerData m = read(few, 2);
    EXPECT_EQ(m.pre, "") << model;
    EXPECT_TRUE(m.scores.empty() && m.token_types.empty() && m.merges.empty()) << model;
    EXPECT_EQ(m.bos_id, -1) << model;
    EXPECT_EQ(m.eos_id, -1) << model;
    EXPECT_EQ(m.unk_id, -1) << model;
    EXPECT_EQ(m.pad_id, -1) << model;
    EXPECT_TRUE(m.extra_eog_ids.empty()) << model;
    EXPECT_EQ(m.add_bos, std::string(model) == "llama") << model;
    EXPECT_FALSE(m.add_eos) << model;
    EXPECT_FALSE(m.add_space_prefix.has_value()) << model;
    EXPECT_EQ(m.chat_template, "") << model;
  }
}

// The tiny test models' vocabulary (write_tiny_llama): token b is byte b for all 256 bytes (in
// GPT-2's byte-to-unicode images), then <|endoftext|>, <|im_start|>, <|im_end|> as control
// tokens, then unused placeholders up to the vocabulary size.
TEST(TokenizerGgufFile, TinyModelVocabularyIsTheBytesThenTheChatTokens) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("spw_tok_tiny_" + std::to_string(::getpid()) + ".gguf")).string();
  spw::rt::TinyLlamaSpec spec;
  spec.vocab = 300;
  spw::rt::write_tiny_llama(path, spec);
  const Tokenizer tok = Tokenizer::from_gguf_file(path);
  std::filesystem::remove(path);
  ASSERT_EQ(tok.n_vocab(), 300);
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    EXPECT_EQ(tok.encode(byte, false), (std::vector<int32_t>{b})) << "byte " << b;
    EXPECT_EQ(tok.token_to_piece(b), byte) << "byte " << b;
  }
  const char* specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(tok.token_text(256 + i), specials[i]);
    EXPECT_EQ(tok.token_type(256 + i), spw::rt::TokenType::control);
  }
  EXPECT_EQ(tok.token_type(259), spw::rt::TokenType::unused);
  EXPECT_EQ(tok.token_type(299), spw::rt::TokenType::unused);
}

TEST(TokenizerGgufFile, CorruptFilesGiveErrorsNotCrashes) {
  const std::string good = spm_gguf_bytes();
  // Every truncation point: a clear error naming the file.
  for (size_t n = 0; n < good.size(); n += (n < 200 ? 1 : 97)) {
    std::string path = write_temp("spw_tok_trunc.gguf", good.substr(0, n));
    EXPECT_THROW_MSG(Tokenizer::from_gguf_file(path), "GGUF ");
  }
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_THROW_MSG(Tokenizer::from_gguf_file(write_temp("spw_tok_bad.gguf", bad)), "bad magic");
  bad = good;
  bad[4] = 9;
  EXPECT_THROW_MSG(Tokenizer::from_gguf_file(write_temp("spw_tok_bad.gguf", bad)), "version 9");
  bad = good;
  std::memset(&bad[4 + 4 + 8 + 8], 0xFF, 8);  // length of the first key: huge
  EXPECT_THROW_MSG(Tokenizer::from_gguf_file(write_temp("spw_tok_bad.gguf", bad)), "GGUF ");
  // Right key, wrong type: the message names the key.
  GgufWriter wrong;
  wrong.kv_u32("tokenizer.ggml.model", 7);
  EXPECT_THROW_MSG(Tokenizer::from_gguf_file(write_temp("spw_tok_type.gguf", wrong.file(1))),
                   "tokenizer.ggml.model");
  GgufWriter w;
  w.kv_string("general.architecture", "llama");
  EXPECT_THROW_MSG(Tokenizer::from_gguf_file(write_temp("spw_tok_none.gguf", w.file(1))),
                   "tokenizer.ggml.model is missing");
  EXPECT_THROW_MSG(Tokenizer::from_gguf_file("/nonexistent/x.gguf"), "cannot open");
}

}  // namespace

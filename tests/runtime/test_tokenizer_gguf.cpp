// The tokenizer read from the real SmolLM2-135M-Instruct GGUF (full 49k vocabulary, 48.9k
// merges) against the HF `tokenizers` ids of tests/data/tokenizer/smollm2_cases.json.
// Skipped when models/SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/fetch_model.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "runtime/chat_template.h"
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

}  // namespace

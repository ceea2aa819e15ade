// Tokenizer tests against ids from reference implementations, with no model file needed:
// tests/data/tokenizer/ holds SmolLM2's vocabulary subset + HF `tokenizers` ids for ~60
// strings under four pre-tokenizers, and a SentencePiece BPE vocabulary + `sentencepiece`
// ids (tools/testdata/gen_tokenizer_expectations.py writes both).
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>

#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"
#include "runtime/unicode.h"
#include "tests/common/helpers.h"
#include "tests/runtime/test_tokenizer_json.h"
#include "tests/runtime/tokenizer_fixtures.h"

namespace {

using spw::rt::ChatMessage;
using spw::rt::ChatTemplate;
using spw::rt::StreamDecoder;
using spw::rt::Tokenizer;
using spw::rt::TokenizerData;
using spw::test::valid_utf8;
namespace uni = spw::rt::unicode;

std::string data_path(const std::string& name) { return std::string(SPW_TEST_DATA_DIR) + "/tokenizer/" + name; }

const spw::testjson::Value& bpe_fixture() {
  static const auto v = spw::testjson::load(data_path("smollm2_vocab.json"));
  return v;
}
const spw::testjson::Value& bpe_cases() {
  static const auto v = spw::testjson::load(data_path("smollm2_cases.json"));
  return v;
}

std::string data_dir() { return std::string(SPW_TEST_DATA_DIR) + "/tokenizer"; }
TokenizerData bpe_data(const std::string& pre) { return spw::test::smollm2_tokenizer_data(data_dir(), pre); }

const Tokenizer& bpe_tokenizer(const std::string& pre) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[pre];
  if (!t) t = std::make_unique<Tokenizer>(bpe_data(pre));
  return *t;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (auto i : ids) s += std::to_string(i) + " ";
  return s;
}

// ------------------------------------------------------------------------------- unicode

TEST(TokenizerUnicode, Classes) {
  EXPECT_TRUE(uni::is_letter('a'));
  EXPECT_TRUE(uni::is_letter(0x00E9));   // é
  EXPECT_TRUE(uni::is_letter(0x4F60));   // 你
  EXPECT_TRUE(uni::is_number('7'));
  EXPECT_TRUE(uni::is_number(0x00B2));   // ² (No)
  EXPECT_TRUE(uni::is_number(0x216B));   // Ⅻ (Nl)
  EXPECT_TRUE(uni::is_whitespace(0x3000));
  EXPECT_TRUE(uni::is_whitespace(0x00A0));
  EXPECT_FALSE(uni::is_whitespace(0x200B));  // zero width space is not White_Space
  EXPECT_FALSE(uni::is_whitespace(0x1C));
  EXPECT_EQ(uni::flags(0x1F600), 0);  // emoji: none of the three
  EXPECT_EQ(uni::flags(0x0301), 0);   // combining mark
}

TEST(TokenizerUnicode, Utf8) {
  uint32_t cp;
  EXPECT_EQ(uni::decode_one("\xE2\x82\xAC", 0, &cp), 3);
  EXPECT_EQ(cp, 0x20ACu);
  EXPECT_EQ(uni::decode_one("\xE2\x82", 0, &cp), 1);  // truncated: one invalid byte
  EXPECT_EQ(cp, uni::kInvalidBase + 0xE2);
  EXPECT_EQ(uni::decode_one("\xC0\xAF", 0, &cp), 1);  // overlong
  EXPECT_EQ(uni::incomplete_utf8_tail("ab\xF0\x9F\x98"), 3u);
  EXPECT_EQ(uni::incomplete_utf8_tail("ab\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(uni::incomplete_utf8_tail("\xC3"), 1u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(uni::codepoint_to_byte(uni::byte_to_codepoint(uint8_t(b))), b);
  EXPECT_EQ(uni::byte_to_codepoint(' '), 0x120u);  // 'Ġ'
}

// Every code point encodes to the shortest UTF-8 form (checked against the byte patterns of
// RFC 3629) and decodes back to itself; ASCII letters, digits and whitespace are classed
// exactly; surrogates, values past U+10FFFF and overlong forms of each length decode as one
// invalid byte.
TEST(TokenizerUnicode, EveryCodePointRoundTrips) {
  for (uint32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    const std::string s = uni::to_utf8(c);
    const size_t want_len = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    ASSERT_EQ(s.size(), want_len) << std::hex << c;
    const uint8_t lead_bits[] = {0x00, 0xC0, 0xE0, 0xF0};
    const uint8_t lead_mask[] = {0x80, 0xE0, 0xF0, 0xF8};
    ASSERT_EQ(uint8_t(s[0]) & lead_mask[want_len - 1], lead_bits[want_len - 1]) << std::hex << c;
    uint32_t v = uint8_t(s[0]) & uint8_t(~lead_mask[want_len - 1]);
    for (size_t i = 1; i < want_len; ++i) {
      ASSERT_EQ(uint8_t(s[i]) & 0xC0, 0x80) << std::hex << c;
      v = (v << 6) | (uint8_t(s[i]) & 0x3F);
    }
    ASSERT_EQ(v, c);
    uint32_t cp = 0;
    ASSERT_EQ(uni::decode_one(s, 0, &cp), int(want_len)) << std::hex << c;
    ASSERT_EQ(cp, c);
    ASSERT_EQ(uni::incomplete_utf8_tail(s), 0u) << std::hex << c;
    ASSERT_EQ(uni::incomplete_utf8_tail(s.substr(0, want_len - 1)), want_len - 1) << std::hex << c;
  }
  for (uint32_t c = 0; c < 128; ++c) {
    EXPECT_EQ(uni::is_letter(c), bool(std::isalpha(int(c)))) << c;
    EXPECT_EQ(uni::is_number(c), bool(std::isdigit(int(c)))) << c;
    EXPECT_EQ(uni::is_whitespace(c), bool(std::isspace(int(c)))) << c;
  }
  for (const char* bad : {"\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xC1\xBF", "\xE0\x9F\xBF",
                          "\xF0\x8F\xBF\xBF", "\x80", "\xFF"}) {
    uint32_t cp = 0;
    EXPECT_EQ(uni::decode_one(bad, 0, &cp), 1) << bad;
    EXPECT_EQ(cp, uni::kInvalidBase + uint8_t(bad[0]));
  }
  uint32_t cp = 0;
  EXPECT_EQ(uni::decode_one("\xED\x9F\xBF", 0, &cp), 3) << "U+D7FF, just below the surrogates";
  EXPECT_EQ(uni::decode_one("\xEE\x80\x80", 0, &cp), 3) << "U+E000, just above";
  EXPECT_EQ(uni::incomplete_utf8_tail(""), 0u);
}

TEST(TokenizerPreTokenize, Gpt2Words) {
  std::vector<std::pair<uint32_t, uint32_t>> w;
  std::string text = "hello  world\n\n foo's 123";
  spw::rt::pre_tokenize(spw::rt::PreTokenizer::gpt2, text, w);
  std::vector<std::string> got;
  for (auto [b, e] : w) got.push_back(text.substr(b, e - b));
  EXPECT_EQ(got, (std::vector<std::string>{"hello", " ", " world", "\n\n", " foo", "'s", " 123"}));
  spw::rt::pre_tokenize(spw::rt::PreTokenizer::llama3, "abc 12345\n\n x", w);
  EXPECT_EQ(w.size(), 6u);  // abc | " " | 123 | 45 | "\n\n" | " x"
}

// ----------------------------------------------------------------- byte-level BPE vs HF

TEST(TokenizerBpe, MatchesHfTokenizersOnAllCases) {
  int checked = 0;
  for (const auto& c : bpe_cases()["cases"].arr) {
    const Tokenizer& tok = bpe_tokenizer(c["pre"].str);
    const bool parse_special = c["parse_special"].b;
    const auto expected = c["ids"].as_ids();
    const auto got = tok.encode(c["text"].str, /*add_special=*/false, parse_special);
    EXPECT_EQ(got, expected) << c["name"].str << " pre=" << c["pre"].str << " special=" << parse_special
                             << "\n got " << show(got) << "\n want " << show(expected);
    if (!parse_special) {
      EXPECT_EQ(tok.decode(got), c["text"].str) << c["name"].str;
    }
    ++checked;
  }
  EXPECT_GT(checked, 200);
}

TEST(TokenizerBpe, StreamingDecodeGivesValidUtf8AndTheText) {
  const Tokenizer& tok = bpe_tokenizer("smollm");
  for (const auto& c : bpe_cases()["cases"].arr) {
    if (c["pre"].str != "smollm") continue;
    StreamDecoder stream(tok);
    std::string all;
    for (int32_t id : c["ids"].as_ids()) {
      std::string part = stream.push(id);
      EXPECT_TRUE(valid_utf8(part)) << c["name"].str;
      all += part;
    }
    all += stream.flush();
    EXPECT_EQ(all, c["text"].str) << c["name"].str;
  }
}

TEST(TokenizerBpe, SpecialTokensAndPieces) {
  const Tokenizer& tok = bpe_tokenizer("smollm");
  auto ids = tok.encode("<|im_start|>user", false, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok.token_to_piece(1), "<|im_start|>");
  EXPECT_EQ(tok.token_to_piece(1, /*render_special=*/false), "");
  EXPECT_EQ(tok.decode(ids, false), "user");
  EXPECT_TRUE(tok.is_end_of_generation(2));  // <|im_end|> is EOS
  EXPECT_TRUE(tok.is_end_of_generation(0));  // <|endoftext|>
  EXPECT_FALSE(tok.is_end_of_generation(1));
  EXPECT_EQ(tok.encode("hi", true, false), tok.encode("hi", false, false));  // add_bos = false
  EXPECT_THROW_MSG(tok.token_to_piece(49152), "id = 49152");
  EXPECT_THROW_MSG(tok.token_to_piece(-3), "id = -3");
}

TEST(TokenizerBpe, InvalidUtf8RoundTrips) {
  const Tokenizer& tok = bpe_tokenizer("smollm");
  std::string bad = "ok \xC3\x28 \xE2\x82 end\x80";
  auto ids = tok.encode(bad, false, false);
  EXPECT_EQ(tok.decode(ids), bad);
}

// Random byte strings (often invalid UTF-8) decode back to themselves, streamed or not.
TEST(TokenizerBpe, RandomBytesRoundTrip) {
  const Tokenizer& tok = bpe_tokenizer("smollm");
  std::vector<char> alphabet;  // bytes that have a token (SmolLM2 lacks e.g. 0x04, 0xC0, 0xF5..)
  for (int b = 0; b < 256; ++b)
    if (spw::test::byte_has_token(tok, uint8_t(b))) alphabet.push_back(char(b));
  const std::string words[] = {" the", "'s", "<|im_end|>", "\xF0\x9F\x98\x80", "\xE4\xB8\x96", "  ", "\n"};
  auto rng = spw::test::make_rng();
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    int n = int(rng() % 60);
    for (int i = 0; i < n; ++i)
      s += (rng() % 4 == 0) ? words[rng() % std::size(words)] : std::string(1, alphabet[rng() % alphabet.size()]);
    bool special = rng() % 2;
    auto ids = tok.encode(s, false, special);
    ASSERT_EQ(tok.decode(ids), s) << "iteration " << iter;
    StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    if (valid_utf8(s)) {
      EXPECT_EQ(streamed, s) << "iteration " << iter;
    }
    EXPECT_TRUE(valid_utf8(streamed));
  }
  // A byte without a token becomes <unk> (id 0 for SmolLM2).
  EXPECT_EQ(tok.encode("\x04", false, false), std::vector<int32_t>{0});
}

TEST(TokenizerBpe, LongInputsAreFast) {
  const Tokenizer& tok = bpe_tokenizer("smollm");
  std::string prose;
  for (const auto& c : bpe_cases()["cases"].arr)
    if (c["name"].str == "long_mixed" && c["pre"].str == "smollm") prose = c["text"].str;
  ASSERT_FALSE(prose.empty());
  std::string big;
  while (big.size() < 100000) big += prose;
  for (const std::string& text : {big, std::string(20000, 'a'), std::string(20000, ' '),
                                  std::string(5000, '!') + std::string(5000, '9')}) {
    auto t0 = std::chrono::steady_clock::now();
    auto ids = tok.encode(text, false, false);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(tok.decode(ids), text);
    // Generous bound (debug builds, loaded CI machines); release measures ~10 ms per 100k chars.
    EXPECT_LT(ms, 1000.0) << text.size() << " chars took " << ms << " ms";
  }
}

TEST(TokenizerBpe, RejectsBadData) {
  TokenizerData d = bpe_data("smollm");
  d.model = "bert";
  EXPECT_THROW_MSG(Tokenizer{d}, "tokenizer.ggml.model = 'bert'");
  d = bpe_data("smollm");
  d.bos_id = 99999999;
  EXPECT_THROW_MSG(Tokenizer{d}, "bos_token_id = 99999999");
  d = bpe_data("smollm");
  d.token_types.pop_back();
  EXPECT_THROW_MSG(Tokenizer{d}, "token_type has");
  d = bpe_data("nonsense-pre");
  Tokenizer t(d);
  ASSERT_FALSE(t.warnings().empty());
  EXPECT_NE(t.warnings()[0].find("nonsense-pre"), std::string::npos);
}

// Byte-level BPE adds no prefix space unless the metadata asks for one (then the text is
// encoded as if it began with a space, like a word in the middle of a sentence).
TEST(TokenizerBpe, AddSpacePrefixOnlyWhenTheMetadataSaysSo) {
  TokenizerData d = bpe_data("smollm");
  ASSERT_FALSE(d.add_space_prefix.has_value());
  const Tokenizer plain(d);
  d.add_space_prefix = true;
  const Tokenizer prefixed(d);
  EXPECT_EQ(prefixed.encode("Hello world", false, false), plain.encode(" Hello world", false, false));
  EXPECT_NE(plain.encode("Hello world", false, false), plain.encode(" Hello world", false, false));
  EXPECT_EQ(plain.decode(plain.encode(" Hello world", false, false)), " Hello world") << "the leading space is kept";
}

// A hand-made byte-level vocabulary: merges apply lowest rank first and, within one rank, the
// leftmost pair first; a byte whose token is id 0 is still that token.
TEST(TokenizerBpe, MergesLowestRankThenLeftmost) {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "smollm";
  d.tokens = {"a", "b", "aa", "ab", "aab"};
  d.merges = {"a a", "a b", "aa b"};
  const Tokenizer tok(d);
  EXPECT_EQ(tok.encode("a", false, false), (std::vector<int32_t>{0}));
  EXPECT_EQ(tok.encode("aaa", false, false), (std::vector<int32_t>{2, 0})) << "leftmost a a first";
  EXPECT_EQ(tok.encode("aab", false, false), (std::vector<int32_t>{4})) << "a a (rank 0), then aa b";
  EXPECT_EQ(tok.encode("bab", false, false), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(tok.encode("c", false, false), (std::vector<int32_t>{})) << "no token for 'c' and no <unk>: dropped";
  EXPECT_EQ(tok.decode(std::vector<int32_t>{2, 0, 4}), "aaaaab");
}

// ------------------------------------------------------------------------- chat template

TEST(TokenizerChat, ChatmlMatchesJinjaRendering) {
  const auto& chat = bpe_cases()["chat"];
  ChatTemplate tmpl = ChatTemplate::detect(bpe_fixture()["chat_template"].str);
  ASSERT_EQ(tmpl.kind(), ChatTemplate::Kind::chatml);
  EXPECT_TRUE(tmpl.fallback_reason().empty());
  auto to_messages = [](const spw::testjson::Value& v) {
    std::vector<ChatMessage> m;
    for (const auto& x : v.arr) m.push_back({x["role"].str, x["content"].str});
    return m;
  };
  EXPECT_EQ(tmpl.apply(to_messages(chat["messages"])), chat["prompt"].str);
  EXPECT_EQ(tmpl.apply(to_messages(chat["messages_with_system"])), chat["prompt_with_system"].str);
  int found = 0;
  for (const auto& c : bpe_cases()["cases"].arr) {
    if (c["name"].str != "chat_template") continue;
    EXPECT_EQ(bpe_tokenizer("smollm").encode(chat["prompt"].str, false, true), c["ids"].as_ids());
    ++found;
  }
  EXPECT_EQ(found, 1);
}

TEST(TokenizerChat, OtherFormatsAndFallback) {
  std::vector<ChatMessage> m = {{"user", "Hi"}};
  auto unknown = ChatTemplate::detect("{% for m in messages %}### {{ m.content }}{% endfor %}");
  EXPECT_EQ(unknown.kind(), ChatTemplate::Kind::plain);
  EXPECT_NE(unknown.fallback_reason().find("plain prompt"), std::string::npos);
  EXPECT_EQ(unknown.apply(m), "Hi");
  auto llama3 = ChatTemplate::detect("{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}<|eot_id|>");
  EXPECT_EQ(llama3.apply(m), "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n");
  auto zephyr = ChatTemplate::detect("{{ '<|user|>\\n' }}{{ '<|assistant|>' }}");
  EXPECT_EQ(zephyr.apply(m), "<|user|>\nHi</s>\n<|assistant|>\n");
  auto chatml_no_default = ChatTemplate::detect("{{'<|im_start|>' + message['role'] + '\\n'}}");
  EXPECT_EQ(chatml_no_default.apply(m), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TokenizerChat, DetectionNeedsEveryMarkerAndDefaultsMustBeLiteral) {
  const auto none = ChatTemplate::detect("");
  EXPECT_EQ(none.kind(), ChatTemplate::Kind::plain);
  EXPECT_NE(none.fallback_reason().find("has no tokenizer.chat_template"), std::string::npos) << none.fallback_reason();
  // One of two markers is not enough (another format might share it).
  for (const char* t : {"<|start_header_id|>", "<|eot_id|>", "<|user|>", "<|assistant|>"})
    EXPECT_EQ(ChatTemplate::detect(t).kind(), ChatTemplate::Kind::plain) << t;
  // Llama-3 trims each message's content.
  const std::vector<ChatMessage> spaced = {{"user", " \t Hi there \n"}};
  EXPECT_EQ(ChatTemplate::detect("<|start_header_id|><|eot_id|>").apply(spaced, false),
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>");
  // A default system prompt only when it is literal text: a Jinja expression in any of three
  // spellings is none.
  const std::string head = "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n";
  const std::vector<ChatMessage> m = {{"user", "Hi"}};
  EXPECT_EQ(ChatTemplate::detect(head + "Be brief.<|im_end|>\n' }}{% endif %}").apply(m, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  for (const char* expr : {"{{ name }}", "' + name", "name + '"}) {
    const auto t = ChatTemplate::detect(head + "You are " + expr + "<|im_end|>\n' }}{% endif %}");
    EXPECT_EQ(t.kind(), ChatTemplate::Kind::chatml) << expr;
    EXPECT_EQ(t.apply(m, false), "<|im_start|>user\nHi<|im_end|>\n") << expr;
  }
}

// ------------------------------------------------------------------ SentencePiece BPE

TokenizerData spm_data() { return spw::test::spm_tokenizer_data(data_dir()); }

TEST(TokenizerSpm, MatchesSentencePiece) {
  static const auto v = spw::testjson::load(data_path("spm_synthetic.json"));
  Tokenizer tok(spm_data());
  int checked = 0;
  for (const auto& c : v["cases"].arr) {
    auto expected = c["ids"].as_ids();
    auto got = tok.encode(c["text"].str, /*add_special=*/false, false);
    EXPECT_EQ(got, expected) << c["name"].str << "\n got " << show(got) << "\n want " << show(expected);
    auto with_bos = tok.encode(c["text"].str, true, false);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], 1);
    if (c["decoded"].kind == spw::testjson::Value::string) {
      EXPECT_EQ(tok.decode(got), c["decoded"].str) << c["name"].str;
    }
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

TEST(TokenizerSpm, ByteFallbackPiecesAndStreaming) {
  Tokenizer tok(spm_data());
  std::string text = "\xE4\xBD\xA0 ok \xF0\x9F\x98\x80";  // 你 ok 😀: not in the vocabulary
  auto ids = tok.encode(text, true, false);
  EXPECT_EQ(tok.decode(ids, /*render_special=*/false), text);
  EXPECT_EQ(tok.decode(ids, true), "<s> " + text);  // BOS rendered: the prefix space stays
  StreamDecoder stream(tok, false);
  std::string streamed;
  int empty_pushes = 0;
  for (int32_t id : ids) {
    std::string part = stream.push(id);
    EXPECT_TRUE(valid_utf8(part));
    empty_pushes += part.empty();
    streamed += part;
  }
  EXPECT_GT(empty_pushes, 2);  // the <0xXX> bytes of one character are held back
  EXPECT_EQ(streamed + stream.flush(), " " + text);
  auto byte_id = tok.find_token("<0x41>");
  ASSERT_TRUE(byte_id);
  EXPECT_EQ(tok.token_to_piece(*byte_id), "A");
  EXPECT_EQ(tok.token_to_piece(*tok.find_token("\xE2\x96\x81" "world")), " world");
}

TEST(TokenizerSpm, UserDefinedAndControlTokens) {
  Tokenizer tok(spm_data());
  auto sep = tok.find_token("<sep>");
  ASSERT_TRUE(sep);
  auto ids = tok.encode("a<sep>b", false, false);  // user-defined: matched without parse_special
  EXPECT_NE(std::find(ids.begin(), ids.end(), *sep), ids.end());
  auto as_text = tok.encode("</s>", false, false);
  EXPECT_TRUE(std::find(as_text.begin(), as_text.end(), 2) == as_text.end());
  EXPECT_EQ(tok.encode("</s>", false, true), std::vector<int32_t>{2});
}

// A hand-made SentencePiece vocabulary: byte tokens are <0xXX> with exactly two hex digits of
// either case; the first of two tokens for one byte is the one encoding uses; a byte-typed
// token of another shape is its own text. Empty vocabularies and token types outside 0..6 are
// rejected by name.
TEST(TokenizerSpm, ByteTokensAreParsedStrictly) {
  TokenizerData d;
  d.model = "llama";
  d.tokens = {"<unk>", "<0x0a>", "<0x0A>", "<0xAb>", "<0x41>z", "<0x4>", "\xE2\x96\x81"};
  d.token_types = {2, 6, 6, 6, 6, 6, 1};
  d.unk_id = 0;
  const Tokenizer tok(d);
  EXPECT_EQ(tok.token_to_piece(1), "\n");
  EXPECT_EQ(tok.token_to_piece(2), "\n");
  EXPECT_EQ(tok.token_to_piece(3), "\xAB");
  EXPECT_EQ(tok.token_to_piece(4), "<0x41>z") << "seven characters: not a byte token";
  EXPECT_EQ(tok.token_to_piece(5), "<0x4>");
  EXPECT_EQ(tok.encode("\n", false, false), (std::vector<int32_t>{6, 1})) << "prefix space, then the first 0x0a";
  EXPECT_EQ(tok.encode("\xAB" "A", false, false), (std::vector<int32_t>{6, 3, 0})) << "no byte token for 'A': unk";
  EXPECT_EQ(tok.decode(std::vector<int32_t>{6, 1}), "\n") << "the prefix space comes off again";
  TokenizerData no_prefix = d;  // add_space_prefix = false: no space added, none stripped
  no_prefix.add_space_prefix = false;
  const Tokenizer raw(no_prefix);
  EXPECT_EQ(raw.encode("\n", false, false), (std::vector<int32_t>{1}));
  EXPECT_EQ(raw.decode(std::vector<int32_t>{6, 1}), " \n");
  TokenizerData bad = d;
  bad.tokens.clear();
  bad.token_types.clear();
  EXPECT_THROW_MSG(Tokenizer{bad}, "Tokenizer: tokenizer.ggml.tokens has 0 entries");
  bad = d;
  bad.token_types[3] = 7;
  EXPECT_THROW_MSG(Tokenizer{bad}, "Tokenizer: token_type[3] = 7: must be 0..6");
  bad.token_types[3] = -1;
  EXPECT_THROW_MSG(Tokenizer{bad}, "token_type[3] = -1: must be 0..6");
}

// SentencePiece BPE merges the highest-scored pair first (ties: the leftmost), and a piece
// merged into its left neighbour takes no further part: "abc" with "ab" preferred is ab + c,
// never ab with a stale b + c merge on top.
TEST(TokenizerSpm, MergesHighestScoreFirstAndMergedPiecesAreGone) {
  auto encode = [](float ab, float bc, std::string_view text) {
    TokenizerData d;
    d.model = "llama";
    d.tokens = {"<unk>", "a", "b", "c", "ab", "bc"};
    d.scores = {0.f, -5.f, -5.f, -5.f, ab, bc};
    d.token_types = {2, 1, 1, 1, 1, 1};
    d.unk_id = 0;
    d.add_space_prefix = false;
    return Tokenizer(d).encode(text, false, false);
  };
  EXPECT_EQ(encode(-1.f, -2.f, "abc"), (std::vector<int32_t>{4, 3})) << "ab first";
  EXPECT_EQ(encode(-2.f, -1.f, "abc"), (std::vector<int32_t>{1, 5})) << "bc first";
  EXPECT_EQ(encode(-1.f, -1.f, "abc"), (std::vector<int32_t>{4, 3})) << "a tie: the leftmost";
  EXPECT_EQ(encode(-1.f, -2.f, "abcabc"), (std::vector<int32_t>{4, 3, 4, 3}));
  EXPECT_EQ(encode(-2.f, -1.f, "bcab"), (std::vector<int32_t>{5, 4}));
}

TEST(TokenizerSpm, RandomBytesRoundTrip) {
  Tokenizer tok(spm_data());
  // No special tokens here: after one, SentencePiece (like llama.cpp and HF's legacy Llama
  // tokenizer) adds a prefix space again, so text around specials does not round-trip.
  EXPECT_EQ(tok.decode(tok.encode("a<sep>b", true, false), false), "a<sep> b");
  const std::string words[] = {" the", "\xC3\xA9", "\xF0\x9F\x98\x80", "  ", "\n", "2024", "<0x41>"};
  auto rng = spw::test::make_rng();
  for (int iter = 0; iter < 300; ++iter) {
    std::string s;
    int n = int(rng() % 50);
    for (int i = 0; i < n; ++i)
      s += (rng() % 3 == 0) ? words[rng() % std::size(words)] : std::string(1, char(rng() % 256));
    auto ids = tok.encode(s, true, rng() % 2 == 0);
    ASSERT_EQ(tok.decode(ids, /*render_special=*/false), s) << "iteration " << iter;
  }
}

TEST(TokenizerSpm, LongInputIsFast) {
  Tokenizer tok(spm_data());
  std::string text;
  while (text.size() < 100000) text += "The quick brown fox jumps over the lazy dog. ";
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok.encode(text, false, false);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_LT(ms, 1000.0);
}

}  // namespace

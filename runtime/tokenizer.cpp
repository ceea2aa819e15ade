// Tokenizer construction, special-token partitioning, decoding and streaming (tokenizer.h).
// The two encoders live in tokenizer_bpe.cpp (byte-level BPE) and tokenizer_spm.cpp
// (SentencePiece BPE); from_gguf() in tokenizer_gguf.cpp.
#include "runtime/tokenizer.h"

#include <algorithm>

#include <fmt/format.h>

#include "kernels/common/error.h"
#include "runtime/unicode.h"

namespace spw::rt {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 "▁"

// Control tokens that end a turn in the chat formats we know (llama.cpp treats them as EOG).
constexpr std::string_view kEndOfTurnTexts[] = {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>",
                                                "<|endoftext|>", "<end_of_turn>", "<|end|>",
                                                "</s>"};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xAB>" -> 0xAB, else -1.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int hi = hex_value(t[3]), lo = hex_value(t[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos);
  s = std::move(out);
}

}  // namespace

Tokenizer::Tokenizer(TokenizerData data) : data_(std::move(data)) {
  const size_t n = data_.tokens.size();
  SPW_CHECK(data_.model == "gpt2" || data_.model == "llama",
            "Tokenizer: tokenizer.ggml.model = '{}': supported are 'gpt2' (byte-level BPE) and "
            "'llama' (SentencePiece BPE)", data_.model);
  SPW_CHECK(n > 0 && n < (size_t(1) << 31), "Tokenizer: tokenizer.ggml.tokens has {} entries", n);
  SPW_CHECK(data_.scores.empty() || data_.scores.size() == n,
            "Tokenizer: tokenizer.ggml.scores has {} entries, tokens has {}", data_.scores.size(), n);
  SPW_CHECK(data_.token_types.empty() || data_.token_types.size() == n,
            "Tokenizer: tokenizer.ggml.token_type has {} entries, tokens has {}",
            data_.token_types.size(), n);
  if (data_.token_types.empty()) data_.token_types.assign(n, int32_t(TokenType::normal));
  for (size_t i = 0; i < n; ++i)
    SPW_CHECK(data_.token_types[i] >= 0 && data_.token_types[i] <= 6,
              "Tokenizer: token_type[{}] = {}: must be 0..6", i, data_.token_types[i]);
  auto check_special = [&](int32_t id, const char* key) {
    SPW_CHECK(id >= -1 && id < int32_t(n), "Tokenizer: tokenizer.ggml.{} = {}: not a token id (n_vocab {})",
              key, id, n);
  };
  check_special(data_.bos_id, "bos_token_id");
  check_special(data_.eos_id, "eos_token_id");
  check_special(data_.unk_id, "unknown_token_id");
  check_special(data_.pad_id, "padding_token_id");
  for (int32_t id : data_.extra_eog_ids) check_special(id, "eog_token_id");

  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) token_to_id_[data_.tokens[i]] = int32_t(i);

  byte_level_ = data_.model == "gpt2";
  byte_token_.fill(-1);
  if (byte_level_) {
    add_space_prefix_ = data_.add_space_prefix.value_or(false);
    std::string warning;
    pre_ = pre_tokenizer_from_name(data_.pre, &warning);
    if (!warning.empty()) warnings_.push_back(warning);
    ignore_merges_ = pre_ == PreTokenizer::llama3;
    for (int b = 0; b < 256; ++b)
      if (auto id = find_token(unicode::to_utf8(unicode::byte_to_codepoint(uint8_t(b))))) byte_token_[b] = *id;
    merges_.reserve(data_.merges.size());
    size_t skipped = 0;
    for (size_t rank = 0; rank < data_.merges.size(); ++rank) {
      const std::string& m = data_.merges[rank];
      size_t space = m.find(' ', 1);
      std::optional<int32_t> left, right, result;
      if (space != std::string::npos) {
        left = find_token(std::string_view(m).substr(0, space));
        right = find_token(std::string_view(m).substr(space + 1));
        result = find_token(m.substr(0, space) + m.substr(space + 1));
      }
      if (!left || !right || !result) {
        ++skipped;
        continue;
      }
      uint64_t key = (uint64_t(uint32_t(*left)) << 32) | uint32_t(*right);
      merges_.try_emplace(key, Merge{int32_t(rank), *result});  // the first (lowest) rank wins
    }
    if (skipped)
      warnings_.push_back(fmt::format("{} of {} merges name tokens not in the vocabulary: ignored",
                                      skipped, data_.merges.size()));
  } else {
    add_space_prefix_ = data_.add_space_prefix.value_or(true);
    if (data_.scores.empty()) {
      data_.scores.assign(n, 0.0f);
      warnings_.push_back("tokenizer.ggml.scores missing: all merges have equal priority");
    }
    for (size_t i = 0; i < n; ++i) {
      int b = parse_byte_token(data_.tokens[i]);
      if (b >= 0 && byte_token_[b] < 0) byte_token_[b] = int32_t(i);
    }
  }

  for (size_t i = 0; i < n; ++i) {
    auto type = TokenType(data_.token_types[i]);
    const std::string& t = data_.tokens[i];
    if (t.empty()) continue;
    if (type == TokenType::control || type == TokenType::user_defined)
      specials_by_first_byte_[uint8_t(t[0])].push_back(int32_t(i));
    if (type == TokenType::control &&
        std::find(std::begin(kEndOfTurnTexts), std::end(kEndOfTurnTexts), t) != std::end(kEndOfTurnTexts))
      eog_ids_.push_back(int32_t(i));
  }
  for (auto& bucket : specials_by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(), [&](int32_t a, int32_t b) {
      return data_.tokens[a].size() > data_.tokens[b].size();
    });
  if (data_.eos_id >= 0) eog_ids_.push_back(data_.eos_id);
  for (int32_t id : data_.extra_eog_ids)
    if (id >= 0) eog_ids_.push_back(id);
}

void Tokenizer::check_id(int32_t id, const char* what) const {
  SPW_CHECK(id >= 0 && id < n_vocab(), "Tokenizer::{}: id = {}: not in [0, {})", what, id, n_vocab());
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id, "token_text");
  return data_.tokens[size_t(id)];
}

TokenType Tokenizer::token_type(int32_t id) const {
  check_id(id, "token_type");
  return TokenType(data_.token_types[size_t(id)]);
}

std::optional<int32_t> Tokenizer::find_token(std::string_view text) const {
  auto it = token_to_id_.find(text);
  if (it == token_to_id_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && data_.add_bos && data_.bos_id >= 0) out.push_back(data_.bos_id);
  bool prev_special = true;  // SentencePiece adds its prefix space to the first text only
  size_t fragment_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    int32_t hit = -1;
    for (int32_t id : specials_by_first_byte_[uint8_t(text[pos])]) {
      if (!parse_special && TokenType(data_.token_types[size_t(id)]) == TokenType::control) continue;
      if (text.substr(pos).starts_with(data_.tokens[size_t(id)])) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      ++pos;
      continue;
    }
    if (pos > fragment_start) {
      encode_text(text.substr(fragment_start, pos - fragment_start), prev_special, out);
    }
    out.push_back(hit);
    prev_special = true;
    pos += data_.tokens[size_t(hit)].size();
    fragment_start = pos;
  }
  if (fragment_start < text.size()) encode_text(text.substr(fragment_start), prev_special, out);
  if (add_special && data_.add_eos && data_.eos_id >= 0) out.push_back(data_.eos_id);
  return out;
}

void Tokenizer::encode_text(std::string_view text, bool after_special, std::vector<int32_t>& out) const {
  if (!byte_level_) {
    std::string s;
    s.reserve(text.size() + 8);
    if (add_space_prefix_ && after_special) s += ' ';
    s += text;
    replace_all(s, " ", kSpmSpace);
    encode_spm(s, out);
    return;
  }
  thread_local std::vector<std::pair<uint32_t, uint32_t>> words;
  std::string prefixed;
  if (add_space_prefix_ && after_special) {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
  }
  pre_tokenize(pre_, text, words);
  for (auto [b, e] : words) encode_bpe_word(text.substr(b, e - b), out);
}

void Tokenizer::push_bytes_fallback(std::string_view bytes, std::vector<int32_t>& out) const {
  for (char c : bytes) {
    int32_t id = byte_token_[uint8_t(c)];
    if (id >= 0) out.push_back(id);
    else if (data_.unk_id >= 0) out.push_back(data_.unk_id);
  }
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  check_id(id, "token_to_piece");
  const std::string& text = data_.tokens[size_t(id)];
  switch (TokenType(data_.token_types[size_t(id)])) {
    case TokenType::control: return render_special ? text : std::string();
    case TokenType::user_defined:
    case TokenType::unknown: return text;
    case TokenType::byte: {
      int b = parse_byte_token(text);
      if (b >= 0) return std::string(1, char(b));
      return text;
    }
    default: break;
  }
  if (!byte_level_) {
    std::string s = text;
    replace_all(s, kSpmSpace, " ");
    return s;
  }
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    uint32_t cp;
    int len = unicode::decode_one(text, pos, &cp);
    int b = cp < unicode::kInvalidBase ? unicode::codepoint_to_byte(cp) : -1;
    if (b >= 0) out += char(b);
    else out.append(text, pos, size_t(len));  // not a byte image: keep as written
    pos += size_t(len);
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool strip_space = !byte_level_ && add_space_prefix_;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (piece.empty()) continue;
    if (strip_space && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  return out;
}

namespace {

// Copies `s` with every invalid UTF-8 byte replaced by U+FFFD.
std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp;
    int len = unicode::decode_one(s, pos, &cp);
    if (cp >= unicode::kInvalidBase) out += "\xEF\xBF\xBD";
    else out.append(s, pos, size_t(len));
    pos += size_t(len);
  }
  return out;
}

}  // namespace

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_to_piece(id, render_special_);
  size_t hold = unicode::incomplete_utf8_tail(pending_);
  std::string ready = sanitize_utf8(std::string_view(pending_).substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  return ready;
}

std::string StreamDecoder::flush() {
  std::string rest = sanitize_utf8(pending_);
  pending_.clear();
  return rest;
}

}  // namespace spw::rt

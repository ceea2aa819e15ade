// Hand-written pre-tokenizer regexes (see tokenizer_pretokenize.h). Each branch below is
// one alternative of the regex, tried in the regex's order; the first that matches wins,
// exactly as a leftmost-first regex engine would. The text is decoded once into code points
// and class flags so every test is an array read.
#include "runtime/tokenizer_pretokenize.h"

#include "runtime/unicode.h"

namespace spw::rt {

namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kWhitespace;

constexpr uint32_t kNone = 0xFFFFFFFF;

struct Decoded {
  std::vector<uint32_t> cps;
  std::vector<uint32_t> offsets;  // byte offset of each code point, plus the end
  std::vector<uint8_t> flags;
};

void decode_text(std::string_view text, Decoded& d) {
  d.cps.clear();
  d.offsets.clear();
  d.flags.clear();
  d.cps.reserve(text.size());
  d.offsets.reserve(text.size() + 1);
  d.flags.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp;
    int len = unicode::decode_one(text, pos, &cp);
    d.cps.push_back(cp);
    d.offsets.push_back(uint32_t(pos));
    d.flags.push_back(cp >= unicode::kInvalidBase ? 0 : unicode::flags(cp));
    pos += size_t(len);
  }
  d.offsets.push_back(uint32_t(text.size()));
}

// Splits code points [begin, end) into words (code point indices) appended to `out`.
class Scanner {
 public:
  Scanner(const Decoded& d, size_t begin, size_t end) : d_(d), end_(end), pos_(begin) {}

  uint32_t cp(size_t i) const { return i < end_ ? d_.cps[i] : kNone; }
  // kNone flags (out of range) never equal a class and are not "other" either.
  int flag(size_t i) const { return i < end_ ? d_.flags[i] : -1; }
  static bool is_contraction_letter(uint32_t c) { return c == 's' || c == 't' || c == 'm' || c == 'd'; }
  static uint32_t lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

  // 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive. Returns length or 0.
  size_t contraction(bool ignore_case) const {
    if (cp(pos_) != '\'') return 0;
    uint32_t c1 = cp(pos_ + 1), c2 = cp(pos_ + 2);
    if (ignore_case) c1 = lower(c1), c2 = lower(c2);
    if (is_contraction_letter(c1)) return 2;
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
  }

  size_t run_of(size_t from, int f) const {
    size_t p = from;
    while (flag(p) == f) ++p;
    return p;
  }

  void gpt2(std::vector<std::pair<size_t, size_t>>& out) {
    while (pos_ < end_) {
      const uint32_t c = cp(pos_);
      const int f = flag(pos_), f1 = flag(pos_ + 1);
      size_t stop = 0;
      if (size_t n = contraction(false)) {
        stop = pos_ + n;
      } else if (f == kLetter || (c == ' ' && f1 == kLetter)) {  //  ?\p{L}+
        stop = run_of(pos_ + 1, kLetter);
      } else if (f == kNumber || (c == ' ' && f1 == kNumber)) {  //  ?\p{N}+
        stop = run_of(pos_ + 1, kNumber);
      } else if (f == 0 || (c == ' ' && f1 == 0)) {  //  ?[^\s\p{L}\p{N}]+
        stop = run_of(pos_ + 1, 0);
      } else {  // \s+(?!\S)|\s+
        size_t ws_end = run_of(pos_, kWhitespace);
        stop = (ws_end - pos_ > 1 && ws_end < end_) ? ws_end - 1 : ws_end;
      }
      out.emplace_back(pos_, stop);
      pos_ = stop;
    }
  }

  void llama3(size_t max_digits, std::vector<std::pair<size_t, size_t>>& out) {
    while (pos_ < end_) {
      const uint32_t c = cp(pos_);
      const int f = flag(pos_), f1 = flag(pos_ + 1);
      size_t stop = 0;
      if (size_t n = contraction(true)) {
        stop = pos_ + n;
      } else if (f == kLetter || (c != '\r' && c != '\n' && f != kNumber && f1 == kLetter)) {
        stop = run_of(pos_ + 1, kLetter);  // [^\r\n\p{L}\p{N}]?\p{L}+
      } else if (f == kNumber) {  // \p{N}{1,max_digits}
        stop = pos_;
        while (flag(stop) == kNumber && stop - pos_ < max_digits) ++stop;
      } else if (f == 0 || (c == ' ' && f1 == 0)) {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
        stop = run_of(pos_ + 1, 0);
        while (cp(stop) == '\r' || cp(stop) == '\n') ++stop;
      } else {
        size_t ws_end = pos_, last_newline_end = 0;
        for (; flag(ws_end) == kWhitespace; ++ws_end)
          if (cp(ws_end) == '\r' || cp(ws_end) == '\n') last_newline_end = ws_end + 1;
        if (last_newline_end) stop = last_newline_end;  // \s*[\r\n]+
        else if (ws_end - pos_ > 1 && ws_end < end_) stop = ws_end - 1;  // \s+(?!\S)
        else stop = ws_end;  // \s+
      }
      out.emplace_back(pos_, stop);
      pos_ = stop;
    }
  }

 private:
  const Decoded& d_;
  size_t end_;
  size_t pos_;
};

}  // namespace

PreTokenizer pre_tokenizer_from_name(std::string_view name, std::string* warning) {
  if (warning) warning->clear();
  // No name (old converters, tiny test models) or "default": the original GPT-2 regex.
  for (auto n : {"", "default", "gpt2", "gpt-2", "phi-2", "jina-es", "jina-de"})
    if (name == n) return PreTokenizer::gpt2;
  for (auto n : {"smollm", "starcoder", "refact", "codeshell", "exaone", "command-r"})
    if (name == n) return PreTokenizer::smollm;
  for (auto n : {"llama3", "llama-v3", "llama-bpe", "falcon3"})
    if (name == n) return PreTokenizer::llama3;
  for (auto n : {"qwen2", "deepseek-r1-qwen"})
    if (name == n) return PreTokenizer::qwen2;
  if (warning)
    *warning = "tokenizer.ggml.pre = '" + std::string(name) +
               "' is not known: using the GPT-2 pre-tokenizer regex; token ids may differ from "
               "the model's reference tokenizer";
  return PreTokenizer::gpt2;
}

const char* pre_tokenizer_name(PreTokenizer p) {
  switch (p) {
    case PreTokenizer::gpt2: return "gpt2";
    case PreTokenizer::smollm: return "smollm";
    case PreTokenizer::llama3: return "llama3";
    case PreTokenizer::qwen2: return "qwen2";
  }
  return "?";
}

void pre_tokenize(PreTokenizer p, std::string_view text,
                  std::vector<std::pair<uint32_t, uint32_t>>& words) {
  words.clear();
  thread_local Decoded d;
  thread_local std::vector<std::pair<size_t, size_t>> spans;
  decode_text(text, d);
  spans.clear();
  const size_t n = d.cps.size();
  switch (p) {
    case PreTokenizer::gpt2: Scanner(d, 0, n).gpt2(spans); break;
    case PreTokenizer::llama3: Scanner(d, 0, n).llama3(3, spans); break;
    case PreTokenizer::qwen2: Scanner(d, 0, n).llama3(1, spans); break;
    case PreTokenizer::smollm: {
      size_t start = 0;
      for (size_t i = 0; i <= n; ++i) {
        if (i < n && d.flags[i] != kNumber) continue;
        if (i > start) Scanner(d, start, i).gpt2(spans);
        if (i < n) spans.emplace_back(i, i + 1);
        start = i + 1;
      }
      break;
    }
  }
  words.reserve(spans.size());
  for (auto [b, e] : spans) words.emplace_back(d.offsets[b], d.offsets[e]);
}

}  // namespace spw::rt

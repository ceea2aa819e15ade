// JSON-lines reader (see json_line.h).
#include "decode/json_line.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "kernels/common/error.h"
#include "runtime/unicode.h"

namespace spw::decode {

namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  Parser(std::string_view text, const std::string& where) : s_(text), where_(where) {}

  JsonValue document() {
    JsonValue v = value(0);
    skip_space();
    if (pos_ != s_.size()) error("unexpected '{}' after the value", s_[pos_]);
    return v;
  }

 private:
  template <typename... A>
  [[noreturn]] void error(fmt::format_string<A...> f, A&&... a) const {
    fail("{}: byte {}: {}", where_, pos_ + 1, fmt::format(f, std::forward<A>(a)...));
  }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    skip_space();
    if (pos_ >= s_.size()) error("unexpected end of the line");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) error("expected '{}', found '{}'", c, s_[pos_]);
    ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // The elements of an object or array, its opening bracket read: `element` for each, separated
  // by commas, up to `close`.
  template <typename F>
  void elements(char close, F&& element) {
    if (peek() == close) {
      ++pos_;
      return;
    }
    while (true) {
      element();
      if (peek() != ',') break;
      ++pos_;
    }
    expect(close);
  }

  JsonValue value(int depth) {
    if (depth >= kMaxDepth) error("nested deeper than {} levels", kMaxDepth);
    JsonValue v;
    const char c = peek();
    if (c == '{') {
      v.type = JsonValue::Type::object;
      ++pos_;
      elements('}', [&] {
        if (peek() != '"') error("expected a member name in quotes, found '{}'", s_[pos_]);
        std::string key = string();
        expect(':');
        JsonValue member = value(depth + 1);
        v.members.push_back({std::move(key), std::move(member)});
      });
      return v;
    }
    if (c == '[') {
      v.type = JsonValue::Type::array;
      ++pos_;
      elements(']', [&] { v.items.push_back(value(depth + 1)); });
      return v;
    }
    if (c == '"') {
      v.type = JsonValue::Type::string;
      v.string = string();
      return v;
    }
    if (literal("true") || literal("false")) {
      v.type = JsonValue::Type::boolean;
      v.boolean = s_[pos_ - 4] == 't';  // (the last 4 bytes are "true" or "alse")
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = JsonValue::Type::number;
      v.number = number();
      return v;
    }
    error("unexpected '{}' where a value was expected", c);
  }

  double number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (s_[pos_] == '-') ++pos_;
    const size_t int_start = pos_;
    const size_t int_digits = digits();
    if (int_digits == 0) error("a number needs digits");
    if (int_digits > 1 && s_[int_start] == '0') error("a number cannot start with 0");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) error("a number needs digits after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) error("a number needs digits in its exponent");
    }
    const std::string text(s_.substr(start, pos_ - start));
    return std::strtod(text.c_str(), nullptr);  // (grammar checked above; out of range: +-inf)
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) error("\\u needs 4 hex digits");
    unsigned x = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) error("'{}' is not a hex digit", h);
      x = x * 16 + static_cast<unsigned>(d);
    }
    return x;
  }

  std::string string() {
    ++pos_;  // the opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) error("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("a control character (0x{:02x}) inside a string", static_cast<unsigned char>(c));
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: its low half must follow
            if (!literal("\\u")) error("a high surrogate \\u{:04x} without its low half", cp);
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) error("\\u{:04x} after a high surrogate is not a low one", lo);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            error("a low surrogate \\u{:04x} without its high half", cp);
          }
          rt::unicode::append_utf8(out, cp);
          break;
        }
        default: error("unknown escape '\\{}'", e);
      }
    }
  }

  std::string_view s_;
  const std::string& where_;
  size_t pos_ = 0;
};

const JsonValue& member(const JsonValue& obj, std::string_view key, const std::string& where) {
  const JsonValue* v = obj.find(key);
  SPW_CHECK(v != nullptr, "{}: no \"{}\"", where, key);
  return *v;
}

}  // namespace

const JsonValue* JsonValue::find(std::string_view key) const {
  if (type != Type::object) return nullptr;
  for (const auto& [k, v] : members)
    if (k == key) return &v;
  return nullptr;
}

JsonValue parse_json(std::string_view text, const std::string& where) { return Parser(text, where).document(); }

std::string json_string(const JsonValue& obj, std::string_view key, const std::string& where) {
  const JsonValue& v = member(obj, key, where);
  SPW_CHECK(v.type == JsonValue::Type::string, "{}: \"{}\" is not a string", where, key);
  return v.string;
}

std::vector<int32_t> json_int_array(const JsonValue& obj, std::string_view key, const std::string& where) {
  const JsonValue& v = member(obj, key, where);
  SPW_CHECK(v.type == JsonValue::Type::array, "{}: \"{}\" is not an array", where, key);
  std::vector<int32_t> out;
  out.reserve(v.items.size());
  for (size_t i = 0; i < v.items.size(); ++i) {
    const JsonValue& x = v.items[i];
    SPW_CHECK(x.type == JsonValue::Type::number && std::nearbyint(x.number) == x.number &&
                  x.number >= std::numeric_limits<int32_t>::min() && x.number <= std::numeric_limits<int32_t>::max(),
              "{}: \"{}\"[{}] is not a 32-bit integer", where, key, i);
    out.push_back(static_cast<int32_t>(x.number));
  }
  return out;
}

std::vector<JsonLine> read_json_lines(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  SPW_CHECK(in.good(), "{} '{}': cannot open", what, path);
  std::vector<JsonLine> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (n == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // a UTF-8 byte order mark
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = fmt::format("{} '{}' line {}", what, path, n);
    JsonValue v = parse_json(line, where);
    SPW_CHECK(v.type == JsonValue::Type::object, "{}: not a JSON object", where);
    out.push_back({n, std::move(v), std::move(where)});
  }
  return out;
}

}  // namespace spw::decode

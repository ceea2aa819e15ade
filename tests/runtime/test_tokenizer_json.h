// Minimal JSON reader for the tokenizer tests' committed data (tests/data/tokenizer/*.json,
// written by tools/testdata/gen_tokenizer_expectations.py). Enough JSON for that data:
// objects, arrays, strings with escapes (incl. surrogate pairs), numbers, bools, null.
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/unicode.h"

namespace spw::testjson {

struct Value {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Value> arr;
  std::map<std::string, Value> obj;

  const Value& operator[](const std::string& k) const {
    auto it = obj.find(k);
    if (it == obj.end()) throw std::runtime_error("json: no key " + k);
    return it->second;
  }
  bool has(const std::string& k) const { return obj.count(k) != 0; }
  int64_t as_int() const { return int64_t(num); }
  std::vector<int32_t> as_ids() const {
    std::vector<int32_t> v;
    for (const auto& x : arr) v.push_back(int32_t(x.num));
    return v;
  }
};

class Parser {
 public:
  explicit Parser(std::string text) : s_(std::move(text)) {}
  Value parse() {
    Value v = value();
    ws();
    if (p_ != s_.size()) fail("trailing data");
    return v;
  }

 private:
  [[noreturn]] void fail(const char* what) {
    throw std::runtime_error(std::string("json: ") + what + " at " + std::to_string(p_));
  }
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\t')) ++p_;
  }
  bool eat(char c) {
    ws();
    if (p_ < s_.size() && s_[p_] == c) return ++p_, true;
    return false;
  }
  Value value() {
    ws();
    if (p_ >= s_.size()) fail("unexpected end");
    Value v;
    char c = s_[p_];
    if (c == '{') {
      ++p_;
      v.kind = Value::object;
      if (eat('}')) return v;
      do {
        ws();
        std::string k = string_body();
        if (!eat(':')) fail("expected ':'");
        v.obj[k] = value();
      } while (eat(','));
      if (!eat('}')) fail("expected '}'");
    } else if (c == '[') {
      ++p_;
      v.kind = Value::array;
      if (eat(']')) return v;
      do v.arr.push_back(value());
      while (eat(','));
      if (!eat(']')) fail("expected ']'");
    } else if (c == '"') {
      v.kind = Value::string;
      v.str = string_body();
    } else if (s_.compare(p_, 4, "true") == 0) {
      v.kind = Value::boolean, v.b = true, p_ += 4;
    } else if (s_.compare(p_, 5, "false") == 0) {
      v.kind = Value::boolean, p_ += 5;
    } else if (s_.compare(p_, 4, "null") == 0) {
      p_ += 4;
    } else {
      char* end = nullptr;
      v.kind = Value::number;
      v.num = std::strtod(s_.c_str() + p_, &end);
      if (end == s_.c_str() + p_) fail("bad value");
      p_ = size_t(end - s_.c_str());
    }
    return v;
  }
  uint32_t hex4() {
    if (p_ + 4 > s_.size()) fail("short \\u escape");
    uint32_t v = uint32_t(std::stoul(s_.substr(p_, 4), nullptr, 16));
    p_ += 4;
    return v;
  }
  std::string string_body() {
    if (p_ >= s_.size() || s_[p_] != '"') fail("expected string");
    ++p_;
    std::string out;
    while (true) {
      if (p_ >= s_.size()) fail("unterminated string");
      char c = s_[p_++];
      if (c == '"') break;
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = s_[p_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(p_, 2, "\\u") == 0) {
            p_ += 2;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          }
          spw::rt::unicode::append_utf8(out, cp);
          break;
        }
        default: out += e;
      }
    }
    return out;
  }
  std::string s_;
  size_t p_ = 0;
};

inline Value load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return Parser(ss.str()).parse();
}

}  // namespace spw::testjson

// The tokenizer tests' committed data (tests/data/tokenizer/*.json, written by
// tools/testdata/gen_tokenizer_expectations.py) read with the project's JSON reader
// (decode/json_line.h), as a tree with keyed lookups.
#pragma once

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "decode/json_line.h"

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

inline Value convert(const decode::JsonValue& j) {
  using T = decode::JsonValue::Type;
  Value v;
  switch (j.type) {
    case T::null: break;
    case T::boolean: v.kind = Value::boolean, v.b = j.boolean; break;
    case T::number: v.kind = Value::number, v.num = j.number; break;
    case T::string: v.kind = Value::string, v.str = j.string; break;
    case T::array:
      v.kind = Value::array;
      for (const auto& x : j.items) v.arr.push_back(convert(x));
      break;
    case T::object:
      v.kind = Value::object;
      for (const auto& [k, x] : j.members) v.obj.emplace(k, convert(x));  // (the first of a repeated key)
      break;
  }
  return v;
}

inline Value load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return convert(decode::parse_json(ss.str(), path));
}

}  // namespace spw::testjson

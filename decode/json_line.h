// JSON lines (one JSON object per line) as the CLI reads them: prompt sets ({"id", "prompt"}
// per line, bench/prompts/*.jsonl) and recorded runs (`generate --json`, read back by
// --replay). A complete RFC 8259 value parser: escapes (\uXXXX with surrogate pairs become
// UTF-8), numbers, nesting (at most 64 deep); every error names the file, the line and the
// byte where it was found instead of guessing at a half-read line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spw::decode {

struct JsonMember;

/// One JSON value.
struct JsonValue {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0.0;
  std::string string;                                     // UTF-8
  std::vector<JsonValue> items;                           // array
  std::vector<JsonMember> members;                        // object, in the text's order
  /// The object member named `key` (the first, if repeated), or null when absent or not an object.
  const JsonValue* find(std::string_view key) const;
};

/// One member of an object. (Not a std::pair: a pair of an incomplete JsonValue inside
/// JsonValue itself is rejected by clang with libstdc++.)
struct JsonMember {
  std::string key;
  JsonValue value;
};

/// Parses one JSON text (surrounding whitespace allowed, nothing else after the value). Errors
/// read "`where`: byte N: ...".
JsonValue parse_json(std::string_view text, const std::string& where);

/// Member `key` of object `obj` as a string; errors name `where` and the key.
std::string json_string(const JsonValue& obj, std::string_view key, const std::string& where);
/// Member `key` of object `obj` as an array of integers in int32 range.
std::vector<int32_t> json_int_array(const JsonValue& obj, std::string_view key, const std::string& where);

/// One line of a JSON-lines file: its 1-based number and its object.
struct JsonLine {
  int line = 0;
  JsonValue value;
  std::string where;  // "FILE line N", for messages
};
/// The objects of a JSON-lines file, blank lines skipped. `what` names the file's role in
/// messages (e.g. "--prompts"). A line that is not a JSON object is an error.
std::vector<JsonLine> read_json_lines(const std::string& path, const std::string& what);

}  // namespace spw::decode

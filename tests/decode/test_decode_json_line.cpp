// JSON-lines reader of the CLI's prompt sets and recorded runs (decode/json_line.h): values,
// escapes to UTF-8, and an error naming the place for every malformed input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "decode/json_line.h"
#include "tests/common/helpers.h"

using namespace spw::decode;
using Type = JsonValue::Type;

TEST(JsonLine, ParsesEveryKindOfValue) {
  const JsonValue v = parse_json(
      R"( {"id": "math-01", "n": -12.5e1, "zero": 0, "ok": true, "no": false, "none": null,
           "output": [1, 2, -3], "nested": {"a": [[], {}], "b": "x"}, "id": "second"} )",
      "t");
  ASSERT_EQ(v.type, Type::object);
  ASSERT_EQ(v.members.size(), 9u);
  EXPECT_EQ(json_string(v, "id", "t"), "math-01") << "the first of a repeated key";
  EXPECT_EQ(v.find("n")->number, -125.0);
  EXPECT_EQ(v.find("zero")->number, 0.0);
  EXPECT_EQ(v.find("ok")->type, Type::boolean);
  EXPECT_TRUE(v.find("ok")->boolean);
  EXPECT_FALSE(v.find("no")->boolean);
  EXPECT_EQ(v.find("none")->type, Type::null);
  EXPECT_EQ(json_int_array(v, "output", "t"), (std::vector<int32_t>{1, 2, -3}));
  const JsonValue* nested = v.find("nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->find("a")->items.size(), 2u);
  EXPECT_EQ(nested->find("a")->items[0].type, Type::array);
  EXPECT_EQ(nested->find("a")->items[1].type, Type::object);
  EXPECT_EQ(v.find("absent"), nullptr);
  EXPECT_EQ(nested->find("a")->find("x"), nullptr) << "find on an array";
  EXPECT_EQ(parse_json("[]", "t").items.size(), 0u);
  EXPECT_EQ(parse_json("\"s\"", "t").string, "s");
}

TEST(JsonLine, EscapesBecomeUtf8) {
  const JsonValue v = parse_json(R"({"p": "a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"})", "t");
  EXPECT_EQ(json_string(v, "p", "t"), "a\"b\\c/d\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  // raw UTF-8 passes through
  EXPECT_EQ(json_string(parse_json("{\"p\": \"caf\xC3\xA9\"}", "t"), "p", "t"), "caf\xC3\xA9");
}

TEST(JsonLine, MalformedTextIsNamedWithItsPlace) {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"", "t: byte 1: unexpected end of the line"},
      {"{\"a\": 1} x", "t: byte 10: unexpected 'x' after the value"},
      {"{\"a\" 1}", "expected ':', found '1'"},
      {"{\"a\": 1,}", "expected a member name in quotes, found '}'"},
      {"[1, 2", "unexpected end of the line"},
      {"[1 2]", "expected ']', found '2'"},
      {"{a: 1}", "expected a member name in quotes, found 'a'"},
      {"\"abc", "unterminated string"},
      {"\"a\tb\"", "a control character (0x09) inside a string"},
      {"\"\\x\"", "unknown escape '\\x'"},
      {"\"\\u12zz\"", "'z' is not a hex digit"},
      {"\"\\u12\"", "\\u needs 4 hex digits"},
      {"\"\\ud83d\"", "a high surrogate \\ud83d without its low half"},
      {"\"\\ud83d\\u0041\"", "\\u0041 after a high surrogate is not a low one"},
      {"\"\\ude00\"", "a low surrogate \\ude00 without its high half"},
      {"01", "a number cannot start with 0"},
      {"-", "a number needs digits"},
      {"1.", "a number needs digits after '.'"},
      {"1e", "a number needs digits in its exponent"},
      {"tru", "unexpected 't' where a value was expected"},
      {std::string(65, '[') + std::string(65, ']'), "nested deeper than 64 levels"},
  };
  for (const auto& [text, msg] : bad) {
    SCOPED_TRACE(text);
    EXPECT_THROW_MSG(parse_json(text, "t"), msg);
  }
  EXPECT_NO_THROW(parse_json(std::string(64, '[') + std::string(64, ']'), "t"));
}

TEST(JsonLine, TypedMembersNameTheKey) {
  const JsonValue v = parse_json(R"({"id": 7, "output": [1, 2.5], "big": [2147483648], "s": "x", "o": {}})", "f line 3");
  EXPECT_THROW_MSG(json_string(v, "id", "f line 3"), "f line 3: \"id\" is not a string");
  EXPECT_THROW_MSG(json_string(v, "prompt", "f line 3"), "f line 3: no \"prompt\"");
  EXPECT_THROW_MSG(json_int_array(v, "output", "f line 3"), "f line 3: \"output\"[1] is not a 32-bit integer");
  EXPECT_THROW_MSG(json_int_array(v, "big", "f line 3"), "\"big\"[0] is not a 32-bit integer");
  EXPECT_THROW_MSG(json_int_array(v, "s", "f line 3"), "\"s\" is not an array");
  EXPECT_THROW_MSG(json_int_array(v, "o", "f line 3"), "\"o\" is not an array");
  EXPECT_EQ(json_int_array(parse_json(R"({"x": [-2147483648, 2147483647, 1e2]})", "t"), "x", "t"),
            (std::vector<int32_t>{-2147483647 - 1, 2147483647, 100}));
}

TEST(JsonLine, FilesSkipBlankLinesAndNameTheLine) {
  const auto dir = std::filesystem::temp_directory_path() / "spw_json_line_test";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "set.jsonl").string();
  std::ofstream(path) << "{\"id\": \"a\", \"prompt\": \"x\"}\n\n  \t\r\n{\"id\": \"b\", \"prompt\": \"y\"}\r\n";
  const auto lines = read_json_lines(path, "--prompts");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].line, 1);
  EXPECT_EQ(lines[1].line, 4);
  EXPECT_EQ(json_string(lines[1].value, "prompt", lines[1].where), "y") << "a CRLF line";
  EXPECT_EQ(lines[1].where, "--prompts '" + path + "' line 4");
  std::ofstream(path) << "\xEF\xBB\xBF{\"id\": \"bom\"}\n";  // a byte order mark, as some editors write
  EXPECT_EQ(json_string(read_json_lines(path, "--prompts").at(0).value, "id", "t"), "bom");
  std::ofstream(path) << "{\"id\": \"a\"}\n[1, 2]\n";
  EXPECT_THROW_MSG(read_json_lines(path, "--prompts"), "--prompts '" + path + "' line 2: not a JSON object");
  std::ofstream(path) << "{\"id\": \"a\"}\nnot json\n";
  EXPECT_THROW_MSG(read_json_lines(path, "--replay"), "--replay '" + path + "' line 2: byte 1: unexpected 'n'");
  EXPECT_THROW_MSG(read_json_lines((dir / "absent.jsonl").string(), "--prompts"), "absent.jsonl': cannot open");
  std::filesystem::remove_all(dir);
}

// libFuzzer target for the JSON reader behind --prompts and --replay (decode/json_line.h): any
// byte string must parse or raise spw::Error (never crash, hang or read out of bounds), and
// what parses must answer the typed lookups the CLI makes (json_string, json_int_array) with
// a value or spw::Error. Built and run for a bounded time by tests/common/run_fuzz.sh json
// (ctest `decode_json_fuzz`); by hand: FUZZ_SECONDS=600 tests/common/run_fuzz.sh json . build/tools/spillway /tmp/f
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "decode/json_line.h"
#include "kernels/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string where = "fuzz";
  try {
    const spw::decode::JsonValue v =
        spw::decode::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), where);
    for (const char* key : {"id", "prompt", "tokens"}) {
      try {
        (void)spw::decode::json_string(v, key, where);
      } catch (const spw::Error&) {
      }
      try {
        (void)spw::decode::json_int_array(v, key, where);
      } catch (const spw::Error&) {
      }
    }
  } catch (const spw::Error&) {
  }
  return 0;
}

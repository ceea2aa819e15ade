// libFuzzer target for the GGUF reader: any byte string must parse or raise spw::Error, and
// whatever parses must have every tensor readable in bounds (dequantised here). Built and run
// for a bounded time by tests/runtime/run_gguf_fuzz.sh (ctest `runtime_gguf_fuzz`); by hand:
//   FUZZ_SECONDS=600 tests/runtime/run_gguf_fuzz.sh
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/common/error.h"
#include "runtime/dequant.h"
#include "runtime/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    spw::rt::GgufFile f = spw::rt::GgufFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz");
    for (const auto& t : f.tensors()) {
      if (t.elements > (1 << 20)) continue;  // keep each input fast; bounds were checked at parse
      std::vector<float> out(static_cast<size_t>(t.elements));
      spw::rt::dequantize(t.type, f.tensor_data(t), t.elements, out.data());
    }
    for (const auto& [key, v] : f.metadata()) (void)v.size();
  } catch (const spw::Error&) {
  }
  return 0;
}

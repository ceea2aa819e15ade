// libFuzzer target for the GGUF reader: any byte string must parse or raise spw::Error,
// whatever parses must have every tensor readable in bounds (dequantised here), and the model
// config and tokenizer read from it must load (and encode / decode a string) or raise spw::Error. Built and run
// for a bounded time by tests/common/run_fuzz.sh gguf (ctest `runtime_gguf_fuzz`); by hand:
//   FUZZ_SECONDS=600 tests/common/run_fuzz.sh gguf . build/tools/spillway /tmp/f
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/common/error.h"
#include "runtime/dequant.h"
#include "runtime/gguf.h"
#include "runtime/llama_weights.h"
#include "runtime/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    spw::rt::GgufFile f = spw::rt::GgufFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz");
    for (const auto& t : f.tensors()) {
      if (t.elements > (1 << 20)) continue;  // keep each input fast; bounds were checked at parse
      std::vector<float> out(static_cast<size_t>(t.elements));
      spw::rt::dequantize(t.type, f.tensor_data(t), t.elements, out.data());
    }
    for (const auto& [key, v] : f.metadata()) (void)v.size();
    // What a model load reads from the metadata next: the hyper-parameters and the tokenizer
    // (whose vocabulary, merges, scores and special ids a mutated file can make anything).
    try {
      (void)spw::rt::read_llama_config(f);
    } catch (const spw::Error&) {
    }
    const spw::rt::Tokenizer tok = spw::rt::Tokenizer::from_gguf(f);
    const auto ids = tok.encode("Hello, world! 12 345 caf\xC3\xA9 <|im_start|>user\n", true, true);
    (void)tok.decode(ids);
  } catch (const spw::Error&) {
  }
  return 0;
}

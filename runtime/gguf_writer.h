// GgufWriter: writes GGUF v3 files (metadata of every type, tensors in F32/F16/BF16/Q8_0/
// Q4_0/Q4_1/Q4_K/Q6_K) — for the tiny random-weight test models (`spillway tinymodel`) and the loader
// tests. Plus write_tiny_llama(), the tiny model itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/gguf.h"

namespace spw::rt {

/// Quantises/converts fp32 values to a tensor type (ggml's rounding for the block formats).
std::vector<uint8_t> quantize(uint32_t type, const float* src, int64_t elements);

class GgufWriter {
 public:
  void add(const std::string& key, const GgufValue& value);
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_numbers(const std::string& key, GgufType elem, const std::vector<double>& v);
  /// dims in ggml order (dims[0] contiguous); data is quantised to `type`.
  void add_tensor(const std::string& name, uint32_t type, const std::vector<int64_t>& dims, const std::vector<float>& data);

  /// The file: tensor data aligned to general.alignment when that holds a power of two, else to 32.
  std::vector<uint8_t> bytes(uint32_t version = 3) const;
  void write(const std::string& path, uint32_t version = 3) const;

 private:
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
  };
  std::vector<std::pair<std::string, GgufValue>> meta_;
  std::vector<Tensor> tensors_;
};

/// Shape of a tiny random Llama model.
struct TinyLlamaSpec {
  int vocab = 320;  // >= 259: 256 byte tokens + <|endoftext|>, <|im_start|>, <|im_end|>, then unused
  int hidden = 64, layers = 2, heads = 4, kv_heads = 2, intermediate = 128, context = 512;
  uint32_t type = 0;  // TensorType of the matrices (norms stay F32)
  bool tied = true;
  std::string arch = "llama";  // or "qwen2" (adds q/k/v biases, NeoX RoPE)
  uint64_t seed = 1;
};
/// Writes a tiny random-weight Llama GGUF with a byte-level (gpt2) tokenizer vocabulary.
void write_tiny_llama(const std::string& path, const TinyLlamaSpec& spec);

}  // namespace spw::rt

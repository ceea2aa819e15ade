// Llama-family weights read from a GGUF file, the matrices kept in their GGUF encoding (the
// CPU backend dequantises them block by block inside its matrix product, the CUDA backend
// converts them at upload), the vectors as fp32, plus the hyper-parameters (ModelConfig)
// from the `<arch>.*` metadata keys.
// Supported architectures: "llama" (Llama-2/3, SmolLM2, TinyLlama; adjacent-pair RoPE, the
// layout GGUF stores Q/K in) and "qwen2" (q/k/v biases, NeoX-style RoPE).
#pragma once

#include <string>
#include <vector>

#include "kernels/common/rope.h"
#include "runtime/gguf.h"
#include "runtime/model.h"

namespace spw::rt {

/// A weight matrix [rows = out features, cols = in features], row-major, each row `cols`
/// elements of TensorType `type` (runtime/dequant.h) packed in `data`.
struct Matrix {
  int rows = 0, cols = 0;
  uint32_t type = 0;          // TensorType; F32 = plain floats
  std::vector<uint8_t> data;  // rows * row_bytes()
  std::vector<float> bias;    // empty or `rows`

  bool empty() const { return data.empty(); }
  /// rows * cols.
  size_t elements() const { return static_cast<size_t>(rows) * cols; }
  /// Encoded bytes of one row (throws if cols is not a whole number of the type's blocks).
  size_t row_bytes() const;
  /// fp32 values of rows [r0, r0 + n) into out[n * cols] (dequantize()'s values).
  void dequantize_rows(int r0, int n, float* out) const;
  /// All of it as fp32.
  std::vector<float> to_f32() const;
  /// An F32 matrix holding `w` ([rows, cols]); throws if the size does not match.
  static Matrix from_f32(int rows, int cols, const std::vector<float>& w);
};

struct LlamaLayer {
  std::vector<float> attn_norm, ffn_norm;  // [hidden]
  Matrix wq, wk, wv, wo;                   // [heads*hd, hidden], [kv*hd, hidden] x2, [hidden, heads*hd]
  Matrix w_gate, w_up, w_down;             // [inter, hidden] x2, [hidden, inter]
};

struct LlamaWeights {
  ModelConfig config;
  bool neox_rope = false;
  Matrix token_embd;               // [vocab, hidden]
  std::vector<LlamaLayer> layers;
  std::vector<float> output_norm;  // [hidden]
  Matrix output;                   // lm_head; empty w when tied (use token_embd)
};

/// Reads the hyper-parameters; throws naming a missing or inconsistent key.
ModelConfig read_llama_config(const GgufFile& file);

/// RoPE parameters of a model (head_dim, theta, Llama-3 scaling, NeoX pairing), as both
/// backends apply them.
RopeParams rope_params(const ModelConfig& config, bool neox);

/// Loads the weights of the first `max_layers` layers (all when < 0): matrices copied in
/// their encoding, vectors (norms, biases) dequantised. Every tensor's presence and shape is
/// checked against the config.
LlamaWeights load_llama_weights(const GgufFile& file, int max_layers = -1);

}  // namespace spw::rt

// Llama-family weights read from a GGUF file and dequantised to fp32 for the CPU backend,
// plus the hyper-parameters (ModelConfig) from the `<arch>.*` metadata keys.
// Supported architectures: "llama" (Llama-2/3, SmolLM2, TinyLlama; adjacent-pair RoPE, the
// layout GGUF stores Q/K in) and "qwen2" (q/k/v biases, NeoX-style RoPE).
#pragma once

#include <string>
#include <vector>

#include "kernels/common/rope.h"
#include "runtime/gguf.h"
#include "runtime/model.h"

namespace spw::rt {

/// A weight matrix [rows = out features, cols = in features], row-major fp32.
struct Matrix {
  int rows = 0, cols = 0;
  std::vector<float> w;
  std::vector<float> bias;  // empty or `rows`
};

struct LlamaLayer {
  std::vector<float> attn_norm, ffn_norm;  // [hidden]
  Matrix wq, wk, wv, wo;                   // [heads*hd, hidden], [kv*hd, hidden] x2, [hidden, heads*hd]
  Matrix w_gate, w_up, w_down;             // [inter, hidden] x2, [hidden, inter]
};

struct LlamaWeights {
  ModelConfig config;
  bool neox_rope = false;
  std::vector<float> token_embd;  // [vocab, hidden]
  std::vector<LlamaLayer> layers;
  std::vector<float> output_norm;  // [hidden]
  Matrix output;                   // lm_head; empty w when tied (use token_embd)
};

/// Reads the hyper-parameters; throws naming a missing or inconsistent key.
ModelConfig read_llama_config(const GgufFile& file);

/// RoPE parameters of a model (head_dim, theta, Llama-3 scaling, NeoX pairing), as both
/// backends apply them.
RopeParams rope_params(const ModelConfig& config, bool neox);

/// Loads and dequantises the weights of the first `max_layers` layers (all when < 0).
/// Every tensor's presence and shape is checked against the config.
LlamaWeights load_llama_weights(const GgufFile& file, int max_layers = -1);

}  // namespace spw::rt

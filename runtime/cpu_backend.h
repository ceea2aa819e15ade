// CPU backend: the reference implementation of the Model interface. fp32 math over the
// weights' fp32 values (kept in their GGUF encoding, dequantised on the fly: a Q4_1 model
// reads 0.625 bytes per weight per forward instead of 4),
// output rows of every matrix product split over a thread pool, one pass over the weights
// per forward for all new tokens of all sequences, register-blocked AVX-512 / AVX2 products
// (runtime/cpu_matmul.h), so verifying k draft tokens costs little more than one token, as
// speculative decoding needs; a token's logits are bit-identical whatever else shares its
// forward. KV cache: per sequence and layer, fp32, head-major (a head's keys one contiguous
// stream, in tiles of 64 keys stored dimension-major for a score product vectorised over keys;
// values [kv_heads][capacity][head_dim]), grown on demand; attention in items of one KV head
// and a tile of up to 8 tokens that read the head's keys and values once for the tile, chains
// and token trees (ancestor lists) in the same loop.
#pragma once

#include <memory>

#include "runtime/llama_weights.h"
#include "runtime/model.h"

namespace spw::rt {

/// Options of make_cpu_model.
struct CpuBackendOptions {
  int threads = 0;     // 0: all hardware threads
  int max_tokens = 0;  // per-sequence cache limit; 0: the model's context length
};

/// The CPU backend over `weights` (kept in their GGUF encoding, fp32 math, KV cache fp32,
/// multi-threaded matrix products and attention; see the file comment). Throws spw::Error
/// naming the option if threads or max_tokens is negative.
std::unique_ptr<Model> make_cpu_model(LlamaWeights weights, const CpuBackendOptions& options = {});

}  // namespace spw::rt

// Device weights of the CUDA backend: every tensor in the compute dtype (fp16 / bf16), with the
// Q|K|V and gate|up projections fused into one weight each (one GEMM instead of three / two).
// Internal to runtime/*.cu.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/common/device_buffer.h"
#include "kernels/common/dtype.h"
#include "runtime/llama_weights.h"

namespace spw::rt::cuda {

/// 16-bit elements of the compute dtype (the storage type does not matter to the owner).
using Buffer16 = DeviceBuffer<uint16_t>;

struct DeviceLayer {
  Buffer16 attn_norm, ffn_norm;  // [hidden]
  Buffer16 wqkv;                 // [q_dim + 2 kv_dim, hidden]: rows of wq, then wk, then wv
  Buffer16 bqkv;                 // [q_dim + 2 kv_dim] or empty (no biases)
  Buffer16 wo, bo;               // [hidden, q_dim]; bias [hidden] or empty
  Buffer16 wgu, bgu;             // [2 intermediate, hidden]: gate rows then up rows; bias or empty
  Buffer16 wdown, bdown;         // [hidden, intermediate]; bias or empty
};

struct DeviceWeights {
  ModelConfig config;
  bool neox_rope = false;
  DType dtype = DType::f16;
  Buffer16 token_embd;   // [vocab, hidden]
  Buffer16 output_norm;  // [hidden]
  Buffer16 output;       // [vocab, hidden]; empty when tied (token_embd is the lm_head)
  Buffer16 output_bias;  // [vocab] or empty
  std::vector<DeviceLayer> layers;

  const void* lm_head() const { return output.size() ? output.get() : token_embd.get(); }
  /// Device bytes held.
  size_t bytes() const;
};

/// Converts and uploads `weights` (shapes already checked, see check_cuda_backend), freeing
/// each host tensor once it is on the device. Synchronises `stream` before returning.
DeviceWeights upload_weights(LlamaWeights&& weights, DType dtype, cudaStream_t stream);

/// Random weights of `config`'s shape generated on the device (see make_cuda_model_random).
/// Synchronises `stream` before returning.
DeviceWeights random_weights(const ModelConfig& config, uint64_t seed, DType dtype, cudaStream_t stream);

}  // namespace spw::rt::cuda

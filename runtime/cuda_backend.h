// CUDA backend: the Model interface on one GPU, built from Spillway's kernels.
//
// Weights are converted once to fp16 (or bf16) on the device. Per layer: RMSNorm (small_ops),
// one fused Q|K|V projection (+ Qwen2 biases in the GEMM epilogue), RoPE in place (small_ops),
// one small kernel that stores the new K/V rows into the paged cache, attention, the output
// projection with the residual add fused, RMSNorm, one fused gate|up projection with SwiGLU in
// the GEMM epilogue, and the down projection with the residual add fused. Every product goes
// through flat_gemm (its dispatcher picks GEMV / tensor-core flat GEMM / cuBLASLt per shape).
// Attention is decode_attention when every sequence of a pass brings one token, tree_attention
// (chain or token tree over the cached paged prefix) otherwise.
//
// KV cache: one device pool of pages (page_size tokens; per layer a K plane and a V plane of
// [num_pages, page_size, kv_heads, head_dim]) shared by all sequences; runtime/paged_kv.h keeps
// the page lists, so rollback frees pages and keep_tokens moves only the kept rows. The residual
// stream is kept in the compute dtype; logits are fp32, copied to the host at the end of forward()
// (into the caller's vector; forward_view: into pinned memory the model owns).
//
// Passes: a forward is cut into passes of at most max_forward_tokens tokens (activation buffers
// are sized for that) and at most 128 tokens per sequence (tree_attention's limit); a long chain
// (prompt prefill) takes several passes, a token tree must fit one (at most 128 tokens).
//
// Host work per pass: the attention plan is rebuilt (its metadata carved from one reused
// pinned arena: no allocation in steady state) and copied to the device once, for all layers.
//
// CUDA graphs: a pass of at most options.cuda_graph_tokens tokens (the decode and verification
// steps; not long prefills) runs as one CUDA graph, kept per (tokens, attention kind, output
// kind). Each pass first records what it would launch (spw::LaunchRecord: every kernel with its
// grid and argument bytes, the metadata copy, cuBLASLt products; nothing is issued), a few
// microseconds of host work. A record equal to the slot's last one replays the slot's graph
// (one cudaGraphLaunch instead of ~10 launches per layer); any difference (a new attention
// split, a grown workspace) captures the pass again and updates the executable graph in place
// (cudaGraphExecUpdate), or instantiates a new one when the topology changed. Only the
// per-pass metadata (token ids, positions, page table, the plan's work list) changes between
// replays; it is copied before the graph runs, and the graph's copy of the plan's work list
// reads the same pinned address, which the record compares. Should capture fail on a GPU, the
// backend warns once on stderr and launches kernel by kernel from then on
// (cuda_graph_stats().disabled says why).
// Batch-invariant mode (options.batch_invariant): a token's logits are bitwise the same whether
// it is decoded alone, verified in a chain or a token tree, prefilled in a long pass, or batched
// beside other sequences, so greedy speculative decoding gives exactly plain greedy decoding's
// text on this backend too (by default the products and the attention are planned per pass
// size, and near-tied logits can then round to a different argmax). How: every product is a
// batch-invariant flat_gemm plan (one kernel and one K split per weight for every pass size), and
// every token of every pass is a decode_attention request of its own over the KV rows it sees,
// in position order (runtime/forward_passes.h: token_attention_table), cut into fixed chunks of
// kInvariantChunkTokens. Costs: no GEMV for single-token passes; prefill passes above 64 tokens
// read the weights once per 64-row slice (no cuBLASLt); a token reads its own prefix, except
// that the tokens of a chain (a prefill's too) share their reads, 8 / GQA-group tokens per CTA
// (decode_attention's extends_previous), and a tree's branching tokens read their own rows
// (from L2 where they fit), so a long prompt's prefill grows with its length squared. Host side,
// chains list pages and branching trees list rows: a 65-token binary tree at context 4096 lists
// 266,575 rows (1 MB copied to the device per pass), built in 33 us on the 2-core dev machine
// (chains: 1.4 us).
// Not (yet) done: quantised weights on the device.
// In a build without CUDA every factory throws spw::Error saying so.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/common/dtype.h"
#include "runtime/llama_weights.h"
#include "runtime/model.h"

namespace spw::rt {

struct CudaBackendOptions {
  int device = 0;                   // CUDA device ordinal
  DType dtype = DType::f16;         // weights, activations and KV cache: f16 or bf16
  int max_tokens = 0;               // per-sequence cache limit; 0: the model's context length
  int page_size = 16;               // KV cache page, in tokens (1..1024)
  long long kv_cache_bytes = 0;     // page pool size; 0: enough for 64 full-length sequences,
                                    // at most 3/4 of the device memory free after the weights
  int max_forward_tokens = 256;     // tokens per internal pass (activation buffers); longer
                                    // forwards (prompt prefill) are split into passes
  bool debug_checks = false;        // validate every page table on the host before use (tests)
  int cuda_graph_tokens = 128;      // passes of at most this many tokens run as CUDA graphs
                                    // (see above); 0: every kernel launched on its own
  bool batch_invariant = false;     // every token's logits bitwise independent of the pass it
                                    // is in (see "Batch-invariant mode" above)
};

/// KV chunk of the batch-invariant attention (decode_attention::Problem::fixed_chunk_tokens).
inline constexpr int kInvariantChunkTokens = 256;

/// How a CUDA model has issued its forward passes (see "CUDA graphs" above).
struct CudaGraphStats {
  long long plain = 0;           // passes launched kernel by kernel (larger than cuda_graph_tokens)
  long long replays = 0;         // passes replayed from a graph captured from identical launches
  long long captures = 0;        // passes captured (first of their kind, or their launches changed)
  long long updates = 0;         // captures that updated the slot's executable graph in place
  long long instantiations = 0;  // captures that needed a new executable graph
  std::string disabled;          // non-empty: capture failed on this device (why); graphs are off
};

/// The counters of a model made by make_cuda_model / make_cuda_model_random. Throws spw::Error
/// for a model of another backend.
CudaGraphStats cuda_graph_stats(const Model& model);

/// The host checks make_cuda_model / make_cuda_model_random do before touching the device
/// (exposed so they can be tested without a GPU): options (dtype fp16/bf16, max_tokens >= 0,
/// page_size 1..1024, kv_cache_bytes >= 0, max_forward_tokens >= 1, cuda_graph_tokens >= 0)
/// and the model shape the kernels support (head_dim 64/128/256, heads divisible by kv heads,
/// hidden, intermediate and head sizes multiples of 8, vocab >= 1). Throws spw::Error "<where>: <argument> = <value>: <why>".
void check_cuda_backend(const ModelConfig& config, const CudaBackendOptions& options, const char* where);

/// check_cuda_backend on weights.config, then the size of every tensor of `weights` against
/// it (biases empty or one per output row; lm_head absent exactly when tied). Host only.
void check_cuda_weights(const LlamaWeights& weights, const CudaBackendOptions& options, const char* where);

/// Uploads `weights` (dequantised fp32, e.g. from load_llama_weights) converted to the
/// options' dtype and frees the host copies layer by layer. Throws spw::Error for a bad
/// option or an unsupported shape (see check_cuda_backend), and when no CUDA device can be
/// used (with the CUDA runtime's reason) or the build has no CUDA.
std::unique_ptr<Model> make_cuda_model(LlamaWeights weights, const CudaBackendOptions& options = {});

/// A model of the given shape with random weights generated on the device (matrices uniform
/// in +-1/sqrt(fan_in), embeddings uniform in +-1, norms 1, biases 0; deterministic for a
/// seed): for benchmarks of large shapes (e.g. Llama-2-7B) without a weight file. `config`
/// must be complete (vocab, hidden, intermediate, layers, heads, kv heads, head_dim,
/// max_context). Throws like make_cuda_model.
std::unique_ptr<Model> make_cuda_model_random(const ModelConfig& config, uint64_t seed,
                                              const CudaBackendOptions& options = {});

/// The Llama-2-7B shape (vocab 32000, hidden 4096, 32 layers, 32 heads, MHA, FFN 11008,
/// head_dim 128, context 4096, untied lm_head) for make_cuda_model_random.
ModelConfig llama2_7b_config();

}  // namespace spw::rt

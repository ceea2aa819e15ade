// Host half of the CUDA backend, compiled in every build: the option / shape checks, the
// Llama-2-7B shape, and (build without CUDA) the factories that say CUDA is missing.
#include <string>

#include "kernels/common/error.h"
#include "runtime/cuda_backend.h"

namespace spw::rt {

void check_cuda_backend(const ModelConfig& c, const CudaBackendOptions& o, const char* w) {
  SPW_CHECK_ARG(o.dtype == DType::f16 || o.dtype == DType::bf16, w, "options.dtype", dtype_name(o.dtype),
                "must be fp16 or bf16");
  SPW_CHECK_ARG(o.device >= 0, w, "options.device", o.device, "must be >= 0");
  SPW_CHECK_ARG(o.max_tokens >= 0, w, "options.max_tokens", o.max_tokens, "must be >= 0 (0: the model's context)");
  SPW_CHECK_ARG(o.page_size >= 1 && o.page_size <= 1024, w, "options.page_size", o.page_size, "must be in 1..1024");
  SPW_CHECK_ARG(o.kv_cache_bytes >= 0, w, "options.kv_cache_bytes", o.kv_cache_bytes, "must be >= 0 (0: automatic)");
  SPW_CHECK_ARG(o.max_forward_tokens >= 1, w, "options.max_forward_tokens", o.max_forward_tokens, "must be >= 1");
  SPW_CHECK_ARG(o.cuda_graph_tokens >= 0, w, "options.cuda_graph_tokens", o.cuda_graph_tokens,
                "must be >= 0 (0: no CUDA graphs)");
  SPW_CHECK_ARG(c.vocab_size >= 1, w, "config.vocab_size", c.vocab_size, "must be >= 1");
  SPW_CHECK_ARG(c.num_layers >= 1, w, "config.num_layers", c.num_layers, "must be >= 1");
  SPW_CHECK_ARG(c.hidden >= 8 && c.hidden % 8 == 0, w, "config.hidden", c.hidden,
                "must be a positive multiple of 8 (16-byte rows for the GEMM and RMSNorm kernels)");
  SPW_CHECK_ARG(c.intermediate >= 8 && c.intermediate % 8 == 0, w, "config.intermediate", c.intermediate,
                "must be a positive multiple of 8");
  SPW_CHECK_ARG(c.num_heads >= 1, w, "config.num_heads", c.num_heads, "must be >= 1");
  SPW_CHECK_ARG(c.num_kv_heads >= 1 && c.num_heads % c.num_kv_heads == 0, w, "config.num_kv_heads", c.num_kv_heads,
                fmt::format("must divide num_heads = {}", c.num_heads));
  SPW_CHECK_ARG(c.head_dim == 64 || c.head_dim == 128 || c.head_dim == 256, w, "config.head_dim", c.head_dim,
                "must be 64, 128 or 256 (decode_attention / tree_attention kernels)");
  SPW_CHECK_ARG(c.max_context >= 1, w, "config.max_context", c.max_context, "must be >= 1");
  SPW_CHECK_ARG(c.rms_eps > 0.f, w, "config.rms_eps", c.rms_eps, "must be > 0");
  SPW_CHECK_ARG(c.rope_theta > 0.f, w, "config.rope_theta", c.rope_theta, "must be > 0");
}

namespace {
void check_matrix(const Matrix& m, int rows, int cols, const std::string& name, const char* w) {
  SPW_CHECK(m.rows == rows && m.cols == cols, "{}: weights.{} = [{}, {}]: must be [{}, {}] (model config)", w, name,
            m.rows, m.cols, rows, cols);
  const int64_t be = type_block_elements(m.type);
  SPW_CHECK_ARG(be > 0 && cols % be == 0, w, "weights." + name + ".type", m.type,
                fmt::format("must be a supported tensor type whose blocks divide {} columns", cols));
  const size_t want = static_cast<size_t>(rows) * m.row_bytes();
  SPW_CHECK_ARG(m.data.size() == want, w, "weights." + name + ".data.size()", m.data.size(),
                fmt::format("must be {} ({} rows of {} {} values)", want, rows, cols, tensor_type_name(m.type)));
  SPW_CHECK_ARG(m.bias.empty() || m.bias.size() == static_cast<size_t>(rows), w, "weights." + name + ".bias.size()",
                m.bias.size(), fmt::format("must be 0 or {}", rows));
}
void check_vector(const std::vector<float>& v, size_t n, const std::string& name, const char* w) {
  SPW_CHECK_ARG(v.size() == n, w, "weights." + name + ".size()", v.size(), fmt::format("must be {} (model config)", n));
}
}  // namespace

void check_cuda_weights(const LlamaWeights& wt, const CudaBackendOptions& o, const char* w) {
  const ModelConfig& c = wt.config;
  check_cuda_backend(c, o, w);
  const int H = c.hidden, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim, I = c.intermediate;
  check_matrix(wt.token_embd, c.vocab_size, H, "token_embd", w);
  check_vector(wt.output_norm, H, "output_norm", w);
  SPW_CHECK_ARG(wt.output.empty() == c.tied_embeddings, w, "weights.output.data.size()", wt.output.data.size(),
                c.tied_embeddings ? "must be 0: config.tied_embeddings is set" : "must hold vocab x hidden (not tied)");
  if (!wt.output.empty()) check_matrix(wt.output, c.vocab_size, H, "output", w);
  SPW_CHECK_ARG(wt.layers.size() == static_cast<size_t>(c.num_layers), w, "weights.layers.size()", wt.layers.size(),
                fmt::format("must equal config.num_layers = {}", c.num_layers));
  for (size_t l = 0; l < wt.layers.size(); ++l) {
    const LlamaLayer& L = wt.layers[l];
    const std::string p = fmt::format("layers[{}].", l);
    check_vector(L.attn_norm, H, p + "attn_norm", w);
    check_vector(L.ffn_norm, H, p + "ffn_norm", w);
    check_matrix(L.wq, q, H, p + "wq", w);
    check_matrix(L.wk, kv, H, p + "wk", w);
    check_matrix(L.wv, kv, H, p + "wv", w);
    check_matrix(L.wo, H, q, p + "wo", w);
    check_matrix(L.w_gate, I, H, p + "w_gate", w);
    check_matrix(L.w_up, I, H, p + "w_up", w);
    check_matrix(L.w_down, H, I, p + "w_down", w);
  }
}

ModelConfig llama2_7b_config() {
  ModelConfig c;
  c.architecture = "llama";
  c.name = "Llama-2-7B shape (random weights)";
  c.vocab_size = 32000;
  c.hidden = 4096;
  c.intermediate = 11008;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 32;
  c.head_dim = 128;
  c.max_context = 4096;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.f;
  c.tied_embeddings = false;
  return c;
}

#if !SPW_HAVE_CUDA
std::unique_ptr<Model> make_cuda_model(LlamaWeights weights, const CudaBackendOptions& options) {
  check_cuda_weights(weights, options, "make_cuda_model");
  fail("make_cuda_model: the CUDA backend is not available: Spillway was built without CUDA (nvcc not found at "
       "configure time, or SPW_ENABLE_CUDA=OFF); use the cpu backend");
}
std::unique_ptr<Model> make_cuda_model_random(const ModelConfig& config, uint64_t, const CudaBackendOptions& options) {
  check_cuda_backend(config, options, "make_cuda_model_random");
  fail("make_cuda_model_random: the CUDA backend is not available: Spillway was built without CUDA (nvcc not found "
       "at configure time, or SPW_ENABLE_CUDA=OFF)");
}
CudaGraphStats cuda_graph_stats(const Model& model) {
  fail("cuda_graph_stats: model of backend '{}': not a CUDA model (Spillway was built without CUDA)",
       model.backend_name());
}
#endif

}  // namespace spw::rt

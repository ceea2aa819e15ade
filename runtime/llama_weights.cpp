#include "runtime/llama_weights.h"

#include <cstdint>
#include <cstring>
#include <optional>

#include "kernels/common/error.h"
#include "runtime/dequant.h"

namespace spw::rt {

ModelConfig read_llama_config(const GgufFile& f) {
  ModelConfig c;
  c.architecture = f.get_string("general.architecture");
  SPW_CHECK(c.architecture == "llama" || c.architecture == "qwen2",
            "GGUF {}: general.architecture = '{}': only llama and qwen2 are supported", f.path(), c.architecture);
  const std::string a = c.architecture + ".";
  c.name = f.get_string_or("general.name", "");
  // A size read as int64 and checked before it becomes an int: 1..2^30 (a value past int's
  // range would otherwise wrap into a small, valid-looking one).
  auto size = [&](const std::string& key, std::optional<int64_t> fallback = std::nullopt) {
    const int64_t v = fallback && !f.has(key) ? *fallback : f.get_int(key);
    SPW_CHECK(v >= 1 && v <= (int64_t{1} << 30), "GGUF {}: {} = {}: must be in 1..2^30", f.path(), key, v);
    return static_cast<int>(v);
  };
  c.hidden = size(a + "embedding_length");
  c.intermediate = size(a + "feed_forward_length");
  c.num_layers = size(a + "block_count");
  c.num_heads = size(a + "attention.head_count");
  c.num_kv_heads = size(a + "attention.head_count_kv", c.num_heads);
  c.max_context = size(a + "context_length", 2048);
  c.rms_eps = static_cast<float>(f.get_float_or(a + "attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = static_cast<float>(f.get_float_or(a + "rope.freq_base", 10000.0));
  if (f.get_string_or(a + "rope.scaling.type", "") == "llama3" || f.has(a + "rope.scaling.factor")) {
    // llama.cpp writes Llama-3.1 scaling as rope_freqs; the explicit keys are read when present.
    c.rope_scaling_factor = static_cast<float>(f.get_float_or(a + "rope.scaling.factor", 0.0));
    c.rope_low_freq_factor = static_cast<float>(f.get_float_or(a + "rope.scaling.low_freq_factor", 1.0));
    c.rope_high_freq_factor = static_cast<float>(f.get_float_or(a + "rope.scaling.high_freq_factor", 4.0));
    c.rope_original_context = size(a + "rope.scaling.original_context_length", 8192);
  }
  SPW_CHECK(c.hidden % c.num_heads == 0 && (c.hidden / c.num_heads) % 2 == 0,
            "GGUF {}: embedding_length {} and head_count {}: the hidden size must be a multiple of the head count, "
            "with an even head dim (RoPE rotates pairs)", f.path(), c.hidden, c.num_heads);
  c.head_dim = c.hidden / c.num_heads;
  if (f.has(a + "rope.dimension_count"))
    SPW_CHECK(f.get_int(a + "rope.dimension_count") == c.head_dim, "GGUF {}: rope.dimension_count = {}: partial RoPE "
              "(head dim {}) is not supported", f.path(), f.get_int(a + "rope.dimension_count"), c.head_dim);
  SPW_CHECK(c.num_heads % c.num_kv_heads == 0, "GGUF {}: head_count_kv = {}: must divide head_count {}", f.path(),
            c.num_kv_heads, c.num_heads);
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  SPW_CHECK(emb, "GGUF {}: tensor 'token_embd.weight' is missing", f.path());
  SPW_CHECK(emb->rows() >= 1 && emb->rows() <= (int64_t{1} << 30), "GGUF {}: token_embd.weight has {} rows: the vocabulary "
            "must have 1..2^30 tokens", f.path(), emb->rows());
  c.vocab_size = static_cast<int>(emb->rows());
  if (f.has(a + "vocab_size"))
    SPW_CHECK(f.get_int(a + "vocab_size") == c.vocab_size, "GGUF {}: vocab_size = {} but token_embd has {} rows", f.path(),
              f.get_int(a + "vocab_size"), c.vocab_size);
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.attention_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

namespace {

// The tensor `name`, checked to exist with shape [rows, cols].
const GgufTensorInfo& find_tensor(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo* t = f.find_tensor(name);
  SPW_CHECK(t, "GGUF {}: tensor '{}' is missing", f.path(), name);
  SPW_CHECK(t->cols() == cols && t->rows() == rows && t->elements == rows * cols,
            "GGUF {}: tensor '{}' has shape [{}] but [{}, {}] was expected", f.path(), name,
            fmt::join(t->dims, ", "), cols, rows);
  return *t;
}

std::vector<float> load_tensor(const GgufFile& f, const std::string& name, int64_t rows, int64_t cols) {
  const GgufTensorInfo* t = &find_tensor(f, name, rows, cols);
  std::vector<float> out(static_cast<size_t>(t->elements));
  dequantize(t->type, f.tensor_data(*t), t->elements, out.data());
  return out;
}

Matrix load_matrix(const GgufFile& f, const std::string& name, int rows, int cols, bool bias) {
  const std::string wname = name + ".weight";
  const GgufTensorInfo* t = &find_tensor(f, wname, rows, cols);
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.type = t->type;
  const uint64_t bytes = tensor_bytes(t->type, t->elements);  // validates the type
  SPW_CHECK(cols % type_block_elements(t->type) == 0, "GGUF {}: tensor '{}': rows of {} elements are not whole {} blocks",
            f.path(), wname, cols, tensor_type_name(t->type));
  const uint8_t* src = f.tensor_data(*t);
  m.data.assign(src, src + bytes);
  if (bias) m.bias = load_tensor(f, name + ".bias", 1, rows);
  return m;
}

}  // namespace

size_t Matrix::row_bytes() const { return tensor_bytes(type, cols); }

void Matrix::dequantize_rows(int r0, int n, float* out) const {
  SPW_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows, "Matrix::dequantize_rows: rows [{}, {}) of a {}-row matrix", r0,
            r0 + n, rows);
  const size_t rb = row_bytes();
  dequantize(type, data.data() + static_cast<size_t>(r0) * rb, static_cast<int64_t>(n) * cols, out);
}

std::vector<float> Matrix::to_f32() const {
  std::vector<float> out(elements());
  if (rows > 0) dequantize_rows(0, rows, out.data());
  return out;
}

Matrix Matrix::from_f32(int rows, int cols, const std::vector<float>& w) {
  SPW_CHECK(rows >= 0 && cols >= 0 && w.size() == static_cast<size_t>(rows) * cols,
            "Matrix::from_f32: {} values for [{}, {}]", w.size(), rows, cols);
  Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.type = static_cast<uint32_t>(TensorType::F32);
  m.data.resize(w.size() * sizeof(float));
  if (!w.empty()) std::memcpy(m.data.data(), w.data(), m.data.size());
  return m;
}

LlamaWeights load_llama_weights(const GgufFile& f, int max_layers) {
  LlamaWeights w;
  w.config = read_llama_config(f);
  ModelConfig& c = w.config;
  w.neox_rope = c.architecture == "qwen2";
  if (max_layers >= 0) {
    SPW_CHECK(max_layers >= 1 && max_layers <= c.num_layers, "load_llama_weights: max_layers = {}: must be in 1..{}",
              max_layers, c.num_layers);
    c.num_layers = max_layers;
  }
  const int hd = c.head_dim, q = c.num_heads * hd, kv = c.num_kv_heads * hd;
  w.token_embd = load_matrix(f, "token_embd", c.vocab_size, c.hidden, false);
  w.output_norm = load_tensor(f, "output_norm.weight", 1, c.hidden);
  if (!c.tied_embeddings) w.output = load_matrix(f, "output", c.vocab_size, c.hidden, false);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    LlamaLayer L;
    L.attn_norm = load_tensor(f, p + "attn_norm.weight", 1, c.hidden);
    L.ffn_norm = load_tensor(f, p + "ffn_norm.weight", 1, c.hidden);
    L.wq = load_matrix(f, p + "attn_q", q, c.hidden, c.attention_bias);
    L.wk = load_matrix(f, p + "attn_k", kv, c.hidden, c.attention_bias);
    L.wv = load_matrix(f, p + "attn_v", kv, c.hidden, c.attention_bias);
    L.wo = load_matrix(f, p + "attn_output", c.hidden, q, false);
    L.w_gate = load_matrix(f, p + "ffn_gate", c.intermediate, c.hidden, false);
    L.w_up = load_matrix(f, p + "ffn_up", c.intermediate, c.hidden, false);
    L.w_down = load_matrix(f, p + "ffn_down", c.hidden, c.intermediate, false);
    w.layers.push_back(std::move(L));
  }
  return w;
}

RopeParams rope_params(const ModelConfig& c, bool neox) {
  RopeParams r;
  r.head_dim = c.head_dim;
  r.theta = c.rope_theta;
  r.neox = neox;
  r.scaling_factor = c.rope_scaling_factor;
  r.low_freq_factor = c.rope_low_freq_factor;
  r.high_freq_factor = c.rope_high_freq_factor;
  r.original_context = c.rope_original_context;
  return r;
}

}  // namespace spw::rt

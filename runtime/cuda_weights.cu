// Device weights: host tensors (matrices in their GGUF encoding, dequantised on the host a
// chunk of rows at a time) converted on the device (upload through a bounded fp32 staging
// buffer, then one conversion kernel per chunk), or random weights made on the device.
#include <algorithm>
#include <cmath>

#include "kernels/common/cuda_check.h"
#include "runtime/cuda_kernels.cuh"
#include "runtime/cuda_weights.cuh"

namespace spw::rt::cuda {
namespace {

constexpr size_t kStagingFloats = size_t(16) << 20;  // 64 MiB of fp32 per upload chunk

// Converts fp32 host tensors into slices of device buffers, chunk by chunk. The copies and
// conversions are ordered on one stream, so the staging buffer is reused safely; release()
// waits for the stream before it frees a host tensor (an async copy from pageable memory may
// still be reading it). Encoded matrices are dequantised into a host chunk first, which is
// refilled only after the stream has finished with it.
class Uploader {
 public:
  Uploader(DType dtype, cudaStream_t stream, size_t largest) : dtype_(dtype), stream_(stream),
      staging_(std::max<size_t>(1, std::min(largest, kStagingFloats))) {}

  void put(const Matrix& m, Buffer16& dst, size_t offset) {
    const size_t total = m.elements();
    SPW_CHECK(offset + total <= dst.size(), "upload_weights: {} elements at offset {} into a buffer of {}", total,
              offset, dst.size());
    const int chunk_rows = static_cast<int>(std::max<size_t>(1, staging_.size() / std::max(1, m.cols)));
    host_.resize(std::min<size_t>(static_cast<size_t>(chunk_rows) * m.cols, total));
    for (int r = 0; r < m.rows; r += chunk_rows) {
      const int n = std::min(chunk_rows, m.rows - r);
      const size_t elems = static_cast<size_t>(n) * m.cols;
      SPW_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the previous chunk's copy has read host_
      m.dequantize_rows(r, n, host_.data());
      SPW_CUDA_CHECK(cudaMemcpyAsync(staging_.get(), host_.data(), elems * sizeof(float), cudaMemcpyHostToDevice, stream_));
      convert_from_f32(staging_.get(), dst.get() + offset + static_cast<size_t>(r) * m.cols, dtype_, elems, stream_);
    }
  }
  Buffer16 make(const Matrix& m) {
    Buffer16 b(m.elements());
    put(m, b, 0);
    return b;
  }

  void put(const std::vector<float>& src, Buffer16& dst, size_t offset) {
    SPW_CHECK(offset + src.size() <= dst.size(), "upload_weights: {} elements at offset {} into a buffer of {}",
              src.size(), offset, dst.size());
    for (size_t i = 0; i < src.size(); i += staging_.size()) {
      const size_t n = std::min(staging_.size(), src.size() - i);
      SPW_CUDA_CHECK(cudaMemcpyAsync(staging_.get(), src.data() + i, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
      convert_from_f32(staging_.get(), dst.get() + offset + i, dtype_, n, stream_);
    }
  }
  Buffer16 make(const std::vector<float>& src) {
    Buffer16 b(src.size());
    put(src, b, 0);
    return b;
  }
  // Several matrices stacked row-wise into one weight (+ their biases, zeros where one has none).
  void fuse(std::initializer_list<Matrix*> parts, Buffer16& w, Buffer16& bias) {
    size_t elems = 0, rows = 0;
    bool any_bias = false;
    for (Matrix* m : parts) {
      elems += m->elements();
      rows += m->rows;
      any_bias |= !m->bias.empty();
    }
    w = Buffer16(elems);
    if (any_bias) {
      bias = Buffer16(rows);
      SPW_CUDA_CHECK(cudaMemsetAsync(bias.get(), 0, bias.bytes(), stream_));  // 0 bits = 0.0 in fp16 and bf16
    }
    size_t off = 0, row = 0;
    for (Matrix* m : parts) {
      put(*m, w, off);
      if (!m->bias.empty()) put(m->bias, bias, row);
      off += m->elements();
      row += m->rows;
    }
    for (Matrix* m : parts) release(*m);
  }
  void release(std::vector<float>& v) {
    SPW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<float>().swap(v);
  }
  void release(Matrix& m) {
    SPW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<uint8_t>().swap(m.data);
    std::vector<float>().swap(m.bias);
  }

 private:
  DType dtype_;
  cudaStream_t stream_;
  DeviceBuffer<float> staging_;
  std::vector<float> host_;  // one chunk of dequantised rows
};

}  // namespace

size_t DeviceWeights::bytes() const {
  size_t b = token_embd.bytes() + output_norm.bytes() + output.bytes() + output_bias.bytes();
  for (const DeviceLayer& l : layers)
    b += l.attn_norm.bytes() + l.ffn_norm.bytes() + l.wqkv.bytes() + l.bqkv.bytes() + l.wo.bytes() + l.bo.bytes() +
         l.wgu.bytes() + l.bgu.bytes() + l.wdown.bytes() + l.bdown.bytes();
  return b;
}

DeviceWeights upload_weights(LlamaWeights&& w, DType dtype, cudaStream_t stream) {
  DeviceWeights d;
  d.config = w.config;
  d.neox_rope = w.neox_rope;
  d.dtype = dtype;
  size_t largest = std::max(w.token_embd.elements(), w.output.elements());
  for (const LlamaLayer& l : w.layers)
    largest = std::max({largest, l.wq.elements(), l.wk.elements(), l.wv.elements(), l.wo.elements(),
                        l.w_gate.elements(), l.w_up.elements(), l.w_down.elements(), l.attn_norm.size()});
  Uploader up(dtype, stream, largest);
  d.token_embd = up.make(w.token_embd);
  up.release(w.token_embd);
  d.output_norm = up.make(w.output_norm);
  if (!w.output.empty()) {
    d.output = up.make(w.output);
    if (!w.output.bias.empty()) d.output_bias = up.make(w.output.bias);
    up.release(w.output);
  }
  for (LlamaLayer& l : w.layers) {
    DeviceLayer dl;
    dl.attn_norm = up.make(l.attn_norm);
    dl.ffn_norm = up.make(l.ffn_norm);
    up.fuse({&l.wq, &l.wk, &l.wv}, dl.wqkv, dl.bqkv);
    up.fuse({&l.wo}, dl.wo, dl.bo);
    up.fuse({&l.w_gate, &l.w_up}, dl.wgu, dl.bgu);
    up.fuse({&l.w_down}, dl.wdown, dl.bdown);
    up.release(l.attn_norm);
    up.release(l.ffn_norm);
    d.layers.push_back(std::move(dl));
  }
  SPW_CUDA_CHECK(cudaStreamSynchronize(stream));
  return d;
}

DeviceWeights random_weights(const ModelConfig& c, uint64_t seed, DType dtype, cudaStream_t stream) {
  DeviceWeights d;
  d.config = c;
  d.dtype = dtype;
  uint64_t tensor = 0;
  auto uniform = [&](size_t n, float scale) {
    Buffer16 b(n);
    fill_uniform(b.get(), dtype, n, seed * 0x100000001b3ULL + (++tensor), scale, stream);
    return b;
  };
  auto ones = [&](size_t n) {
    Buffer16 b(n);
    fill_value(b.get(), dtype, n, 1.f, stream);
    return b;
  };
  auto inv_sqrt = [](int fan_in) { return 1.f / std::sqrt(static_cast<float>(fan_in)); };
  const size_t H = c.hidden, q = size_t(c.num_heads) * c.head_dim, kv = size_t(c.num_kv_heads) * c.head_dim,
               I = c.intermediate, V = c.vocab_size;
  d.token_embd = uniform(V * H, 1.f);
  d.output_norm = ones(H);
  if (!c.tied_embeddings) d.output = uniform(V * H, inv_sqrt(c.hidden));
  for (int l = 0; l < c.num_layers; ++l) {
    DeviceLayer dl;
    dl.attn_norm = ones(H);
    dl.ffn_norm = ones(H);
    dl.wqkv = uniform((q + 2 * kv) * H, inv_sqrt(c.hidden));
    if (c.attention_bias) {
      dl.bqkv = Buffer16(q + 2 * kv);
      SPW_CUDA_CHECK(cudaMemsetAsync(dl.bqkv.get(), 0, dl.bqkv.bytes(), stream));
    }
    dl.wo = uniform(H * q, inv_sqrt(static_cast<int>(q)));
    dl.wgu = uniform(2 * I * H, inv_sqrt(c.hidden));
    dl.wdown = uniform(H * I, inv_sqrt(c.intermediate));
    d.layers.push_back(std::move(dl));
  }
  SPW_CUDA_CHECK(cudaStreamSynchronize(stream));
  return d;
}

}  // namespace spw::rt::cuda

#include "runtime/gguf_writer.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "runtime/dequant.h"

namespace spw::rt {
namespace {

void put_half(std::vector<uint8_t>& o, float f) {
  uint16_t h = float_to_half_bits(f);
  o.push_back(h & 0xff);
  o.push_back(h >> 8);
}

template <typename T>
void put(std::vector<uint8_t>& o, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  o.insert(o.end(), b, b + sizeof(T));
}
void put_string(std::vector<uint8_t>& o, const std::string& s) {
  put<uint64_t>(o, s.size());
  o.insert(o.end(), s.begin(), s.end());
}

void put_number(std::vector<uint8_t>& o, GgufType t, double v) {
  switch (t) {
    case GgufType::u8: put<uint8_t>(o, static_cast<uint8_t>(v)); break;
    case GgufType::i8: put<int8_t>(o, static_cast<int8_t>(v)); break;
    case GgufType::u16: put<uint16_t>(o, static_cast<uint16_t>(v)); break;
    case GgufType::i16: put<int16_t>(o, static_cast<int16_t>(v)); break;
    case GgufType::u32: put<uint32_t>(o, static_cast<uint32_t>(v)); break;
    case GgufType::i32: put<int32_t>(o, static_cast<int32_t>(v)); break;
    case GgufType::u64: put<uint64_t>(o, static_cast<uint64_t>(v)); break;
    case GgufType::i64: put<int64_t>(o, static_cast<int64_t>(v)); break;
    case GgufType::f32: put<float>(o, static_cast<float>(v)); break;
    case GgufType::f64: put<double>(o, v); break;
    case GgufType::boolean: put<uint8_t>(o, v != 0 ? 1 : 0); break;
    default: fail("GgufWriter: {} is not a numeric type", gguf_type_name(t));
  }
}

void put_value(std::vector<uint8_t>& o, const GgufValue& v) {
  if (v.type == GgufType::string) {
    put_string(o, v.s);
  } else if (v.type == GgufType::array) {
    put<uint32_t>(o, static_cast<uint32_t>(v.elem));
    put<uint64_t>(o, v.size());
    for (const auto& s : v.strings) put_string(o, s);
    for (double d : v.numbers) put_number(o, v.elem, d);
    for (const auto& item : v.items) put_value(o, item);
  } else {
    const bool is_float = v.type == GgufType::f32 || v.type == GgufType::f64;
    put_number(o, v.type, is_float ? v.f : static_cast<double>(v.i));
  }
}

}  // namespace

std::vector<uint8_t> quantize(uint32_t type, const float* x, int64_t n) {
  std::vector<uint8_t> o;
  o.reserve(tensor_bytes(type, n));
  switch (static_cast<TensorType>(type)) {
    case TensorType::F32:
      for (int64_t i = 0; i < n; ++i) put<float>(o, x[i]);
      break;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) put_half(o, x[i]);
      break;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) put<uint16_t>(o, float_to_bf16_bits(x[i]));
      break;
    case TensorType::Q8_0:
      for (int64_t b = 0; b < n; b += 32) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
        const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
        put_half(o, d);
        for (int j = 0; j < 32; ++j) o.push_back(static_cast<uint8_t>(static_cast<int8_t>(std::lround(x[b + j] * id))));
      }
      break;
    case TensorType::Q4_0:
      for (int64_t b = 0; b < n; b += 32) {
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j)
          if (std::fabs(x[b + j]) > amax) { amax = std::fabs(x[b + j]); max = x[b + j]; }
        const float d = max / -8.f, id = d ? 1.f / d : 0.f;
        put_half(o, d);
        for (int j = 0; j < 16; ++j) {
          auto q = [&](float v) { return static_cast<uint8_t>(std::min(15, static_cast<int>(v * id + 8.5f))); };
          o.push_back(q(x[b + j]) | (q(x[b + j + 16]) << 4));
        }
      }
      break;
    case TensorType::Q4_1:
      for (int64_t b = 0; b < n; b += 32) {
        float mn = x[b], mx = x[b];
        for (int j = 1; j < 32; ++j) { mn = std::min(mn, x[b + j]); mx = std::max(mx, x[b + j]); }
        const float d = (mx - mn) / 15.f, id = d ? 1.f / d : 0.f;
        put_half(o, d);
        put_half(o, mn);
        for (int j = 0; j < 16; ++j) {
          auto q = [&](float v) { return static_cast<uint8_t>(std::min(15, static_cast<int>((v - mn) * id + 0.5f))); };
          o.push_back(q(x[b + j]) | (q(x[b + j + 16]) << 4));
        }
      }
      break;
  }
  return o;
}

void GgufWriter::add(const std::string& key, const GgufValue& v) { meta_.emplace_back(key, v); }
void GgufWriter::add_string(const std::string& key, const std::string& s) {
  GgufValue v;
  v.type = GgufType::string;
  v.s = s;
  add(key, v);
}
static GgufValue scalar(GgufType t, int64_t i, double f) {
  GgufValue v;
  v.type = t;
  v.i = i;
  v.f = f;
  return v;
}
void GgufWriter::add_u32(const std::string& key, uint32_t x) { add(key, scalar(GgufType::u32, x, x)); }
void GgufWriter::add_i32(const std::string& key, int32_t x) { add(key, scalar(GgufType::i32, x, x)); }
void GgufWriter::add_f32(const std::string& key, float x) { add(key, scalar(GgufType::f32, 0, x)); }
void GgufWriter::add_bool(const std::string& key, bool x) { add(key, scalar(GgufType::boolean, x, x)); }
void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& s) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem = GgufType::string;
  v.strings = s;
  add(key, v);
}
void GgufWriter::add_numbers(const std::string& key, GgufType elem, const std::vector<double>& n) {
  GgufValue v;
  v.type = GgufType::array;
  v.elem = elem;
  v.numbers = n;
  add(key, v);
}
void GgufWriter::add_tensor(const std::string& name, uint32_t type, const std::vector<int64_t>& dims,
                            const std::vector<float>& data) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  SPW_CHECK(n == static_cast<int64_t>(data.size()), "GgufWriter: tensor '{}' has {} values for {} elements", name,
            data.size(), n);
  tensors_.push_back({name, type, dims, quantize(type, data.data(), n)});
}

std::vector<uint8_t> GgufWriter::bytes(uint32_t version) const {
  constexpr uint64_t kAlign = 32;
  std::vector<uint8_t> o;
  put<uint32_t>(o, 0x46554747);
  put<uint32_t>(o, version);
  put<uint64_t>(o, tensors_.size());
  put<uint64_t>(o, meta_.size());
  for (const auto& [key, v] : meta_) {
    put_string(o, key);
    put<uint32_t>(o, static_cast<uint32_t>(v.type));
    put_value(o, v);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(o, t.name);
    put<uint32_t>(o, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put<uint64_t>(o, static_cast<uint64_t>(d));
    put<uint32_t>(o, t.type);
    put<uint64_t>(o, offset);
    offset += (t.data.size() + kAlign - 1) / kAlign * kAlign;
  }
  o.resize((o.size() + kAlign - 1) / kAlign * kAlign, 0);
  for (const auto& t : tensors_) {
    o.insert(o.end(), t.data.begin(), t.data.end());
    o.resize((o.size() + kAlign - 1) / kAlign * kAlign, 0);
  }
  return o;
}

void GgufWriter::write(const std::string& path, uint32_t version) const {
  std::vector<uint8_t> b = bytes(version);
  std::ofstream f(path, std::ios::binary);
  SPW_CHECK(f.good(), "GgufWriter: cannot write {}", path);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  SPW_CHECK(f.good(), "GgufWriter: write to {} failed", path);
}

// GPT-2's byte-to-unicode map: printable bytes map to themselves, the rest to U+0100 + k.
static std::string byte_token(int b) {
  auto printable = [](int c) { return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255); };
  int cp = b;
  if (!printable(b)) {
    int k = 0;
    for (int c = 0; c < b; ++c) k += !printable(c);
    cp = 256 + k;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else { s += static_cast<char>(0xC0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
  return s;
}

void write_tiny_llama(const std::string& path, const TinyLlamaSpec& s) {
  SPW_CHECK_ARG(s.vocab >= 259, "write_tiny_llama", "vocab", s.vocab, "must be >= 259 (bytes + 3 special tokens)");
  SPW_CHECK_ARG(s.hidden % s.heads == 0 && s.heads % s.kv_heads == 0 && (s.hidden / s.heads) % 2 == 0,
                "write_tiny_llama", "heads", s.heads, "must divide hidden (even head dim) and be a multiple of kv_heads");
  SPW_CHECK_ARG(s.hidden % 32 == 0 && s.intermediate % 32 == 0, "write_tiny_llama", "hidden", s.hidden,
                "hidden and intermediate must be multiples of 32 (quantisation blocks)");
  GgufWriter w;
  const std::string a = s.arch + ".";
  w.add_string("general.architecture", s.arch);
  w.add_string("general.name", "spillway-tiny-random");
  w.add_u32(a + "block_count", s.layers);
  w.add_u32(a + "context_length", s.context);
  w.add_u32(a + "embedding_length", s.hidden);
  w.add_u32(a + "feed_forward_length", s.intermediate);
  w.add_u32(a + "attention.head_count", s.heads);
  w.add_u32(a + "attention.head_count_kv", s.kv_heads);
  w.add_f32(a + "rope.freq_base", 10000.f);
  w.add_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<std::string> tokens;
  std::vector<double> types;
  for (int b = 0; b < 256; ++b) { tokens.push_back(byte_token(b)); types.push_back(1); }
  for (const char* sp : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) { tokens.push_back(sp); types.push_back(3); }
  while (static_cast<int>(tokens.size()) < s.vocab) {
    tokens.push_back(fmt::format("<unused{}>", tokens.size()));
    types.push_back(5);
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "smollm");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_numbers("tokenizer.ggml.token_type", GgufType::i32, types);
  w.add_strings("tokenizer.ggml.merges", {});
  w.add_u32("tokenizer.ggml.bos_token_id", 256);
  w.add_u32("tokenizer.ggml.eos_token_id", 258);
  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto randn = [&](int64_t n, float scale) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng) * scale;
    return v;
  };
  auto ones_ish = [&](int64_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = 1.f + 0.1f * nd(rng);
    return v;
  };
  const int hd = s.hidden / s.heads, q = s.heads * hd, kv = s.kv_heads * hd;
  const float in_scale = 1.f / std::sqrt(static_cast<float>(s.hidden));
  w.add_tensor("token_embd.weight", s.type, {s.hidden, s.vocab}, randn(int64_t(s.vocab) * s.hidden, 1.f));
  w.add_tensor("output_norm.weight", 0, {s.hidden}, ones_ish(s.hidden));
  if (!s.tied) w.add_tensor("output.weight", s.type, {s.hidden, s.vocab}, randn(int64_t(s.vocab) * s.hidden, in_scale));
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    w.add_tensor(p + "attn_norm.weight", 0, {s.hidden}, ones_ish(s.hidden));
    w.add_tensor(p + "ffn_norm.weight", 0, {s.hidden}, ones_ish(s.hidden));
    w.add_tensor(p + "attn_q.weight", s.type, {s.hidden, q}, randn(int64_t(q) * s.hidden, in_scale));
    w.add_tensor(p + "attn_k.weight", s.type, {s.hidden, kv}, randn(int64_t(kv) * s.hidden, in_scale));
    w.add_tensor(p + "attn_v.weight", s.type, {s.hidden, kv}, randn(int64_t(kv) * s.hidden, in_scale));
    if (s.arch == "qwen2") {
      w.add_tensor(p + "attn_q.bias", 0, {q}, randn(q, 0.1f));
      w.add_tensor(p + "attn_k.bias", 0, {kv}, randn(kv, 0.1f));
      w.add_tensor(p + "attn_v.bias", 0, {kv}, randn(kv, 0.1f));
    }
    w.add_tensor(p + "attn_output.weight", s.type, {q, s.hidden}, randn(int64_t(q) * s.hidden, 1.f / std::sqrt(float(q))));
    w.add_tensor(p + "ffn_gate.weight", s.type, {s.hidden, s.intermediate}, randn(int64_t(s.intermediate) * s.hidden, in_scale));
    w.add_tensor(p + "ffn_up.weight", s.type, {s.hidden, s.intermediate}, randn(int64_t(s.intermediate) * s.hidden, in_scale));
    w.add_tensor(p + "ffn_down.weight", s.type, {s.intermediate, s.hidden},
                 randn(int64_t(s.intermediate) * s.hidden, 1.f / std::sqrt(float(s.intermediate))));
  }
  w.write(path);
}

}  // namespace spw::rt

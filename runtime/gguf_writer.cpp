#include "runtime/gguf_writer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <utility>

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"
#include "runtime/dequant.h"

namespace spw::rt {
namespace {

// Appends n bytes (resize + memcpy: GCC 12 warns about vector growth through insert/push_back
// of whole blocks, a false positive).
void append(std::vector<uint8_t>& o, const uint8_t* p, size_t n) {
  const size_t at = o.size();
  o.resize(at + n);
  std::memcpy(o.data() + at, p, n);
}

void put_half(std::vector<uint8_t>& o, float f) {
  uint16_t h = float_to_half_bits(f);
  o.push_back(h & 0xff);
  o.push_back(h >> 8);
}

template <typename T>
void put(std::vector<uint8_t>& o, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  append(o, b, sizeof(T));
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
    case TensorType::Q4_K:
      // Simple (not ggml's searched) k-quantisation: per 32-element sub-block scale (max -
      // min) / 15 and min -min(0, min), both to 6 bits under the super-block's fp16 d / dmin.
      for (int64_t b = 0; b < n; b += 256) {
        float scale[8], minv[8], max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; ++j) {
          float mn = 0, mx = x[b + 32 * j];
          for (int l = 0; l < 32; ++l) { mn = std::min(mn, x[b + 32 * j + l]); mx = std::max(mx, x[b + 32 * j + l]); }
          scale[j] = (mx - mn) / 15.f;
          minv[j] = -mn;
          max_scale = std::max(max_scale, scale[j]);
          max_min = std::max(max_min, minv[j]);
        }
        const float d = half_bits_to_float(float_to_half_bits(max_scale / 63.f));
        const float dmin = half_bits_to_float(float_to_half_bits(max_min / 63.f));
        uint8_t blk[144];  // d, dmin, 12 scale bytes, 128 bytes of nibbles
        const uint16_t dh = float_to_half_bits(d), dminh = float_to_half_bits(dmin);
        std::memcpy(blk, &dh, 2);
        std::memcpy(blk + 2, &dminh, 2);
        int ls[8], lm[8];
        uint8_t sc[12] = {};
        for (int j = 0; j < 8; ++j) {
          ls[j] = d > 0 ? std::clamp(static_cast<int>(std::lround(scale[j] / d)), 0, 63) : 0;
          lm[j] = dmin > 0 ? std::clamp(static_cast<int>(std::lround(minv[j] / dmin)), 0, 63) : 0;
        }
        for (int j = 0; j < 4; ++j) {
          sc[j] = static_cast<uint8_t>(ls[j] | ((ls[j + 4] >> 4) << 6));
          sc[j + 4] = static_cast<uint8_t>(lm[j] | ((lm[j + 4] >> 4) << 6));
          sc[j + 8] = static_cast<uint8_t>((ls[j + 4] & 0x0f) | ((lm[j + 4] & 0x0f) << 4));
        }
        std::memcpy(blk + 4, sc, 12);
        uint8_t q[256];
        for (int j = 0; j < 8; ++j) {
          const float dd = d * ls[j], mm = dmin * lm[j];
          for (int l = 0; l < 32; ++l)
            q[32 * j + l] = dd > 0 ? static_cast<uint8_t>(std::clamp(
                                         static_cast<int>(std::lround((x[b + 32 * j + l] + mm) / dd)), 0, 15))
                                   : 0;
        }
        for (int g = 0; g < 4; ++g)
          for (int l = 0; l < 32; ++l) blk[16 + 32 * g + l] = static_cast<uint8_t>(q[64 * g + l] | (q[64 * g + 32 + l] << 4));
        append(o, blk, sizeof blk);
      }
      break;
    case TensorType::Q6_K:
      // Per 16-element sub-block scale amax / 31 as int8 under the super-block's fp16 d; values
      // 6-bit in -32..31.
      for (int64_t b = 0; b < n; b += 256) {
        float scale[16], max_scale = 0;
        for (int s16 = 0; s16 < 16; ++s16) {
          float amax = 0;
          for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[b + 16 * s16 + l]));
          scale[s16] = amax / 31.f;
          max_scale = std::max(max_scale, scale[s16]);
        }
        const float d = half_bits_to_float(float_to_half_bits(max_scale / 127.f));
        int8_t sc[16];
        uint8_t L[256];
        for (int s16 = 0; s16 < 16; ++s16) {
          sc[s16] = static_cast<int8_t>(d > 0 ? std::clamp(static_cast<int>(std::lround(scale[s16] / d)), 0, 127) : 0);
          const float dd = d * sc[s16];
          for (int l = 0; l < 16; ++l) {
            const int qv = dd > 0 ? std::clamp(static_cast<int>(std::lround(x[b + 16 * s16 + l] / dd)), -32, 31) : 0;
            L[16 * s16 + l] = static_cast<uint8_t>(qv + 32);
          }
        }
        uint8_t ql[128] = {}, qh[64] = {};
        for (int h = 0; h < 2; ++h)
          for (int l = 0; l < 32; ++l) {
            const uint8_t* e = L + 128 * h;
            ql[64 * h + l] = static_cast<uint8_t>((e[l] & 0x0f) | ((e[l + 64] & 0x0f) << 4));
            ql[64 * h + l + 32] = static_cast<uint8_t>((e[l + 32] & 0x0f) | ((e[l + 96] & 0x0f) << 4));
            qh[32 * h + l] = static_cast<uint8_t>((e[l] >> 4) | ((e[l + 32] >> 4) << 2) | ((e[l + 64] >> 4) << 4) |
                                                  ((e[l + 96] >> 4) << 6));
          }
        uint8_t blk[210];  // ql, qh, 16 int8 scales, d
        std::memcpy(blk, ql, 128);
        std::memcpy(blk + 128, qh, 64);
        std::memcpy(blk + 192, sc, 16);
        const uint16_t dh = float_to_half_bits(d);
        std::memcpy(blk + 208, &dh, 2);
        append(o, blk, sizeof blk);
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
  // The data section's alignment: general.alignment when it holds a power of two (what readers
  // require), else the default 32 (a bad value is still written, for the reader's tests).
  uint64_t align = 32;
  for (const auto& [key, v] : meta_)
    if (key == "general.alignment" && v.type != GgufType::array && v.i > 0 && (v.i & (v.i - 1)) == 0)
      align = static_cast<uint64_t>(v.i);
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
    offset += (t.data.size() + align - 1) / align * align;
  }
  o.resize((o.size() + align - 1) / align * align, 0);
  for (const auto& t : tensors_) {
    o.insert(o.end(), t.data.begin(), t.data.end());
    o.resize((o.size() + align - 1) / align * align, 0);
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
  for (const auto& [name, v] : {std::pair<const char*, int>{"hidden", s.hidden}, {"layers", s.layers}, {"heads", s.heads},
                                {"kv_heads", s.kv_heads}, {"intermediate", s.intermediate}, {"context", s.context}})
    SPW_CHECK_ARG(v >= 1, "write_tiny_llama", name, v, "must be >= 1");
  SPW_CHECK_ARG(s.hidden % s.heads == 0 && s.heads % s.kv_heads == 0 && (s.hidden / s.heads) % 2 == 0,
                "write_tiny_llama", "heads", s.heads, "must divide hidden (even head dim) and be a multiple of kv_heads");
  const int block = static_cast<int>(std::max<int64_t>(32, type_block_elements(s.type)));
  SPW_CHECK_ARG(s.hidden % block == 0 && s.intermediate % block == 0, "write_tiny_llama", "hidden", s.hidden,
                fmt::format("hidden and intermediate must be multiples of {} (quantisation blocks of {})", block,
                            tensor_type_name(s.type)));
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

// Tokenizer from GGUF metadata (tokenizer.ggml.* and tokenizer.chat_template).
//
// from_gguf_file() reads only the key/value section of the file — the tokenizer needs no
// tensor — with its own small reader, so the CLI and tests can tokenize without mapping
// ~100 MB of weights. Every length and count is checked against the file size before it is
// used: a truncated or corrupted file gives an error naming the key, never a crash.
#include <cstring>
#include <fstream>
#include <map>
#include <variant>

#include "kernels/common/error.h"
#include "runtime/tokenizer.h"

namespace spw::rt {

namespace {

enum GgufType : uint32_t {
  kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64,
};

// One metadata value: a scalar (as int64/double), a string, or an array of either.
struct MetaValue {
  uint32_t type = 0;
  uint32_t elem_type = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<std::string> strings;
  std::vector<double> numbers;
};

class MetadataReader {
 public:
  explicit MetadataReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    SPW_CHECK(in_.good(), "GGUF {}: cannot open", path);
    in_.seekg(0, std::ios::end);
    size_ = uint64_t(in_.tellg());
    in_.seekg(0);
  }

  // Reads the header and keeps the values of keys starting with `prefix`.
  std::map<std::string, MetaValue> read(std::string_view prefix) {
    char magic[4];
    bytes(magic, 4, "magic");
    SPW_CHECK(std::memcmp(magic, "GGUF", 4) == 0, "GGUF {}: not a GGUF file (bad magic)", path_);
    uint32_t version = pod<uint32_t>("version");
    SPW_CHECK(version == 2 || version == 3, "GGUF {}: version = {}: supported are 2 and 3", path_, version);
    pod<uint64_t>("tensor count");
    uint64_t n_kv = pod<uint64_t>("metadata count");
    SPW_CHECK(n_kv < size_, "GGUF {}: metadata count = {}: larger than the file", path_, n_kv);
    std::map<std::string, MetaValue> out;
    for (uint64_t k = 0; k < n_kv; ++k) {
      std::string key = str("metadata key");
      MetaValue v;
      v.type = pod<uint32_t>("value type");
      bool keep = std::string_view(key).starts_with(prefix);
      value(v, key, keep);
      if (keep) out[key] = std::move(v);
    }
    return out;
  }

 private:
  void bytes(void* dst, uint64_t n, std::string_view what) {
    SPW_CHECK(uint64_t(in_.tellg()) + n <= size_, "GGUF {}: truncated while reading {}", path_, what);
    in_.read(static_cast<char*>(dst), std::streamsize(n));
  }
  template <class T>
  T pod(std::string_view what) {
    T v;
    bytes(&v, sizeof v, what);
    return v;
  }
  std::string str(std::string_view what) {
    uint64_t n = pod<uint64_t>(what);
    SPW_CHECK(n <= size_, "GGUF {}: {} has length {}: larger than the file", path_, what, n);
    std::string s(n, '\0');
    bytes(s.data(), n, what);
    return s;
  }
  static uint64_t scalar_size(uint32_t t) {
    switch (t) {
      case kU8: case kI8: case kBool: return 1;
      case kU16: case kI16: return 2;
      case kU32: case kI32: case kF32: return 4;
      case kU64: case kI64: case kF64: return 8;
      default: return 0;
    }
  }
  void scalar(uint32_t t, int64_t* i, double* f, const std::string& key) {
    switch (t) {
      case kU8: *i = pod<uint8_t>(key); break;
      case kI8: *i = pod<int8_t>(key); break;
      case kBool: *i = pod<uint8_t>(key) != 0; break;
      case kU16: *i = pod<uint16_t>(key); break;
      case kI16: *i = pod<int16_t>(key); break;
      case kU32: *i = pod<uint32_t>(key); break;
      case kI32: *i = pod<int32_t>(key); break;
      case kU64: *i = int64_t(pod<uint64_t>(key)); break;
      case kI64: *i = pod<int64_t>(key); break;
      case kF32: *f = pod<float>(key); *i = int64_t(*f); return;
      case kF64: *f = pod<double>(key); *i = int64_t(*f); return;
      default: spw::fail("GGUF {}: key {}: value type {} is not a GGUF type", path_, key, t);
    }
    *f = double(*i);
  }
  void value(MetaValue& v, const std::string& key, bool keep) {
    if (v.type == kString) {
      v.s = str(key);
    } else if (v.type == kArray) {
      v.elem_type = pod<uint32_t>(key);
      uint64_t n = pod<uint64_t>(key);
      SPW_CHECK(n <= size_, "GGUF {}: key {}: array count {} larger than the file", path_, key, n);
      if (v.elem_type == kString) {
        if (keep) v.strings.reserve(n);
        for (uint64_t j = 0; j < n; ++j) {
          std::string s = str(key);
          if (keep) v.strings.push_back(std::move(s));
        }
      } else if (uint64_t es = scalar_size(v.elem_type)) {
        SPW_CHECK(n * es <= size_, "GGUF {}: key {}: array of {} elements larger than the file", path_, key, n);
        if (!keep) {
          SPW_CHECK(uint64_t(in_.tellg()) + n * es <= size_, "GGUF {}: truncated in {}", path_, key);
          in_.seekg(std::streamoff(n * es), std::ios::cur);
          return;
        }
        v.numbers.resize(n);
        for (uint64_t j = 0; j < n; ++j) {
          int64_t i;
          scalar(v.elem_type, &i, &v.numbers[j], key);
        }
      } else {
        spw::fail("GGUF {}: key {}: array element type {} not supported here", path_, key, v.elem_type);
      }
    } else {
      scalar(v.type, &v.i, &v.f, key);
    }
  }

  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
};

const MetaValue* find(const std::map<std::string, MetaValue>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

TokenizerData data_from_metadata(const std::map<std::string, MetaValue>& m, const std::string& where) {
  auto require = [&](const std::string& key, uint32_t type) -> const MetaValue& {
    const MetaValue* v = find(m, key);
    SPW_CHECK(v, "{}: metadata key {} is missing: the file has no tokenizer", where, key);
    SPW_CHECK(v->type == type, "{}: metadata key {} has GGUF type {}, expected {}", where, key, v->type, type);
    return *v;
  };
  auto id = [&](const char* key, int32_t dflt) -> int32_t {
    const MetaValue* v = find(m, std::string("tokenizer.ggml.") + key);
    if (!v || v->type == kString || v->type == kArray) return dflt;
    return int32_t(v->i);
  };
  auto flag = [&](const char* key) -> std::optional<bool> {
    const MetaValue* v = find(m, std::string("tokenizer.ggml.") + key);
    if (!v || v->type != kBool) return std::nullopt;
    return v->i != 0;
  };
  TokenizerData d;
  d.model = require("tokenizer.ggml.model", kString).s;
  if (const MetaValue* pre = find(m, "tokenizer.ggml.pre"); pre && pre->type == kString) d.pre = pre->s;
  const MetaValue& tokens = require("tokenizer.ggml.tokens", kArray);
  SPW_CHECK(tokens.elem_type == kString, "{}: tokenizer.ggml.tokens is not an array of strings", where);
  d.tokens = tokens.strings;
  if (const MetaValue* s = find(m, "tokenizer.ggml.scores"); s && s->type == kArray)
    d.scores.assign(s->numbers.begin(), s->numbers.end());
  if (const MetaValue* t = find(m, "tokenizer.ggml.token_type"); t && t->type == kArray)
    for (double x : t->numbers) d.token_types.push_back(int32_t(x));
  if (const MetaValue* mg = find(m, "tokenizer.ggml.merges"); mg && mg->type == kArray) d.merges = mg->strings;
  d.bos_id = id("bos_token_id", -1);
  d.eos_id = id("eos_token_id", -1);
  d.unk_id = id("unknown_token_id", -1);
  d.pad_id = id("padding_token_id", -1);
  for (const char* key : {"eot_token_id", "eom_token_id"})
    if (int32_t e = id(key, -1); e >= 0) d.extra_eog_ids.push_back(e);
  // llama.cpp's defaults when the flags are absent: SentencePiece adds BOS, GPT-2 BPE does not.
  d.add_bos = flag("add_bos_token").value_or(d.model == "llama");
  d.add_eos = flag("add_eos_token").value_or(false);
  d.add_space_prefix = flag("add_space_prefix");
  if (const MetaValue* t = find(m, "tokenizer.chat_template"); t && t->type == kString) d.chat_template = t->s;
  return d;
}

}  // namespace

Tokenizer Tokenizer::from_gguf_file(const std::string& path) {
  MetadataReader reader(path);
  return Tokenizer(data_from_metadata(reader.read("tokenizer."), "GGUF " + path));
}

}  // namespace spw::rt

// GGUF reader (versions 2 and 3): metadata of every value type, tensor directory, and the
// tensor data of a memory-mapped file. Every count, length and offset is checked against the
// file size before use, so a truncated or corrupted file raises spw::Error naming what is
// wrong ("GGUF m.gguf: tensor 'blk.0.attn_q.weight': data [.., ..) past the end of the file")
// and never reads out of bounds. Tensor data is not copied: tensor_data() points into the map.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/dequant.h"

namespace spw::rt {

/// Metadata value types, numbered as in the GGUF specification.
enum class GgufType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
/// "u8", "i8", ..., "f64" ("unknown" for a number outside the enum): used in error messages.
const char* gguf_type_name(GgufType t);

/// One metadata value. Scalars: integer types in `i` (u64 values above INT64_MAX are
/// rejected), floats in `f`, bool in `i` (0/1), strings in `s`. Arrays: element type in
/// `elem`, elements in `strings`, `numbers` (any numeric/bool element as double, integers
/// exact up to 2^53) or `items` (arrays of arrays).
struct GgufValue {
  GgufType type = GgufType::u8;
  GgufType elem = GgufType::u8;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<std::string> strings;
  std::vector<double> numbers;
  std::vector<GgufValue> items;
  size_t size() const;  // array length (0 for scalars)
};

/// Name of a TensorType value (runtime/dequant.h), e.g. "Q4_1".
const char* tensor_type_name(uint32_t t);

struct GgufTensorInfo {
  std::string name;
  uint32_t type = 0;             // a TensorType value (others are rejected at open)
  std::vector<int64_t> dims;     // ggml order: dims[0] is the contiguous (fastest) one
  uint64_t offset = 0;           // relative to the data section
  int64_t elements = 0;
  uint64_t bytes = 0;
  /// rows x cols view for 2-D weights: rows = dims[1], cols = dims[0].
  int64_t rows() const { return dims.size() > 1 ? dims[1] : 1; }
  int64_t cols() const { return dims.empty() ? 1 : dims[0]; }
};

class GgufFile {
 public:
  /// Memory-maps and parses `path`. Throws spw::Error on any inconsistency.
  static GgufFile open(const std::string& path);
  /// Parses an in-memory copy (tests, fuzzing); `name` appears in error messages.
  static GgufFile from_bytes(std::vector<uint8_t> bytes, const std::string& name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  const std::map<std::string, GgufValue>& metadata() const { return meta_; }
  bool has(const std::string& key) const { return meta_.count(key) != 0; }
  /// The value of `key`; throws naming the key if absent.
  const GgufValue& get(const std::string& key) const;
  /// Typed getters: throw naming the key when absent or of an incompatible type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;      // any integer type (or bool)
  double get_float(const std::string& key) const;     // f32/f64 or any integer
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<double> get_numbers(const std::string& key) const;  // numeric array
  /// Same, with a default when the key is absent (still throws on a wrong type).
  int64_t get_int_or(const std::string& key, int64_t fallback) const;
  double get_float_or(const std::string& key, double fallback) const;
  std::string get_string_or(const std::string& key, const std::string& fallback) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  /// The tensor named `name`, or nullptr.
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  /// Raw bytes of a tensor (bounds checked at open).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return data_ + data_offset_ + t.offset; }

 private:
  GgufFile() = default;
  void parse();

  std::string path_;
  std::vector<uint8_t> owned_;     // from_bytes
  void* map_ = nullptr;            // open(): mmap
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // whole file
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue> meta_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace spw::rt

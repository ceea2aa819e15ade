// GGUF parsing with a bounds-checked cursor: nothing is read before its size has been checked
// against the bytes that remain, counts are capped before anything is reserved, and tensor
// ranges are checked against the data section. See gguf.h.
#include "runtime/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include "kernels/common/error.h"
#include "runtime/dequant.h"

namespace spw::rt {

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "unknown";
}

const char* tensor_type_name(uint32_t t) {
  switch (static_cast<TensorType>(t)) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::BF16: return "BF16";
    case TensorType::Q8_0: return "Q8_0";
    case TensorType::Q4_0: return "Q4_0";
    case TensorType::Q4_1: return "Q4_1";
    case TensorType::Q4_K: return "Q4_K";
    case TensorType::Q6_K: return "Q6_K";
  }
  return "unsupported";
}

size_t GgufValue::size() const {
  if (type != GgufType::array) return 0;
  return strings.size() + numbers.size() + items.size();
}

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxCount = 1ull << 24;   // keys, tensors, array elements: far above real files
constexpr int kMaxArrayDepth = 4;
constexpr int kMaxDims = 4;

// Cursor over the file bytes; every read names what it reads in its error.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& file) : d_(data), n_(size), file_(file) {}

  size_t pos() const { return p_; }
  size_t size() const { return n_; }

  void need(uint64_t bytes, const std::string& what) const {
    if (bytes > n_ - p_)
      fail("GGUF {}: {} needs {} bytes at offset {} but the file has {} left (truncated?)", file_, what,
           bytes, p_, n_ - p_);
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_ + p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  uint64_t read_count(const std::string& what, uint64_t max = kMaxCount) {
    uint64_t c = read<uint64_t>(what);
    if (c > max) fail("GGUF {}: {} = {} is larger than the limit {} (corrupted?)", file_, what, c, max);
    return c;
  }
  std::string read_string(const std::string& what) {
    uint64_t len = read<uint64_t>(what + " length");
    need(len, what + fmt::format(" (string of {} bytes)", len));
    std::string s(reinterpret_cast<const char*>(d_ + p_), static_cast<size_t>(len));
    p_ += len;
    return s;
  }
  const std::string& file() const { return file_; }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t p_ = 0;
  const std::string& file_;
};

GgufType read_type(Cursor& c, const std::string& what) {
  uint32_t t = c.read<uint32_t>(what + " type");
  if (t > 12) fail("GGUF {}: {} has unknown value type {}", c.file(), what, t);
  return static_cast<GgufType>(t);
}

double read_number(Cursor& c, GgufType t, const std::string& what, int64_t* as_int) {
  switch (t) {
    case GgufType::u8: return static_cast<double>(*as_int = c.read<uint8_t>(what));
    case GgufType::i8: return static_cast<double>(*as_int = c.read<int8_t>(what));
    case GgufType::u16: return static_cast<double>(*as_int = c.read<uint16_t>(what));
    case GgufType::i16: return static_cast<double>(*as_int = c.read<int16_t>(what));
    case GgufType::u32: return static_cast<double>(*as_int = c.read<uint32_t>(what));
    case GgufType::i32: return static_cast<double>(*as_int = c.read<int32_t>(what));
    case GgufType::i64: return static_cast<double>(*as_int = c.read<int64_t>(what));
    case GgufType::u64: {
      uint64_t v = c.read<uint64_t>(what);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("GGUF {}: {} = {} does not fit a signed 64-bit integer", c.file(), what, v);
      return static_cast<double>(*as_int = static_cast<int64_t>(v));
    }
    case GgufType::boolean: {
      uint8_t b = c.read<uint8_t>(what);
      if (b > 1) fail("GGUF {}: {} is a bool with value {}", c.file(), what, b);
      return static_cast<double>(*as_int = b);
    }
    case GgufType::f32: { float v = c.read<float>(what); *as_int = 0; return v; }
    case GgufType::f64: { double v = c.read<double>(what); *as_int = 0; return v; }
    default: fail("GGUF {}: {} is not a number", c.file(), what);
  }
}

GgufValue read_value(Cursor& c, GgufType t, const std::string& what, int depth) {
  GgufValue v;
  v.type = t;
  if (t == GgufType::string) {
    v.s = c.read_string(what);
  } else if (t == GgufType::array) {
    if (depth >= kMaxArrayDepth) fail("GGUF {}: {} nests arrays deeper than {}", c.file(), what, kMaxArrayDepth);
    v.elem = read_type(c, what + " element");
    uint64_t n = c.read_count(what + " element count");
    // Each element takes at least one byte: a count beyond the remaining bytes is corrupt.
    c.need(n, what + fmt::format(" ({} elements)", n));
    for (uint64_t k = 0; k < n; ++k) {
      if (v.elem == GgufType::string) v.strings.push_back(c.read_string(what));
      else if (v.elem == GgufType::array) v.items.push_back(read_value(c, v.elem, what, depth + 1));
      else { int64_t ignored; v.numbers.push_back(read_number(c, v.elem, what, &ignored)); }
    }
  } else {
    v.f = read_number(c, t, what, &v.i);  // (v.i = 0 for f32 / f64)
  }
  return v;
}

bool is_integer(GgufType t) {
  return t == GgufType::u8 || t == GgufType::i8 || t == GgufType::u16 || t == GgufType::i16 ||
         t == GgufType::u32 || t == GgufType::i32 || t == GgufType::u64 || t == GgufType::i64 ||
         t == GgufType::boolean;
}

}  // namespace

GgufFile::GgufFile(GgufFile&& o) noexcept { *this = std::move(o); }
GgufFile& GgufFile::operator=(GgufFile&& o) noexcept {
  std::swap(path_, o.path_);
  std::swap(owned_, o.owned_);
  std::swap(map_, o.map_);
  std::swap(map_size_, o.map_size_);
  std::swap(data_, o.data_);
  std::swap(size_, o.size_);
  std::swap(version_, o.version_);
  std::swap(alignment_, o.alignment_);
  std::swap(data_offset_, o.data_offset_);
  std::swap(meta_, o.meta_);
  std::swap(tensors_, o.tensors_);
  std::swap(tensor_index_, o.tensor_index_);
  return *this;
}
GgufFile::~GgufFile() {
  if (map_) munmap(map_, map_size_);
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  SPW_CHECK(fd >= 0, "GGUF {}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  const int stat_rc = fstat(fd, &st);
  if (stat_rc != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0) {
    ::close(fd);
    if (stat_rc == 0 && S_ISDIR(st.st_mode)) fail("GGUF {}: is a directory, not a model file", path);
    if (stat_rc == 0 && !S_ISREG(st.st_mode)) fail("GGUF {}: not a regular file (a device or a pipe)", path);
    fail("GGUF {}: empty or unreadable file", path);
  }
  f.map_size_ = static_cast<size_t>(st.st_size);
  void* m = mmap(nullptr, f.map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  SPW_CHECK(m != MAP_FAILED, "GGUF {}: mmap of {} bytes failed: {}", path, f.map_size_, std::strerror(errno));
  f.map_ = m;
  f.data_ = static_cast<const uint8_t*>(m);
  f.size_ = f.map_size_;
  f.parse();
  return f;
}

GgufFile GgufFile::from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  GgufFile f;
  f.path_ = name;
  f.owned_ = std::move(bytes);
  f.data_ = f.owned_.data();
  f.size_ = f.owned_.size();
  f.parse();
  return f;
}

void GgufFile::parse() {
  Cursor c(data_, size_, path_);
  uint32_t magic = c.read<uint32_t>("magic");
  SPW_CHECK(magic == kMagic, "GGUF {}: bad magic 0x{:08x} (not a GGUF file)", path_, magic);
  version_ = c.read<uint32_t>("version");
  SPW_CHECK(version_ == 2 || version_ == 3, "GGUF {}: version {} is not supported (2 and 3 are)", path_, version_);
  const uint64_t n_tensors = c.read_count("tensor count");
  const uint64_t n_kv = c.read_count("metadata count");
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string(fmt::format("metadata key #{}", k));
    GgufType t = read_type(c, fmt::format("metadata '{}'", key));
    GgufValue v = read_value(c, t, fmt::format("metadata '{}'", key), 0);
    SPW_CHECK(meta_.emplace(key, std::move(v)).second, "GGUF {}: metadata key '{}' appears twice", path_, key);
  }
  if (has("general.alignment")) {
    int64_t a = get_int("general.alignment");
    SPW_CHECK(a > 0 && a <= 65536 && (a & (a - 1)) == 0, "GGUF {}: general.alignment = {}: must be a power of two <= 65536",
              path_, a);
    alignment_ = static_cast<uint64_t>(a);
  }
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.read_string(fmt::format("tensor #{} name", k));
    const std::string what = fmt::format("tensor '{}'", t.name);
    uint32_t nd = c.read<uint32_t>(what + " dimension count");
    SPW_CHECK(nd >= 1 && nd <= kMaxDims, "GGUF {}: {} has {} dimensions (1..{} supported)", path_, what, nd, kMaxDims);
    t.elements = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t dim = c.read<uint64_t>(what + " dimension");
      SPW_CHECK(dim >= 1 && dim <= (1ull << 40), "GGUF {}: {} dimension {} = {} is out of range", path_, what, d, dim);
      SPW_CHECK(static_cast<uint64_t>(t.elements) <= (1ull << 42) / dim, "GGUF {}: {} has too many elements", path_, what);
      t.dims.push_back(static_cast<int64_t>(dim));
      t.elements *= static_cast<int64_t>(dim);
    }
    t.type = c.read<uint32_t>(what + " type");
    SPW_CHECK(type_block_elements(t.type) > 0, "GGUF {}: {} has tensor type {} ({}), which Spillway cannot load",
              path_, what, t.type, tensor_type_name(t.type));
    SPW_CHECK(t.dims[0] % type_block_elements(t.type) == 0, "GGUF {}: {} row length {} is not a multiple of the {} block",
              path_, what, t.dims[0], tensor_type_name(t.type));
    t.bytes = tensor_bytes(t.type, t.elements);
    t.offset = c.read<uint64_t>(what + " offset");
    SPW_CHECK(t.offset % alignment_ == 0, "GGUF {}: {} offset {} is not a multiple of the alignment {}", path_, what,
              t.offset, alignment_);
    SPW_CHECK(tensor_index_.emplace(t.name, tensors_.size()).second, "GGUF {}: {} appears twice", path_, what);
    tensors_.push_back(std::move(t));
  }
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  SPW_CHECK(n_tensors == 0 || data_offset_ <= size_, "GGUF {}: data section starts at {} past the end of the file ({} bytes)",
            path_, data_offset_, size_);
  const uint64_t data_size = size_ - std::min<uint64_t>(size_, data_offset_);
  for (const auto& t : tensors_)
    SPW_CHECK(t.offset <= data_size && t.bytes <= data_size - t.offset,
              "GGUF {}: tensor '{}': data [{}, {}) of the data section lies past its end ({} bytes; truncated?)", path_,
              t.name, t.offset, t.offset + t.bytes, data_size);
}

const GgufValue& GgufFile::get(const std::string& key) const {
  auto it = meta_.find(key);
  SPW_CHECK(it != meta_.end(), "GGUF {}: metadata key '{}' is missing", path_, key);
  return it->second;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  SPW_CHECK(v.type == GgufType::string, "GGUF {}: metadata '{}' is {}, expected string", path_, key, gguf_type_name(v.type));
  return v.s;
}
int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  SPW_CHECK(is_integer(v.type), "GGUF {}: metadata '{}' is {}, expected an integer", path_, key, gguf_type_name(v.type));
  return v.i;
}
double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  SPW_CHECK(is_integer(v.type) || v.type == GgufType::f32 || v.type == GgufType::f64,
            "GGUF {}: metadata '{}' is {}, expected a number", path_, key, gguf_type_name(v.type));
  return v.f;
}
bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = get(key);
  SPW_CHECK(v.type == GgufType::boolean, "GGUF {}: metadata '{}' is {}, expected bool", path_, key, gguf_type_name(v.type));
  return v.i != 0;
}
std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = get(key);
  SPW_CHECK(v.type == GgufType::array && v.elem == GgufType::string, "GGUF {}: metadata '{}' is not an array of strings",
            path_, key);
  return v.strings;
}
std::vector<double> GgufFile::get_numbers(const std::string& key) const {
  const GgufValue& v = get(key);
  SPW_CHECK(v.type == GgufType::array && v.elem != GgufType::string && v.elem != GgufType::array,
            "GGUF {}: metadata '{}' is not an array of numbers", path_, key);
  return v.numbers;
}
int64_t GgufFile::get_int_or(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}
double GgufFile::get_float_or(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}
std::string GgufFile::get_string_or(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace spw::rt

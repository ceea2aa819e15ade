// GGUF reader and dequantisation: metadata of every type round trips through the writer,
// known quantisation blocks decode to known values, and every truncation / corruption of a
// valid file raises spw::Error instead of crashing.
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>
#include <unistd.h>
#include <utility>

#include "runtime/dequant.h"
#include "runtime/gguf.h"
#include "runtime/gguf_writer.h"
#include "runtime/llama_weights.h"
#include "tests/common/helpers.h"

using namespace spw;
using namespace spw::rt;

namespace {

std::vector<uint8_t> small_file() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("a.u32", 7);
  w.add_i32("a.i32", -5);
  w.add_f32("a.f32", 0.25f);
  w.add_bool("a.bool", true);
  w.add_strings("a.strings", {"x", "", "hello"});
  w.add_numbers("a.i16s", GgufType::i16, {-3, 4});
  w.add_numbers("a.f64s", GgufType::f64, {0.5, -1e300});
  GgufValue nested;
  nested.type = GgufType::array;
  nested.elem = GgufType::array;
  GgufValue inner;
  inner.type = GgufType::array;
  inner.elem = GgufType::u8;
  inner.numbers = {1, 2, 3};
  nested.items = {inner, inner};
  w.add("a.nested", nested);
  GgufValue u64;
  u64.type = GgufType::u64;
  u64.i = 1ll << 40;
  w.add("a.u64", u64);
  GgufValue f64;
  f64.type = GgufType::f64;
  f64.f = -2.5e-300;  // below float's range: read as a double
  w.add("a.f64", f64);
  std::vector<float> t(64);
  for (int i = 0; i < 64; ++i) t[i] = 0.5f * (i - 30);
  w.add_tensor("t.f32", static_cast<uint32_t>(TensorType::F32), {32, 2}, t);
  w.add_tensor("t.q8", static_cast<uint32_t>(TensorType::Q8_0), {64}, t);
  return w.bytes();
}

}  // namespace

TEST(Gguf, MetadataOfEveryTypeRoundTrips) {
  GgufFile f = GgufFile::from_bytes(small_file(), "small");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("a.u32"), 7);
  EXPECT_EQ(f.get_int("a.i32"), -5);
  EXPECT_EQ(f.get_float("a.f32"), 0.25);
  EXPECT_TRUE(f.get_bool("a.bool"));
  EXPECT_EQ(f.get_strings("a.strings"), (std::vector<std::string>{"x", "", "hello"}));
  EXPECT_EQ(f.get_numbers("a.i16s"), (std::vector<double>{-3, 4}));
  EXPECT_EQ(f.get_numbers("a.f64s")[1], -1e300);
  EXPECT_EQ(f.get("a.nested").items.size(), 2u);
  EXPECT_EQ(f.get("a.nested").items[1].numbers, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(f.get_int("a.u64"), 1ll << 40);
  EXPECT_EQ(f.get_int_or("absent", 9), 9);
  EXPECT_THROW_MSG(f.get_int("absent"), "metadata key 'absent' is missing");
  EXPECT_THROW_MSG(f.get_int("a.strings"), "metadata 'a.strings' is array, expected an integer");
  EXPECT_THROW_MSG(f.get_string("a.u32"), "expected string");
  EXPECT_EQ(f.get_float("a.f64"), -2.5e-300);
  EXPECT_EQ(f.get_float("a.u32"), 7.0) << "an integer is a number too";
  EXPECT_THROW_MSG(f.get_int("a.f64"), "metadata 'a.f64' is f64, expected an integer");
  EXPECT_THROW_MSG(f.get_float("a.strings"), "metadata 'a.strings' is array, expected a number");
  EXPECT_THROW_MSG(f.get_float("general.architecture"), "is string, expected a number");
  EXPECT_THROW_MSG(f.get_strings("a.i16s"), "metadata 'a.i16s' is not an array of strings");
  EXPECT_THROW_MSG(f.get_strings("general.architecture"), "metadata 'general.architecture' is not an array of strings");
  ASSERT_NE(f.find_tensor("t.q8"), nullptr);
  EXPECT_EQ(f.find_tensor("nope"), nullptr);
  const GgufTensorInfo& t = *f.find_tensor("t.f32");
  EXPECT_EQ(t.rows(), 2);
  EXPECT_EQ(t.cols(), 32);
  std::vector<float> out(64);
  dequantize(t.type, f.tensor_data(t), 64, out.data());
  EXPECT_EQ(out[0], -15.f);
  EXPECT_EQ(out[63], 16.5f);
}

TEST(Gguf, OpenFromDiskAndVersion2) {
  auto dir = std::filesystem::temp_directory_path() / "spw_gguf_test";
  std::filesystem::create_directories(dir);
  GgufWriter w;
  w.add_u32("k", 1);
  w.add_tensor("t", 0, {32}, std::vector<float>(32, 1.f));
  w.write((dir / "v2.gguf").string(), 2);
  GgufFile f = GgufFile::open((dir / "v2.gguf").string());
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.tensors().size(), 1u);
  EXPECT_THROW_MSG(GgufFile::open((dir / "missing.gguf").string()), "cannot open");
  // what a wrong --model path can name: a directory, a device, an empty file
  EXPECT_THROW_MSG(GgufFile::open(dir.string()), "is a directory, not a model file");
  EXPECT_THROW_MSG(GgufFile::open("/dev/null"), "/dev/null: not a regular file");
  std::ofstream(dir / "empty.gguf").close();
  EXPECT_THROW_MSG(GgufFile::open((dir / "empty.gguf").string()), "empty or unreadable file");
  std::filesystem::remove_all(dir);
}

TEST(Gguf, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = small_file();
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    // A cut inside the final tensor's padding can still hold all data: only require no crash.
    try {
      GgufFile::from_bytes(cut, "cut");
      const size_t data_end = full.size();
      EXPECT_GE(n, data_end - 31) << "truncated to " << n << " bytes but accepted";
    } catch (const Error& e) {
      SUCCEED();
    }
  }
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  const std::vector<uint8_t> full = small_file();
  std::mt19937 rng(11);
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bad = full;
    const int flips = 1 + trial % 4;
    for (int k = 0; k < flips; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    try {
      GgufFile f = GgufFile::from_bytes(bad, "bad");
      for (const auto& t : f.tensors()) {  // whatever parsed must be readable in bounds
        std::vector<float> out(static_cast<size_t>(t.elements));
        dequantize(t.type, f.tensor_data(t), t.elements, out.data());
      }
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
}

TEST(Gguf, SpecificCorruptionsNamed) {
  std::vector<uint8_t> b = small_file();
  b[0] = 'X';
  EXPECT_THROW_MSG(GgufFile::from_bytes(b, "m"), "bad magic");
  b = small_file();
  b[4] = 9;
  EXPECT_THROW_MSG(GgufFile::from_bytes(b, "m"), "version 9 is not supported");
  b = small_file();
  b[8] = 0xff;  // tensor count low byte
  b[15] = 0x7f;
  EXPECT_THROW_MSG(GgufFile::from_bytes(b, "m"), "tensor count");
  // A huge string length in the first key.
  b = small_file();
  b[24 + 7] = 0x10;
  EXPECT_THROW_MSG(GgufFile::from_bytes(b, "m"), "metadata key #0");
  // Data cut off: the last tensor's range lies past the end.
  b = small_file();
  b.resize(b.size() - 40);
  EXPECT_THROW_MSG(GgufFile::from_bytes(b, "m"), "tensor 't.q8': data");
}

// general.alignment: the data section and every tensor offset are multiples of it. 1 puts the
// data right after the header (no padding: the header's end is already aligned); zero, a
// negative value, a non-power of two and anything past 65536 are rejected by name.
TEST(Gguf, AlignmentFromMetadata) {
  std::vector<float> a(32), b(64);
  for (int i = 0; i < 32; ++i) a[i] = 0.5f * i;
  for (int i = 0; i < 64; ++i) b[i] = -0.25f * i;
  auto file = [&](GgufType type, int64_t align) {
    GgufWriter w;
    GgufValue v;
    v.type = type;
    v.i = align;
    w.add("general.alignment", v);
    w.add_tensor("a", static_cast<uint32_t>(TensorType::F32), {32}, a);  // 128 bytes
    w.add_tensor("b", static_cast<uint32_t>(TensorType::F32), {64}, b);
    w.add_tensor("q", static_cast<uint32_t>(TensorType::Q8_0), {32}, a);  // 34 bytes: padded after
    w.add_tensor("c", static_cast<uint32_t>(TensorType::F32), {32}, a);
    return w.bytes();
  };
  for (int64_t align : {1, 2, 4, 32, 64, 512, 65536}) {
    SCOPED_TRACE(align);
    const std::vector<uint8_t> bytes = file(GgufType::u32, align);
    const GgufFile f = GgufFile::from_bytes(bytes, "aligned");
    EXPECT_EQ(f.alignment(), static_cast<uint64_t>(align));
    ASSERT_EQ(f.tensors().size(), 4u);
    for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % align, 0u) << t.name;
    const auto up = [&](uint64_t n) { return (n + align - 1) / align * align; };
    EXPECT_EQ(f.tensors()[3].offset, up(128) + up(256) + up(34)) << "c after a, b and q, each padded";
    const uint64_t data_start = bytes.size() - f.tensors()[3].offset - up(128);
    EXPECT_EQ(data_start % align, 0u) << "the data section starts aligned";
    std::vector<float> out(64);
    for (auto [name, want] : {std::pair{"a", &a}, {"b", &b}, {"c", &a}}) {
      const GgufTensorInfo& t = *f.find_tensor(name);
      dequantize(t.type, f.tensor_data(t), t.elements, out.data());
      EXPECT_EQ(std::vector<float>(out.begin(), out.begin() + t.elements), *want) << name;
    }
  }
  EXPECT_THROW_MSG(GgufFile::from_bytes(file(GgufType::u32, 0), "m"), "general.alignment = 0: must be a power of two <= 65536");
  EXPECT_THROW_MSG(GgufFile::from_bytes(file(GgufType::i32, -32), "m"), "general.alignment = -32: must be a power");
  EXPECT_THROW_MSG(GgufFile::from_bytes(file(GgufType::u32, 48), "m"), "general.alignment = 48: must be a power");
  EXPECT_THROW_MSG(GgufFile::from_bytes(file(GgufType::u32, 131072), "m"), "general.alignment = 131072: must be");
}

// Arrays of arrays load to 4 levels (the top one included); a fifth is rejected by name.
TEST(Gguf, ArraysNestedPastTheLimitAreRejected) {
  auto nest = [](int levels) {
    GgufValue v;
    v.type = GgufType::array;
    v.elem = GgufType::u8;
    v.numbers = {7};
    for (int k = 1; k < levels; ++k) {
      GgufValue outer;
      outer.type = GgufType::array;
      outer.elem = GgufType::array;
      outer.items.push_back(std::move(v));
      v = std::move(outer);
    }
    GgufWriter w;
    w.add("deep", v);
    return w.bytes();
  };
  const GgufFile ok = GgufFile::from_bytes(nest(4), "m");
  EXPECT_EQ(ok.get("deep").items.at(0).items.at(0).items.at(0).numbers, (std::vector<double>{7}));
  EXPECT_THROW_MSG(GgufFile::from_bytes(nest(5), "m"), "metadata 'deep' nests arrays deeper than 4");
  EXPECT_THROW_MSG(GgufFile::from_bytes(nest(200), "m"), "nests arrays deeper than 4");
}

TEST(Dequant, KnownBlocks) {
  // Q8_0: d = 0.5 (fp16 0x3800), q = -2, 0, 3, ...
  std::vector<uint8_t> q8(34, 0);
  q8[0] = 0x00; q8[1] = 0x38;
  q8[2] = static_cast<uint8_t>(-2); q8[4] = 3; q8[33] = 127;
  std::vector<float> out(32);
  dequantize(static_cast<uint32_t>(TensorType::Q8_0), q8.data(), 32, out.data());
  EXPECT_EQ(out[0], -1.f); EXPECT_EQ(out[1], 0.f); EXPECT_EQ(out[2], 1.5f); EXPECT_EQ(out[31], 63.5f);
  // Q4_0: d = 2 (0x4000); byte j: low nibble -> element j, high nibble -> element j+16; minus 8.
  std::vector<uint8_t> q4(18, 0x88);
  q4[0] = 0x00; q4[1] = 0x40;
  q4[2] = 0xF0;  // element 0: 0 - 8 = -8 -> -16; element 16: 15 - 8 = 7 -> 14
  dequantize(static_cast<uint32_t>(TensorType::Q4_0), q4.data(), 32, out.data());
  EXPECT_EQ(out[0], -16.f); EXPECT_EQ(out[16], 14.f); EXPECT_EQ(out[1], 0.f);
  // Q4_1: d = 1 (0x3C00), m = -1 (0xBC00): value = q + m.
  std::vector<uint8_t> q41(20, 0);
  q41[0] = 0x00; q41[1] = 0x3C; q41[2] = 0x00; q41[3] = 0xBC;
  q41[4] = 0x5A;  // element 0: 10 - 1 = 9; element 16: 5 - 1 = 4
  dequantize(static_cast<uint32_t>(TensorType::Q4_1), q41.data(), 32, out.data());
  EXPECT_EQ(out[0], 9.f); EXPECT_EQ(out[16], 4.f); EXPECT_EQ(out[1], -1.f);
  // F16 / BF16 words.
  uint8_t h[4] = {0x00, 0x3C, 0x00, 0xC0};  // 1.0, -2.0
  dequantize(static_cast<uint32_t>(TensorType::F16), h, 2, out.data());
  EXPECT_EQ(out[0], 1.f); EXPECT_EQ(out[1], -2.f);
  uint8_t bf[2] = {0x80, 0x3F};  // 1.0
  dequantize(static_cast<uint32_t>(TensorType::BF16), bf, 1, out.data());
  EXPECT_EQ(out[0], 1.f);
  EXPECT_THROW_MSG(tensor_bytes(static_cast<uint32_t>(TensorType::Q8_0), 33), "not a multiple");
  EXPECT_EQ(tensor_bytes(static_cast<uint32_t>(TensorType::Q8_0), 0), 0u) << "an empty tensor";
  EXPECT_EQ(tensor_bytes(static_cast<uint32_t>(TensorType::Q8_0), 64), 68u);
  EXPECT_EQ(tensor_bytes(static_cast<uint32_t>(TensorType::Q4_K), 512), 288u);
  EXPECT_EQ(tensor_bytes(static_cast<uint32_t>(TensorType::F16), 3), 6u);
  EXPECT_THROW_MSG(tensor_bytes(static_cast<uint32_t>(TensorType::Q8_0), -32), "-32 elements");
  EXPECT_THROW_MSG(tensor_bytes(13, 256), "not supported");  // Q5_K
  EXPECT_THROW_MSG(tensor_bytes(static_cast<uint32_t>(TensorType::Q4_K), 32), "not a multiple of the Q4_K block size 256");
}

// An all-zero block (scale 0: nothing to divide by) quantises to zeros in every type.
TEST(Dequant, ZeroBlocksStayZero) {
  const std::vector<float> zeros(256, 0.f);
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
                          TensorType::Q4_1, TensorType::Q4_K, TensorType::Q6_K}) {
    const auto q = quantize(static_cast<uint32_t>(type), zeros.data(), 256);
    std::vector<float> y(256, -1.f);
    dequantize(static_cast<uint32_t>(type), q.data(), 256, y.data());
    EXPECT_EQ(y, zeros) << tensor_type_name(static_cast<uint32_t>(type));
  }
}

// ggml's Q4_0 (quantize_row_q4_0_ref): the first value of the largest magnitude maps to -8 * d.
// With +1 before -1, d = -1/8: +1 is exact and -1 clips at 7 * |d|; the other way round when -1
// comes first.
TEST(Dequant, Q4_0ScaleComesFromTheFirstLargestMagnitude) {
  for (float first : {1.f, -1.f}) {
    std::vector<float> x(32, 0.f), y(32);
    x[3] = first;
    x[20] = -first;
    const auto q = quantize(static_cast<uint32_t>(TensorType::Q4_0), x.data(), 32);
    dequantize(static_cast<uint32_t>(TensorType::Q4_0), q.data(), 32, y.data());
    EXPECT_EQ(y[3], first);
    EXPECT_EQ(y[20], -0.875f * first);
    EXPECT_EQ(y[0], 0.f);
  }
}

// Q4_0 maps the largest-magnitude value to -8 * d: values of the other sign clip at 7 * |d|
// (ggml does the same), so its bound is amax / 8 plus half a step; Q4_1: half of (max-min)/15.
TEST(Dequant, QuantiseThenDequantiseIsClose) {
  auto rng = test::make_rng();
  auto x = test::random_floats(rng, 256, -2.f, 2.f);
  // Q4_K: half a step of (max - min) / 15 per 32 values plus the 6-bit rounding of scale and
  // min; Q6_K: half a step of amax / 31 per 16 values plus the int8 scale's rounding.
  for (auto [type, tol] : {std::pair{TensorType::Q8_0, 0.01f}, {TensorType::Q4_0, 0.3f}, {TensorType::Q4_1, 0.14f},
                           {TensorType::Q4_K, 0.2f}, {TensorType::Q6_K, 0.05f},
                           {TensorType::F16, 1e-3f}, {TensorType::BF16, 1e-2f}}) {
    auto bytes = quantize(static_cast<uint32_t>(type), x.data(), 256);
    ASSERT_EQ(bytes.size(), tensor_bytes(static_cast<uint32_t>(type), 256));
    std::vector<float> y(256);
    dequantize(static_cast<uint32_t>(type), bytes.data(), 256, y.data());
    for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[i], x[i], tol) << tensor_type_name(static_cast<uint32_t>(type));
  }
}

// The hyper-parameters read from the metadata are checked by name before they size anything:
// zero, negative, past int's range (a u64 that would wrap into a small int), an odd head dim,
// kv heads that do not divide the heads.
TEST(LlamaConfig, BadHyperParametersAreNamed) {
  auto file = [](const std::vector<std::pair<std::string, int64_t>>& over, int64_t vocab_rows = 300) {
    std::vector<std::pair<std::string, int64_t>> kv{{"llama.embedding_length", 64}, {"llama.feed_forward_length", 128},
                                                    {"llama.block_count", 2},       {"llama.attention.head_count", 4},
                                                    {"llama.attention.head_count_kv", 2}, {"llama.context_length", 512}};
    for (const auto& [k, v] : over) {
      bool found = false;
      for (auto& e : kv)
        if (e.first == k) e.second = v, found = true;
      if (!found) kv.emplace_back(k, v);
    }
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    for (const auto& [k, v] : kv) {
      GgufValue x;
      x.type = GgufType::i64;
      x.i = v;
      w.add(k, x);
    }
    w.add_tensor("token_embd.weight", static_cast<uint32_t>(TensorType::F32), {64, vocab_rows},
                 std::vector<float>(static_cast<size_t>(64 * vocab_rows), 0.f));
    return GgufFile::from_bytes(w.bytes(), "m.gguf");
  };
  const ModelConfig ok = read_llama_config(file({}));
  EXPECT_EQ(ok.hidden, 64);
  EXPECT_EQ(ok.head_dim, 16);
  EXPECT_EQ(ok.num_kv_heads, 2);
  EXPECT_EQ(ok.max_context, 512);
  EXPECT_EQ(ok.vocab_size, 300);
  EXPECT_EQ(read_llama_config(file({{"llama.rope.scaling.factor", 8}})).rope_original_context, 8192);
  const std::vector<std::tuple<std::string, int64_t, std::string>> bad{
      {"llama.embedding_length", 0, "llama.embedding_length = 0: must be in 1..2^30"},
      {"llama.embedding_length", (int64_t{1} << 32) + 64, "llama.embedding_length = 4294967360: must be in 1..2^30"},
      {"llama.feed_forward_length", -128, "llama.feed_forward_length = -128: must be in 1..2^30"},
      {"llama.block_count", 0, "llama.block_count = 0: must be in 1..2^30"},
      {"llama.attention.head_count", 0, "llama.attention.head_count = 0: must be in 1..2^30"},
      {"llama.attention.head_count_kv", 0, "llama.attention.head_count_kv = 0: must be in 1..2^30"},
      {"llama.context_length", 0, "llama.context_length = 0: must be in 1..2^30"},
      {"llama.attention.head_count", 3, "embedding_length 64 and head_count 3: the hidden size must be a multiple"},
      {"llama.attention.head_count", 64, "with an even head dim (RoPE rotates pairs)"},
      {"llama.attention.head_count_kv", 3, "head_count_kv = 3: must divide head_count 4"},
  };
  for (const auto& [key, value, msg] : bad) {
    SCOPED_TRACE(key);
    EXPECT_THROW_MSG(read_llama_config(file({{key, value}})), msg);
  }
  EXPECT_THROW_MSG(read_llama_config(file({{"llama.rope.scaling.factor", 8}, {"llama.rope.scaling.original_context_length", 0}})),
                   "llama.rope.scaling.original_context_length = 0: must be in 1..2^30");
  // The bounds themselves: 2^30 is a size, 2^30 + 1 is not; a rope.dimension_count equal to the
  // head dim is full RoPE, another is partial RoPE, named.
  EXPECT_EQ(read_llama_config(file({{"llama.context_length", int64_t{1} << 30}})).max_context, 1 << 30);
  EXPECT_THROW_MSG(read_llama_config(file({{"llama.context_length", (int64_t{1} << 30) + 1}})),
                   "llama.context_length = 1073741825: must be in 1..2^30");
  EXPECT_EQ(read_llama_config(file({{"llama.rope.dimension_count", 16}})).head_dim, 16);
  EXPECT_THROW_MSG(read_llama_config(file({{"llama.rope.dimension_count", 8}})),
                   "rope.dimension_count = 8: partial RoPE (head dim 16) is not supported");
}

// The architecture picks the RoPE layout (qwen2: NeoX halves, llama: interleaved pairs) and
// general.name is read; max_layers keeps 1..block_count layers.
TEST(LlamaConfig, ArchitectureNameAndLayerLimit) {
  auto load = [](const std::string& arch, int max_layers) {
    const auto dir = std::filesystem::temp_directory_path() / ("spw_llama_cfg_" + arch + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    TinyLlamaSpec spec;
    spec.arch = arch;
    write_tiny_llama((dir / "m.gguf").string(), spec);
    LlamaWeights w = load_llama_weights(GgufFile::open((dir / "m.gguf").string()), max_layers);
    std::filesystem::remove_all(dir);
    return w;
  };
  const LlamaWeights llama = load("llama", -1), qwen = load("qwen2", 2);
  EXPECT_FALSE(llama.neox_rope);
  EXPECT_TRUE(qwen.neox_rope);
  EXPECT_EQ(qwen.config.num_layers, 2) << "max_layers = block_count";
  EXPECT_EQ(qwen.layers.size(), 2u);
  EXPECT_EQ(llama.config.name, "spillway-tiny-random");
  EXPECT_EQ(load("llama", 1).layers.size(), 1u);
  EXPECT_THROW_MSG(load("llama", 0), "load_llama_weights: max_layers = 0: must be in 1..2");
  EXPECT_THROW_MSG(load("llama", 3), "max_layers = 3: must be in 1..2");
}

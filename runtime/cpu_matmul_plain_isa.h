// What cpu_matmul_blocked.h's vector type `V` declares on the instruction sets without
// AVX-512's extras (the portable path in cpu_matmul.cpp, cpu_matmul_avx2.cpp): each feature
// flag false, and its functions declared only, so that the `if constexpr` branches that are
// discarded still name them (nothing calls them; they have no definition). Private; included
// inside the including file's anonymous namespace, before its `struct V : PlainIsa<reg, nib>`.
// Reg: the vector register type; Nib: the unpacked 4-bit block (V::nib).
template <class Reg, class Nib>
struct PlainIsa {
  // No 16-entry table lookup (AVX-512's vpermps): QRows dequantises each nibble by nib_get.
  static constexpr bool kNibbleTable = false;
  static Reg iota();
  static Reg nib_lookup(const Nib& w, int sub, Reg table);
  // No gather: QRows converts the fp16 block scales one block at a time.
  static constexpr bool kGatherScales = false;
  static void block_scales(const uint8_t* b, int stride, int n, float* d, float* m);
  // No 16-register reduction: block() sums its accumulators one hsum at a time.
  static constexpr bool kHsum16 = false;
  static void hsum16(const Reg* a, int n, float* out);
};

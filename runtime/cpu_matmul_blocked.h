// Register-blocked body of runtime/cpu_matmul (private). Included once per instruction set by
// cpu_matmul_<isa>.cpp, each compiled with its own target flags, after that file defines the
// vector type `V` (lanes, reg, zero, load, store, fma, hsum; set1, mul, add, sub, nib,
// nib_load, nib_get, i8 for the in-register dequantisation; AVX-512's extras kNibbleTable /
// iota / nib_lookup, kGatherScales / block_scales and kHsum16 / hsum16, which the other sets
// declare through runtime/cpu_matmul_plain_isa.h) and includes runtime/dequant_kernels.h
// (dq_run, dq_half). Everything here is internal to the including translation unit (it is
// included inside an anonymous namespace), so no function compiled for one instruction set
// can be picked by the linker for another.
//
// Every output element is zero-initialised, accumulated with one V::fma per vector step over
// [0, full), reduced with V::hsum, then the scalar tail, then the bias, in this order for
// every block shape: the batch invariance the header promises.

// The columns past the last full vector; not inlined, so it rounds the same in every block.
[[gnu::noinline]] float tail_dot(const float* a, const float* b, int n) {
  float s = 0.f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Where a block's weight vectors come from. Every source yields, for weight row i of the block
// and column k, the same lanes as V::load of that row's fp32 (dequantize()) values at k.
//  - F32Rows: fp32 rows ws apart (plain weights, or a dequantised panel); may have a tail.
//  - QRows<type>: Q8_0 / Q4_0 / Q4_1 rows dequantised in registers, a 32-element block at a
//    time (scales and nibbles unpacked once per block, V::nib), by the operations of
//    runtime/dequant_kernels.h in its order (no panel round trip; used for up to kFusedTokens
//    tokens, each weight converted once per token block). With AVX-512 the 4-bit types apply
//    those operations to the 16 possible nibble values once per block and look each weight up
//    in that table (V::nib_lookup): the same values, fewer instructions; blocks of 4 or more
//    rows also convert the fp16 scales ahead, a chunk of columns at a time (kPre). cols is a
//    whole number of 32-element blocks, a multiple of V::lanes: no tail.
struct F32Rows {
  static constexpr bool kTail = true;
  static constexpr int kStep = V::lanes;  // columns per prep()
  const float* w;
  size_t ws;
  template <int R>
  struct Scales {
    static constexpr int kChunk = 1 << 30;  // no per-chunk state: one chunk
  };
  template <int R>
  void load_scales(Scales<R>&, int, int) const {}
  using Prep = const float*;
  template <class S>
  Prep prep(const S&, int i, int k) const { return w + i * ws + k; }
  static V::reg get(const Prep& p, int) { return V::load(p); }
  const float* row(int i) const { return w + i * ws; }
  template <int R>
  void prefetch_next(int) const {}
};

template <TensorType TY>
struct QRows {
  static constexpr bool kTail = false;
  static constexpr int kStep = 32;  // one quantisation block per prep(): kStep / V::lanes vectors
  static constexpr int kBytes = TY == TensorType::Q8_0 ? 34 : TY == TensorType::Q4_0 ? 18 : 20;
  // 4-bit values by a 16-entry table per block where the instruction set has one (V::nib_lookup).
  static constexpr bool kTable = V::kNibbleTable && TY != TensorType::Q8_0;
  const uint8_t* w;  // weight row 0 of the block
  size_t rb;         // encoded bytes per row
  // Scales ahead (kPre<R>): the fp16 scales (and Q4_1 minimums) of the blocks of a chunk of
  // kChunk columns of each of the R rows are converted to fp32 together before the chunk's
  // products (V::block_scales: 16 per gather with AVX-512; exact, the values dq_half gives), so
  // prep() broadcasts a float from L1 instead of inserting, converting and broadcasting two
  // halves. For the one- and two-token blocks of the 4-bit types that conversion cost as many
  // vector instructions as the block's FMAs. On the 2-core AVX-512 Xeon, single-threaded, Q4_1
  // (T = 1 / 2): 1536x576 79 -> 53 / 87 -> 65 us, 576x1536 77 -> 47 / 84 -> 59 us; it also made
  // 4-row blocks the better shape for more tokens (run_blocked). Blocks of fewer than 4 rows
  // (remainders; the former 2 x 8) did not gain, Q8_0 lost (T >= 2: 8-35 % slower), and so did
  // AVX2 without a gather (a scalar conversion loop ahead: 10-17 %): they convert per block.
  template <int R>
  static constexpr bool kPre = V::kGatherScales && TY != TensorType::Q8_0 && R >= 4;
  static constexpr int kChunkBlocks = 64;
  static constexpr int kChunk = kChunkBlocks * 32;
  template <int R>
  struct Scales {
    static constexpr int kChunk = kPre<R> ? QRows::kChunk : 1 << 30;  // converted ahead: chunks
    static constexpr int kR = kPre<R> ? R : 1;
    alignas(64) float d[kR][kChunkBlocks];
    alignas(64) float m[TY == TensorType::Q4_1 ? kR : 1][kChunkBlocks];
    int b0;  // first block of the chunk
  };
  // Scales of the blocks holding columns [k0, k1) (whole blocks, at most kChunk columns).
  template <int R>
  void load_scales(Scales<R>& s, int k0, int k1) const {
    if constexpr (kPre<R>) {
      const int n = (k1 - k0) / 32;
      s.b0 = k0 / 32;
      for (int i = 0; i < R; ++i) {
        const uint8_t* b = w + i * rb + static_cast<size_t>(s.b0) * kBytes;
        V::block_scales(b, kBytes, n, s.d[i], TY == TensorType::Q4_1 ? s.m[i] : nullptr);
      }
    }
  }
  // The fp16 at byte off (0: scale, 2: Q4_1 minimum) of row i's block blk (at b) as fp32:
  // converted ahead, or now.
  template <int R>
  float half_at(const Scales<R>& s, int i, int blk, const uint8_t* b, int off) const {
    if constexpr (kPre<R>) {
      return off == 0 ? s.d[i][blk - s.b0] : s.m[i][blk - s.b0];
    } else {
      return dq_half(dq_u16(b + off));
    }
  }
  struct Prep {
    V::reg d, m;
    V::nib q;          // Q4_0 / Q4_1 nibbles
    const int8_t* q8;  // Q8_0 values
  };
  template <int R>
  Prep prep(const Scales<R>& s, int i, int k) const {
    const int blk = k / 32;
    const uint8_t* b = w + i * rb + static_cast<size_t>(blk) * kBytes;
    Prep p;
    p.d = V::set1(half_at(s, i, blk, b, 0));
    if constexpr (TY == TensorType::Q8_0) {
      p.q8 = reinterpret_cast<const int8_t*>(b + 2);
    } else if constexpr (TY == TensorType::Q4_0) {
      p.q = V::nib_load(b + 2);
      if constexpr (kTable) p.d = V::mul(V::sub(V::iota(), V::set1(8.f)), p.d);
    } else {
      p.m = V::set1(half_at(s, i, blk, b, 2));
      p.q = V::nib_load(b + 4);
      if constexpr (kTable) p.d = V::add(V::mul(V::iota(), p.d), p.m);
    }
    return p;
  }
  // Lanes sub * V::lanes .. of the block, by dequant_kernels.h's operations (with a table:
  // the same operations on the 16 possible nibbles, done once per block in prep(), p.d).
  static V::reg get(const Prep& p, int sub) {
    if constexpr (TY == TensorType::Q8_0) {
      return V::mul(V::i8(p.q8 + sub * V::lanes), p.d);
    } else if constexpr (kTable) {
      return V::nib_lookup(p.q, sub, p.d);
    } else if constexpr (TY == TensorType::Q4_0) {
      return V::mul(V::sub(V::nib_get(p.q, sub), V::set1(8.f)), p.d);
    } else {
      return V::add(V::mul(V::nib_get(p.q, sub), p.d), p.m);
    }
  }
  const float* row(int) const { return nullptr; }  // no tail
  // Software prefetch of the next row block (R rows on), spread over this block's columns: at
  // column k, the same share of its bytes as this block has reached (one prefetcht0 a cache
  // line). A forward streams every weight from memory once, and the first touch of a row
  // block (its scales' gather) stalled on DRAM while the hardware prefetcher, which does not
  // see the interleaved rows as one stream, had not fetched it; this overlaps the next
  // block's reads with this block's FMAs. SmolLM2 `spillway step`, context 128, 2-core Xeon,
  // 3 alternating runs each: k = 1 10.7-11.0 -> 8.4-8.8 ms (1 thread: 19.4-20.0 -> 15.3-16.6),
  // k = 4 15.4-16.2 -> 12.3-12.8 ms; with AVX2 (SPW_CPU_ISA=avx2, 2 runs) k = 1 14.2-15.2 ->
  // 9.9-10.3 ms. Two blocks ahead or prefetcht1: the same within noise; prefetchnta: slower
  // than none (12.5-13.0 ms at k = 1). In-cache products unchanged. The last row block
  // prefetches past the matrix's end, which is harmless: a prefetch never faults.
  template <int R>
  void prefetch_next(int k) const {
    const uint8_t* p = w + R * rb + static_cast<size_t>(k / 32) * R * kBytes;
    for (int o = 0; o < R * kBytes; o += 64) __builtin_prefetch(p + o, 0, 3);
  }
};

// R weight rows x TT activation rows, all of [0, cols); src gives weight row r + i. Columns
// advance by V::lanes in every case (the sub-vectors of a kStep in order), so the sums are
// the same whatever the source.
template <int R, int TT, class Src>
void block(const MatmulArgs& a, const Src& src, int r, int t) {
  V::reg acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = V::zero();
  const int cols = a.cols, full = cols / Src::kStep * Src::kStep;
  const size_t xs = a.x_stride ? a.x_stride : cols;
  const size_t ys = a.y_stride ? a.y_stride : a.rows;
  const float* x = a.x + t * xs;
  using Scales = typename Src::template Scales<R>;
  Scales sc;
  for (int k0 = 0; k0 < full; k0 += Scales::kChunk) {
    const int k1 = full - k0 < Scales::kChunk ? full : k0 + Scales::kChunk;
    src.load_scales(sc, k0, k1);
    for (int k = k0; k < k1; k += Src::kStep) {
      if (t == 0) src.template prefetch_next<R>(k);  // once per row block
      typename Src::Prep pr[R];
      for (int i = 0; i < R; ++i) pr[i] = src.prep(sc, i, k);
      for (int sub = 0; sub < Src::kStep / V::lanes; ++sub) {
        V::reg wv[R];
        for (int i = 0; i < R; ++i) wv[i] = Src::get(pr[i], sub);
        for (int j = 0; j < TT; ++j) {
          const V::reg xv = V::load(x + j * xs + k + sub * V::lanes);
          for (int i = 0; i < R; ++i) acc[i][j] = V::fma(wv[i], xv, acc[i][j]);
        }
      }
    }
  }
  float sums[R * TT];  // V::hsum of each accumulator (V::hsum16: the same sums, 16 at a time)
  int n = 0;
  if constexpr (V::kHsum16)
    for (; R * TT - n >= 4; n += 16) V::hsum16(&acc[0][0] + n, R * TT - n < 16 ? R * TT - n : 16, sums + n);
  for (; n < R * TT; ++n) sums[n] = V::hsum((&acc[0][0])[n]);
  for (int i = 0; i < R; ++i) {
    const float b = a.bias ? a.bias[r + i] : 0.f;
    for (int j = 0; j < TT; ++j) {
      float s = sums[i * TT + j];
      if constexpr (Src::kTail) {
        if (full < cols) s += tail_dot(src.row(i) + full, x + j * xs + full, cols - full);
      }
      s += b;
      float& out = a.y[(t + j) * ys + r + i];
      out = a.accumulate ? out + s : s;
    }
  }
}

// Rows [r0, r1) in blocks of kRows (weights stay in L1 across the token blocks), tokens in
// blocks of kTokens; remainder shapes use the smaller instantiations. Encoded weights: Q8_0 /
// Q4_0 / Q4_1 with T <= kFusedTokens are dequantised in registers (QRows, run_fused's blocks),
// once per token block, the row block re-read from L1; otherwise each row block is
// dequantised into p.panel first (runtime/dequant_kernels.h) and read as F32Rows.
// AVX-512 shapes, on the 2-core Xeon, single-threaded, median of 7 x ~40 products, before ->
// after (us; 1536x576 / 576x1536 Q4_1, 8192x576 Q8_0): until the scales were converted ahead
// (QRows::kPre), T = 3..8 ran as 2 x 8 blocks (each weight converted once for up to 8 tokens),
// which had beaten two 4 x 4 blocks; with kPre, 4 x 4 blocks (T = 3, 4, 7, 8) and one 4 x 6
// block (T = 5, 6) are faster: T = 3 112 -> 82 / 107 -> 71 / 616 -> 488, T = 4 142 -> 94 /
// 129 -> 82 / 609 -> 547, T = 5 157 -> 113, T = 6 177 -> 153, T = 8 226 -> 187 / 227 -> 167 /
// 1265 -> 1035; and fused beats the panel up to 16 tokens now: T = 9 261 -> 243 / 283 -> 215,
// T = 12 302 -> 281 / 342 -> 251, T = 16 373 -> 376 / 412 -> 335 / 1982 -> 2011.
static_assert(kRows <= detail::kMaxPanelRows, "the dequantisation panel must hold a row block");
template <class Src>
using BlockFn = void (*)(const MatmulArgs&, const Src&, int, int);

template <class Src, int I, int... J>
void fill_row(BlockFn<Src>* row, std::integer_sequence<int, J...>) {
  ((row[J] = &block<I + 1, J + 1, Src>), ...);
}
template <class Src, int NT, int... I>
void fill_table(BlockFn<Src> (*table)[NT], std::integer_sequence<int, I...>) {
  (fill_row<Src, I>(table[I], std::make_integer_sequence<int, NT>{}), ...);
}

// block<r, t> for every r <= NR weight rows and t <= NT tokens.
template <class Src, int NR = kRows, int NT = kTokens>
struct BlockTable {
  BlockFn<Src> fn[NR][NT];
  BlockTable() { fill_table<Src, NT>(fn, std::make_integer_sequence<int, NR>{}); }
};

// Weights dequantised in registers, in blocks of NR rows x NB tokens: each weight is converted
// once per NB tokens.
template <TensorType TY, int NR, int NB>
void run_fused_blocks(const MatmulArgs& a, int r0, int r1, size_t row_bytes) {
  static const BlockTable<QRows<TY>, NR, NB> blocks;
  for (int r = r0; r < r1; r += NR) {
    const int rr = r1 - r < NR ? r1 - r : NR;
    const QRows<TY> src{a.wq + r * row_bytes, row_bytes};
    for (int t = 0; t < a.T; t += NB) {
      const int tt = a.T - t < NB ? a.T - t : NB;
      blocks.fn[rr - 1][tt - 1](a, src, r, t);
    }
  }
}

// kFusedRows x kFusedBlock blocks, a taller one for one token (kOneTokenRows x 1), or one wider
// block for kFusedBlock < T <= kFusedWideBlock: a block's FMAs form rows x tokens independent
// chains, and with fewer than about 8 of them each FMA waits for the previous one of its chain
// (4 cycles) instead of issuing every cycle; a wider block converts each weight once for more
// tokens. The block shape does not change any element's operations.
template <TensorType TY>
void run_fused(const MatmulArgs& a, int r0, int r1, size_t row_bytes) {
  if constexpr (kOneTokenRows > kFusedRows)
    if (a.T == 1) return run_fused_blocks<TY, kOneTokenRows, 1>(a, r0, r1, row_bytes);
  if constexpr (kFusedWideBlock > kFusedBlock)
    if (a.T > kFusedBlock && a.T <= kFusedWideBlock)
      return run_fused_blocks<TY, kFusedRows, kFusedWideBlock>(a, r0, r1, row_bytes);
  run_fused_blocks<TY, kFusedRows, kFusedBlock>(a, r0, r1, row_bytes);
}

void run_blocked(const MatmulArgs& a, int r0, int r1, const detail::Panel& p) {
  if (a.wq && a.T >= 1 && a.T <= kFusedTokens) {
    switch (static_cast<TensorType>(a.wq_type)) {
      case TensorType::Q8_0: return run_fused<TensorType::Q8_0>(a, r0, r1, p.row_bytes);
      case TensorType::Q4_0: return run_fused<TensorType::Q4_0>(a, r0, r1, p.row_bytes);
      case TensorType::Q4_1: return run_fused<TensorType::Q4_1>(a, r0, r1, p.row_bytes);
      default: break;
    }
  }
  static const BlockTable<F32Rows> blocks;  // filled once, not on every call
  const auto& table = blocks.fn;
  const size_t ws = a.wq ? static_cast<size_t>(a.cols) : (a.w_stride ? a.w_stride : a.cols);
  for (int r = r0; r < r1; r += kRows) {
    const int rr = r1 - r < kRows ? r1 - r : kRows;
    if (a.wq) dq_run(a.wq_type, a.wq + r * p.row_bytes, static_cast<int64_t>(rr) * a.cols, p.panel);
    const F32Rows src{a.wq ? p.panel : a.w + r * ws, ws};
    for (int t = 0; t < a.T; t += kTokens) {
      const int tt = a.T - t < kTokens ? a.T - t : kTokens;
      table[rr - 1][tt - 1](a, src, r, t);
    }
  }
}

// accumulate_weighted_rows (runtime/cpu_matmul.h): C (up to 4) vectors of out in registers
// while j runs over the rows, then the next C. Every element sees out + p0 v0, + p1 v1, ...
// with a separate multiply and add (no contraction). C is a template argument so that the
// accumulators stay in registers: with a run-time count GCC kept three of the four on the
// stack, and each add waited for a store. A 512-key sum of 64-wide rows 768 bytes apart, one
// thread, median of 9: 3.9 -> 3.5 ns a key (AVX-512), 4.8 -> 4.0 (AVX2), 10.2 -> 9.3 (portable);
// what is left is the rows' reads from L2.
template <int C>
void weighted_vectors(const float* p, int count, const float* v, long v_stride, float* out) {
  V::reg acc[C];
  for (int c = 0; c < C; ++c) acc[c] = V::load(out + c * V::lanes);
  for (int j = 0; j < count; ++j) {
    const V::reg pj = V::set1(p[j]);
    const float* row = v + j * v_stride;
    for (int c = 0; c < C; ++c) acc[c] = V::add(acc[c], V::mul(pj, V::load(row + c * V::lanes)));
  }
  for (int c = 0; c < C; ++c) V::store(out + c * V::lanes, acc[c]);
}

void weighted_rows(const float* p, int count, const float* v, long v_stride, int n, float* out) {
  constexpr int kVecs = 4;
  const int full = n / V::lanes * V::lanes;
  for (int d0 = 0; d0 < full; d0 += kVecs * V::lanes) {
    switch ((full - d0) / V::lanes < kVecs ? (full - d0) / V::lanes : kVecs) {
      case 1: weighted_vectors<1>(p, count, v + d0, v_stride, out + d0); break;
      case 2: weighted_vectors<2>(p, count, v + d0, v_stride, out + d0); break;
      case 3: weighted_vectors<3>(p, count, v + d0, v_stride, out + d0); break;
      default: weighted_vectors<kVecs>(p, count, v + d0, v_stride, out + d0); break;
    }
  }
  for (int d = full; d < n; ++d) {
    float o = out[d];
    for (int j = 0; j < count; ++j) o = o + p[j] * v[j * v_stride + d];
    out[d] = o;
  }
}

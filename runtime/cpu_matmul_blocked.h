// Register-blocked body of runtime/cpu_matmul (private). Included once per instruction set by
// cpu_matmul_<isa>.cpp, each compiled with its own target flags, after that file defines the
// vector type `V` (lanes, reg, zero, load, fma, hsum) and includes runtime/dequant_kernels.h
// (dq_run, for encoded weights). Everything here is internal to the
// including translation unit (it is included inside an anonymous namespace), so no function
// compiled for one instruction set can be picked by the linker for another.
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

// R weight rows x TT activation rows, all of [0, cols); w points at weight row r, rows ws apart.
template <int R, int TT>
void block(const MatmulArgs& a, const float* w, size_t ws, int r, int t) {
  V::reg acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = V::zero();
  const int cols = a.cols, full = cols / V::lanes * V::lanes;
  const size_t xs = a.x_stride ? a.x_stride : cols;
  const size_t ys = a.y_stride ? a.y_stride : a.rows;
  const float* x = a.x + t * xs;
  for (int k = 0; k < full; k += V::lanes) {
    V::reg wv[R];
    for (int i = 0; i < R; ++i) wv[i] = V::load(w + i * ws + k);
    for (int j = 0; j < TT; ++j) {
      const V::reg xv = V::load(x + j * xs + k);
      for (int i = 0; i < R; ++i) acc[i][j] = V::fma(wv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i) {
    const float b = a.bias ? a.bias[r + i] : 0.f;
    for (int j = 0; j < TT; ++j) {
      float s = V::hsum(acc[i][j]);
      if (full < cols) s += tail_dot(w + i * ws + full, x + j * xs + full, cols - full);
      s += b;
      float& out = a.y[(t + j) * ys + r + i];
      out = a.accumulate ? out + s : s;
    }
  }
}

// Rows [r0, r1) in blocks of kRows (weights stay in L1 across the token blocks), tokens in
// blocks of kTokens; remainder shapes use the smaller instantiations. Encoded weights: each
// row block is dequantised into p.panel first (runtime/dequant_kernels.h).
static_assert(kRows <= detail::kMaxPanelRows, "the dequantisation panel must hold a row block");
using BlockFn = void (*)(const MatmulArgs&, const float*, size_t, int, int);

template <int I, int... J>
void fill_row(BlockFn* row, std::integer_sequence<int, J...>) {
  ((row[J] = &block<I + 1, J + 1>), ...);
}
template <int... I>
void fill_table(BlockFn (*table)[kTokens], std::integer_sequence<int, I...>) {
  (fill_row<I>(table[I], std::make_integer_sequence<int, kTokens>{}), ...);
}

struct BlockTable {
  BlockFn fn[kRows][kTokens];
  BlockTable() { fill_table(fn, std::make_integer_sequence<int, kRows>{}); }
};

void run_blocked(const MatmulArgs& a, int r0, int r1, const detail::Panel& p) {
  static const BlockTable blocks;  // filled once, not on every call
  const auto& table = blocks.fn;
  const size_t ws = a.wq ? static_cast<size_t>(a.cols) : (a.w_stride ? a.w_stride : a.cols);
  for (int r = r0; r < r1; r += kRows) {
    const int rr = r1 - r < kRows ? r1 - r : kRows;
    if (a.wq) dq_run(a.wq_type, a.wq + r * p.row_bytes, static_cast<int64_t>(rr) * a.cols, p.panel);
    const float* w = a.wq ? p.panel : a.w + r * ws;
    for (int t = 0; t < a.T; t += kTokens) {
      const int tt = a.T - t < kTokens ? a.T - t : kTokens;
      table[rr - 1][tt - 1](a, w, ws, r, t);
    }
  }
}

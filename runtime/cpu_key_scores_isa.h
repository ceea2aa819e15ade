// Attention's scores against the CPU backend's tile-transposed key cache for one instruction set
// (runtime/cpu_matmul.h, key_scores). Private: included by cpu_matmul.cpp and
// cpu_matmul_<isa>.cpp inside their anonymous namespace, after their vector type V (lanes, zero,
// load, store, set1, fma). No standard headers here (the AVX-512 file includes intrinsics only).
//
// A block of up to kScoreRows query rows x kScoreTiles key tiles keeps one accumulator vector per
// row and kKeyTile / V::lanes keys; each dimension d loads the tiles' vectors once and adds
// q[r][d] * K[.][d] to every row's accumulators. Every lane takes the same chain of V::fma over
// d = 0 .. hd - 1 from zero, so a score's bits do not depend on the block, the rows beside it,
// the range or the thread (what the backend's batch invariance needs), and there is no
// horizontal sum: the row-major product spent a reduction per (row, key) on head_dim-long dots.

constexpr int kTileVecs = kKeyTile / V::lanes;  // vectors per dimension of a tile
constexpr int kScoreRows = V::lanes == 16 ? 8 : 4;  // query rows per block
constexpr int kMaxAccumulators = V::lanes == 16 ? 16 : 8;  // of the 32 / 16 vector registers
static_assert(kKeyTile % V::lanes == 0, "a tile is whole vectors");

// Vectors of keys per block for `rows` rows: as many as the registers allow (a single row
// needs several independent accumulator chains to hide the FMA latency), a power of two.
constexpr int score_vecs(int rows) {
  int c = kTileVecs;
  while (c > 1 && rows * c > kMaxAccumulators) c /= 2;
  return c;
}

// Rows [r0, r0 + ROWS) of a against C vectors of keys of one tile, from key `first` on (its
// vector u = first % kKeyTile / V::lanes, with u + C <= kTileVecs). Dimension d of those keys
// is C consecutive vectors (the tile's row d), so a block walks the tile's memory in order.
template <int ROWS, int C>
void key_score_block(const KeyScoreArgs& a, int r0, int first) {
  using R = decltype(V::zero());
  const float* kt = a.kt + static_cast<long>(first / kKeyTile) * kKeyTile * a.hd + first % kKeyTile;
  const float* q[ROWS];
  R acc[ROWS][C];
  for (int i = 0; i < ROWS; ++i) {
    q[i] = a.q[r0 + i];
    for (int c = 0; c < C; ++c) acc[i][c] = V::zero();
  }
  for (int d = 0; d < a.hd; ++d) {
    R k[C];
    for (int c = 0; c < C; ++c) k[c] = V::load(kt + d * kKeyTile + c * V::lanes);
    for (int i = 0; i < ROWS; ++i) {
      const R b = V::set1(q[i][d]);
      for (int c = 0; c < C; ++c) acc[i][c] = V::fma(b, k[c], acc[i][c]);
    }
  }
  const int last = first + C * V::lanes;
  for (int i = 0; i < ROWS; ++i) {
    const int r = r0 + i;
    const int limit = a.limit && a.limit[r] < a.k1 ? a.limit[r] : a.k1;
    const int lo = a.k0 > first ? a.k0 : first, hi = limit < last ? limit : last;
    if (lo >= hi) continue;
    float* o = a.out[r] - a.out_shift;
    if (lo == first && hi == last) {
      for (int c = 0; c < C; ++c) V::store(o + first + c * V::lanes, acc[i][c]);
    } else {
      float part[C * V::lanes];
      for (int c = 0; c < C; ++c) V::store(part + c * V::lanes, acc[i][c]);
      for (int j = lo; j < hi; ++j) o[j] = part[j - first];
    }
  }
}

// Key vectors [u, u1) of one tile (keys from `base`) for rows [r0, r0 + ROWS): blocks of C
// vectors, then of fewer for the rest.
template <int ROWS, int C = score_vecs(ROWS)>
void key_score_vecs(const KeyScoreArgs& a, int r0, int base, int u, int u1) {
  for (; u + C <= u1; u += C) key_score_block<ROWS, C>(a, r0, base + u * V::lanes);
  if constexpr (C > 1) key_score_vecs<ROWS, C / 2>(a, r0, base, u, u1);
}

// Keys [k0, k1) for rows [r0, r0 + ROWS), tile after tile.
template <int ROWS>
void key_score_range(const KeyScoreArgs& a, int r0, int k0, int k1) {
  for (int base = k0 / kKeyTile * kKeyTile; base < k1; base += kKeyTile) {
    const int lo = k0 > base ? k0 - base : 0, hi = k1 - base < kKeyTile ? k1 - base : kKeyTile;
    key_score_vecs<ROWS>(a, r0, base, lo / V::lanes, (hi + V::lanes - 1) / V::lanes);
  }
}

// Rows [r0, r0 + rows), 1 <= rows <= kScoreRows: the block shape instantiated for `rows`.
template <int ROWS = 1>
void key_score_rows(const KeyScoreArgs& a, int r0, int rows, int k0, int k1) {
  if (rows == ROWS) return key_score_range<ROWS>(a, r0, k0, k1);
  if constexpr (ROWS < kScoreRows) key_score_rows<ROWS + 1>(a, r0, rows, k0, k1);
}

// With more than one block of rows, the keys go a tile (about 16 KB at head_dim 64) at a time,
// read from memory once for every block (then from L1); one block takes the whole range.
void key_scores_impl(const KeyScoreArgs& a) {
  if (a.rows <= 0 || a.k1 <= a.k0) return;
  if (a.rows <= kScoreRows) return key_score_rows(a, 0, a.rows, a.k0, a.k1);
  for (int g0 = a.k0; g0 < a.k1;) {
    const int end = (g0 / kKeyTile + 1) * kKeyTile, g1 = a.k1 < end ? a.k1 : end;
    for (int r0 = 0; r0 < a.rows; r0 += kScoreRows)
      key_score_rows(a, r0, a.rows - r0 < kScoreRows ? a.rows - r0 : kScoreRows, g0, g1);
    g0 = g1;
  }
}

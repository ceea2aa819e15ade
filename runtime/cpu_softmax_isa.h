// The CPU backend's element-wise exponentials for one instruction set: attention's softmax over
// rows of scores and the MLP's SiLU gate (runtime/cpu_matmul.h, softmax_rows and silu_mul).
// Private: included by cpu_matmul.cpp and cpu_matmul_<isa>.cpp inside their anonymous
// namespace, after their vector type V, which provides besides cpu_matmul_blocked.h's
// operations: max / min (x86 semantics: the second operand when either is NaN), div,
// round (to nearest, ties to even) and pow2 (2^n for a whole n in [-126, 127]).
//
// exp is Cephes' expf (kernels/common/expf_cephes.h, which the including file includes first,
// outside its namespaces; the polynomial's steps are fused multiply-adds where the ISA has
// them): relative error under 1e-6 (tests/runtime/test_cpu_matmul.cpp checks softmax and SiLU
// against fp64 with that bound) for a few vector operations per 8 or 16 elements, where
// std::exp is a call per element. No <cmath> here (the AVX-512 file includes intrinsics only).
// Every lane takes the same operations and a row's tail goes through a padded vector, so an
// element's result depends on its own inputs (and for softmax the row's max and sum) only:
// rows keep their bits whatever else is in the forward (batch invariance).

template <class R>
R exp_lanes(R x) {
  // x outside [-87.34, 88] is clamped there: e^x stays a normal float (at most 1.7e38, no
  // infinity; at the low end the smallest normal, 1.2e-38, instead of a denormal or 0), so n
  // stays in pow2's range. NaN stays NaN (the clamp bounds are the first operands).
  x = V::max(V::set1(-87.336544f), V::min(V::set1(88.f), x));
  namespace c = expf_cephes;
  const R n = V::round(V::mul(x, V::set1(c::kLog2e)));
  R r = V::fma(n, V::set1(-c::kLn2Hi), x);
  r = V::fma(n, V::set1(c::kLn2Lo), r);
  R p = V::set1(c::kPoly[0]);
  p = V::fma(p, r, V::set1(c::kPoly[1]));
  p = V::fma(p, r, V::set1(c::kPoly[2]));
  p = V::fma(p, r, V::set1(c::kPoly[3]));
  p = V::fma(p, r, V::set1(c::kPoly[4]));
  p = V::fma(p, r, V::set1(c::kPoly[5]));
  const R e = V::add(V::fma(p, V::mul(r, r), r), V::set1(1.f));
  return V::mul(e, V::pow2(n));
}

// s[0 .. n) = softmax(scale * s) in place: scaled, the row's max subtracted, exponentiated,
// divided by the sum (one reciprocal, then multiplies). The sum is taken lane-wise over the
// vectors, the tail's vector last, then V::hsum: a fixed order for a given n.
inline void softmax_row(float* s, int n, float scale) {
  using R = typename V::reg;
  constexpr int L = V::lanes;
  const int full = n / L * L, rest = n - full;
  alignas(64) float tail[L];
  auto tail_vec = [&](float pad) {
    for (int i = 0; i < L; ++i) tail[i] = i < rest ? s[full + i] : pad;
    return V::load(tail);
  };
  auto tail_back = [&](R x) {
    V::store(tail, x);
    for (int i = 0; i < rest; ++i) s[full + i] = tail[i];
  };
  const R sc = V::set1(scale);
  R m = V::set1(-__builtin_inff());
  for (int j = 0; j < full; j += L) {
    const R x = V::mul(V::load(s + j), sc);
    V::store(s + j, x);
    m = V::max(x, m);
  }
  if (rest) {
    tail_back(V::mul(tail_vec(0.f), sc));           // (tail_back leaves the product in tail)
    for (int i = rest; i < L; ++i) tail[i] = -__builtin_inff();  // the padding is no one's max
    m = V::max(V::load(tail), m);
  }
  alignas(64) float lanes[L];
  V::store(lanes, m);
  float mx = lanes[0];
  for (int i = 1; i < L; ++i) mx = lanes[i] > mx ? lanes[i] : mx;
  const R mv = V::set1(mx);
  R acc = V::zero();
  for (int j = 0; j < full; j += L) {
    const R e = exp_lanes(V::sub(V::load(s + j), mv));
    V::store(s + j, e);
    acc = V::add(acc, e);
  }
  if (rest) {
    tail_back(exp_lanes(V::sub(tail_vec(0.f), mv)));
    for (int i = rest; i < L; ++i) tail[i] = 0.f;  // the padding adds nothing to the sum
    acc = V::add(acc, V::load(tail));
  }
  const R inv = V::set1(1.f / V::hsum(acc));
  for (int j = 0; j < full; j += L) V::store(s + j, V::mul(V::load(s + j), inv));
  if (rest) tail_back(V::mul(tail_vec(0.f), inv));
}

void softmax_rows_impl(float* s, int rows, int n, long stride, float scale) {
  if (stride == 0) stride = n;  // packed rows
  for (int r = 0; r < rows; ++r) softmax_row(s + r * stride, n, scale);
}

// g[i] = silu(g[i]) * u[i] = g[i] / (1 + e^-g[i]) * u[i], for i < n.
void silu_mul_impl(float* g, const float* u, size_t n) {
  using R = typename V::reg;
  constexpr size_t L = V::lanes;
  auto one = [](R gv, R uv) {
    return V::mul(V::div(gv, V::add(V::set1(1.f), exp_lanes(V::sub(V::zero(), gv)))), uv);
  };
  size_t i = 0;
  for (; i + L <= n; i += L) V::store(g + i, one(V::load(g + i), V::load(u + i)));
  if (i < n) {
    alignas(64) float gt[L] = {}, ut[L] = {};
    for (size_t j = 0; i + j < n; ++j) gt[j] = g[i + j], ut[j] = u[i + j];
    V::store(gt, one(V::load(gt), V::load(ut)));
    for (size_t j = 0; i + j < n; ++j) g[i + j] = gt[j];
  }
}

#include "tests/common/helpers.h"

#include <cmath>
#include <cstdint>
#include <functional>

namespace spw::test {

std::mt19937_64 make_rng(uint64_t seed) {
  if (seed == 0) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "spillway";
    seed = std::hash<std::string>{}(name) | 1;
  }
  return std::mt19937_64(seed);
}

std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float lo, float hi, DType round_as,
                                 float min_abs) {
  // One draw from the test's generator seeds a SplitMix64 stream for the n values: a
  // uniform_real_distribution over mt19937_64 costs ~15 ns a value, which dominated the
  // set-up of the large-KV tests (tens of millions of values); this costs ~3 ns.
  uint64_t state = rng();
  auto next_unit = [&state] {  // uniform in [0, 1), 24 random bits
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) * 0x1p-24f;
  };
  std::vector<float> v(n);
  for (auto& x : v) {
    float r;
    do {
      r = round_to(round_as, lo + (hi - lo) * next_unit());
    } while (std::fabs(r) < min_abs);
    x = r;
  }
  return v;
}

Tolerance tolerance_for(DType dtype) {
  switch (dtype) {
    case DType::f16: return {2e-3, 1e-2};
    case DType::bf16: return {1e-2, 5e-2};
    case DType::f32: return {1e-5, 1e-4};
  }
  return {0, 0};
}

std::string Comparison::describe() const {
  return fmt::format("rel_l2 = {:.3e}, max_abs = {:.3e} (at index {}), non-finite = {}", rel_l2,
                     max_abs, worst_index, non_finite);
}

Comparison compare(const std::vector<float>& out, const std::vector<double>& ref) {
  Comparison c;
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size() && i < ref.size(); ++i) {
    if (!std::isfinite(ref[i])) {
      // -inf LSE of an empty row etc.: the output must match exactly.
      if (!(out[i] == ref[i])) ++c.non_finite;
      continue;
    }
    if (!std::isfinite(out[i])) {
      ++c.non_finite;
      continue;
    }
    double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
    if (std::fabs(d) > c.max_abs) {
      c.max_abs = std::fabs(d);
      c.worst_index = i;
    }
  }
  c.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return c;
}

::testing::AssertionResult close_to(const std::vector<float>& out, const std::vector<double>& ref,
                                    Tolerance tol) {
  if (out.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << out.size() << " vs reference " << ref.size();
  Comparison c = compare(out, ref);
  double ref_max = 0;
  for (double r : ref)
    if (std::isfinite(r)) ref_max = std::max(ref_max, std::fabs(r));
  double abs_limit = tol.max_abs * std::max(1.0, ref_max);
  if (c.non_finite == 0 && c.rel_l2 <= tol.rel_l2 && c.max_abs <= abs_limit)
    return ::testing::AssertionSuccess() << c.describe();
  return ::testing::AssertionFailure() << c.describe() << " (limits rel_l2 " << tol.rel_l2
                                       << ", max_abs " << abs_limit << ")";
}

}  // namespace spw::test

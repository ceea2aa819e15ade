// Test helpers shared by every test: GPU skip, random tensors (never zeros), poisoned
// outputs, comparison against a higher-precision reference, and error-message checks.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/device.h"
#include "kernels/common/dtype.h"
#include "kernels/common/error.h"

namespace spw::test {

/// Skips the current test (reported as SKIPPED with the reason) when no usable GPU exists.
#define SPW_REQUIRE_GPU()                                                         \
  do {                                                                            \
    if (auto spw_why_ = ::spw::gpu_unavailable_reason()) GTEST_SKIP() << *spw_why_; \
  } while (0)

/// In the CPU-simulator build of the GPU tests (tests/sim), skips a test the simulator cannot
/// run in reasonable time or at all (`why` says what); on a GPU it always runs.
#if defined(SPW_SIM)
#define SPW_SKIP_ON_SIMULATOR(why) GTEST_SKIP() << "not run on the CPU simulator: " why "; runs on a GPU"
#else
#define SPW_SKIP_ON_SIMULATOR(why) static_cast<void>(0)
#endif

/// True in the CPU-simulator build (tests/sim): tests may shrink a sweep there.
inline constexpr bool kSimulated =
#if defined(SPW_SIM)
    true;
#else
    false;
#endif

/// Deterministic generator for a test: seed from the test's name unless given.
std::mt19937_64 make_rng(uint64_t seed = 0);

/// n floats uniform in [lo, hi], with every |value| >= min_abs (no zeros), rounded to dtype
/// so that the same values can be stored in fp16/bf16 exactly.
std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float lo = -1.f, float hi = 1.f,
                                 DType round_as = DType::f32, float min_abs = 1e-3f);

/// Converts floats to a storage type (half / bfloat16 / float).
template <typename T>
std::vector<T> to_storage(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_float<T>(v[i]);
  return out;
}
template <typename T>
std::vector<float> to_floats(const std::vector<T>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
  return out;
}

/// Byte pattern outputs are filled with before a run: 0xFF makes fp16, bf16 and fp32 NaN, so
/// an element the kernel forgot to write fails every comparison.
inline constexpr int kPoisonByte = 0xFF;
template <typename T>
std::vector<T> poisoned(size_t n) {
  std::vector<T> v(n);
  std::memset(static_cast<void*>(v.data()), kPoisonByte, n * sizeof(T));
  return v;
}

/// Per-dtype tolerances for outputs computed with fp32 accumulation from inputs of dtype.
struct Tolerance {
  double rel_l2;   // ||out - ref|| / ||ref||
  double max_abs;  // max |out - ref|, relative to max |ref| when that exceeds 1
};
Tolerance tolerance_for(DType dtype);

/// Result of comparing an output to a reference.
struct Comparison {
  double rel_l2 = 0, max_abs = 0;
  size_t worst_index = 0;
  size_t non_finite = 0;  // NaN/inf in the output where the reference is finite
  std::string describe() const;
};
Comparison compare(const std::vector<float>& out, const std::vector<double>& ref);

/// gtest assertion: every element finite where the reference is, rel L2 and max abs within tol.
::testing::AssertionResult close_to(const std::vector<float>& out, const std::vector<double>& ref,
                                    Tolerance tol);

}  // namespace spw::test

/// Expects `stmt` to throw spw::Error whose message contains `substr`.
#define EXPECT_THROW_MSG(stmt, substr)                                                   \
  do {                                                                                   \
    try {                                                                                \
      stmt;                                                                              \
      ADD_FAILURE() << "expected spw::Error containing \"" << (substr) << "\", nothing thrown"; \
    } catch (const ::spw::Error& e) {                                                    \
      EXPECT_NE(std::string(e.what()).find(substr), std::string::npos)                   \
          << "message was: " << e.what() << "\nexpected to contain: " << (substr);       \
    }                                                                                    \
  } while (0)

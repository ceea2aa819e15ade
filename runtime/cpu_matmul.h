// The CPU backend's matrix product Y[t, r] (+)= X[t, :] · W[r, :] (+ bias[r]) for a few
// activation rows t (the new tokens of a forward) against a large row-major fp32 weight W.
//
// Register-blocked: a block of weight rows is loaded once per vector step and multiplied
// with a block of activation rows, so a forward over k tokens reads every weight once and
// issues about one load per FMA instead of two: verifying k draft tokens costs little more
// than one token, which is what speculative decoding relies on.
//
// Batch invariance: every output element is computed by the same sequence of operations
// whatever T, the block it falls in and the row range (thread split) are, so the logits of a
// token do not depend on how many tokens share its forward. Greedy speculative decoding is
// bit-identical to plain decoding because of this. The instruction set (AVX-512F,
// AVX2+FMA, or portable C++) is picked once per process from the CPU's features; results
// differ between instruction sets only by fp32 rounding.
#pragma once

namespace spw::rt {

/// One product, restricted to output columns (weight rows) [row_begin, row_end) so that
/// callers can split the rows over threads. x: [T, cols], w: [rows, cols], bias: [rows] or
/// null, y: [T, rows]; each with a row stride in elements (0 = packed: cols, cols, rows), so
/// that e.g. one head of a KV cache row can be the weight. accumulate: y += product, else y =.
struct MatmulArgs {
  const float* x = nullptr;
  int T = 0;
  const float* w = nullptr;
  int rows = 0, cols = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  bool accumulate = false;
  long x_stride = 0, w_stride = 0, y_stride = 0;
};
void matmul_rows(const MatmulArgs& a, int row_begin, int row_end);

/// Name of the instruction set matmul_rows uses in this process: "avx512", "avx2" or
/// "generic". The environment variable SPW_CPU_ISA (avx512|avx2|generic) lowers the choice
/// (tests use it to cover every path; a value the CPU cannot run is ignored).
const char* matmul_isa();

/// Whether this build and CPU can run `isa` ("avx512", "avx2", "generic").
bool matmul_isa_supported(const char* isa);

/// The same product with an explicit instruction set (tests); throws spw::Error naming `isa`
/// if it is unknown or this CPU or build cannot run it.
void matmul_rows_isa(const char* isa, const MatmulArgs& a, int row_begin, int row_end);

namespace detail {  // per-ISA entry points (cpu_matmul_<isa>.cpp), present when compiled
void matmul_rows_avx512(const MatmulArgs& a, int row_begin, int row_end);
void matmul_rows_avx2(const MatmulArgs& a, int row_begin, int row_end);
}  // namespace detail

}  // namespace spw::rt

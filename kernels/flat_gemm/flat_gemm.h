// Flat GEMM for decoding: Y[M, N_out] = epilogue(X[M, K] · W[N, K]^T), M small (1..64).
//
// Why it is fast: at decode batch sizes the weight W (N·K elements) is the only large
// operand, so the kernels are built to stream W once at full bandwidth (FlashDecoding++,
// "flat GEMM"): a GEMV path (M <= 8, one warp per output column, 16-byte loads of W, warp
// reductions) and a tensor-core path with the operands swapped — mma.sync m16n8k16 takes
// 16 weight rows as the A operand and 8 activation rows (M padded to 8) as B, so no MMA
// row is wasted on padding of the large side — fed by a multi-stage cp.async pipeline of
// weight tiles. When N alone gives too few tiles to fill the SMs, K is split and the fp32
// partials are summed by a second kernel in a fixed order (deterministic, no atomics). For
// M above 64 (prefill) cuBLASLt is used. A dispatcher (dispatch.cpp) picks impl/tile/split
// from a measured table (dispatch_table.h, written by bench/flat_gemm.py --autotune) or,
// for shapes/devices not in it, from rules that fill the SMs.
//
// Epilogue (all in fp32, in this order):
//   acc[m, r]  = sum_k X[m, k] · W[r, k]                       r < N (weight rows)
//   acc       += bias[r]                                        (has_bias; bias [N], input dtype)
//   v[m, j]    = swiglu ? silu(acc[m, j]) · acc[m, N/2 + j]     fused gate/up weight:
//                       : acc[m, j]                             rows [0, N/2) gate, [N/2, N) up
//   v         += residual[m, j]                                 (has_residual; [M, N_out], out dtype)
//   Y[m, j]    = v rounded to out_dtype                         N_out = swiglu ? N/2 : N
// Layouts are row-major and packed: X [M, K], W [N, K] (PyTorch Linear / GGUF), Y and
// residual [M, N_out]. Y may alias residual (in-place residual add).
#pragma once

#include <cstddef>

#include "kernels/common/device.h"
#include "kernels/common/dtype.h"
#include "kernels/common/platform.h"

namespace spw::flat_gemm {

inline constexpr int kMaxFlatM = 64;   // largest M of the GEMV / tensor-core paths
inline constexpr int kMaxGemvM = 8;    // largest M of the GEMV path
inline constexpr int kTileN = 64;      // tensor-core path: weight rows per block (4 warps x 16)
inline constexpr int kTileK = 64;      // tensor-core path: K elements per pipeline stage
inline constexpr int kStages = 3;      // tensor-core path: cp.async pipeline depth
inline constexpr int kMaxSplitK = 16;
inline constexpr size_t kCublasLtWorkspace = size_t(4) << 20;
inline constexpr int kCublasLtAlgos = 8;  // heuristic results requested from cuBLASLt

enum class Impl { automatic = 0, gemv = 1, mma = 2, cublaslt = 3 };
const char* impl_name(Impl impl);

struct Problem {
  DType dtype = DType::f16;      // X, W, bias: fp16 or bf16
  DType out_dtype = DType::f16;  // Y, residual: dtype or fp32
  int m = 0, n = 0, k = 0;       // n = weight rows (gate + up rows when swiglu)
  bool has_bias = false;
  bool has_residual = false;
  bool swiglu = false;
  int n_out() const { return swiglu ? n / 2 : n; }
};

/// What the caller may force (tests, autotuning, baselines); 0 / automatic = dispatcher.
struct Options {
  Impl impl = Impl::automatic;
  int split_k = 0;     // mma path: number of K splits (1..16), 0 = dispatcher; given with impl
                       // automatic it selects mma; with gemv / cublaslt only 1 (no split) is allowed
  int cublaslt_algo = 0;  // cublaslt impl: index into cuBLASLt's heuristic list (0 = its top
                          // choice, < kCublasLtAlgos); benches time each to get the best
  /// Batch-invariant product: every output row is bitwise a function of its own X row (and W,
  /// bias, residual row), whatever M is. The mma impl with a K split chosen from N, K and the
  /// device alone (split_k when given, else the rules' split) serves every M; M above 64 runs
  /// as 64-row slices of the same kernel. Costs speed where the dispatcher would pick GEMV
  /// (M <= 4) or cuBLASLt (M > 64). impl must be automatic or mma.
  bool batch_invariant = false;
};

struct Plan {
  Problem problem;
  Impl impl = Impl::mma;
  int m_tiles = 1;          // mma: M padded to 8 * m_tiles (1, 2, 4 or 8)
  int n_tiles = 0;          // mma: blocks along the weight rows
  int split_k = 1;          // K splits (mma); partials go through the workspace when > 1
  int k_chunk = 0;          // K elements per split (multiple of kTileK)
  bool from_table = false;  // chosen by a measured dispatch-table entry
  int cublaslt_algo = 0;    // cublaslt: which heuristic result to use (Options)
  bool batch_invariant = false;  // Options::batch_invariant: mma over 64-row slices of any M
  size_t partial_bytes = 0; // fp32 partials [split_k][min(M, 64)][N] at workspace offset 0
  size_t workspace_bytes = 0;
};

struct Args {
  const void* x = nullptr;          // [M, K] dtype, 16-byte aligned
  const void* w = nullptr;          // [N, K] dtype, 16-byte aligned
  const void* bias = nullptr;       // [N] dtype (has_bias)
  const void* residual = nullptr;   // [M, N_out] out_dtype (has_residual)
  void* y = nullptr;                // [M, N_out] out_dtype
  void* cublaslt_handle = nullptr;  // cublasLtHandle_t owned by the caller: required when
                                    // plan.impl == cublaslt (run never creates one)
};

/// Checks `problem` and chooses the impl, tiles and split-K for `device`. Throws spw::Error
/// naming the bad argument. Pure host code (no CUDA call).
Plan plan(const Problem& problem, const DeviceInfo& device, Options options = {});

/// Launches the plan on `stream`: no allocation, no host sync, graph-capturable (the
/// cublaslt impl too: its heuristic query is host-only). `workspace` (16-byte aligned,
/// plan.workspace_bytes, may be null when 0) is scratch; its contents need no init.
void run(const Plan& plan, const Args& args, void* workspace, size_t workspace_bytes, Stream stream);

// ---- validation (host; shared by plan, run and the C ABI) ----
void check_problem(const Problem& p, const char* where);
void check_args(const Plan& plan, const Args& a, const void* workspace, size_t workspace_bytes);

// ---- dispatcher (dispatch.cpp) ----
struct Choice {
  Impl impl = Impl::mma;
  int split_k = 1;
  bool from_table = false;
};
/// One measured row: for `device_match` (substring of the device name), weight shape (n, k),
/// the entry applies to every M <= m_max not covered by an earlier entry of the same shape.
struct TableEntry {
  const char* device_match;
  int n, k, m_max;
  Impl impl;
  int split_k;
};
/// The committed table (dispatch_table.h) and the rule-based choice for anything else.
Choice dispatch(const Problem& p, const DeviceInfo& device);
/// The lookup dispatch() does, over any rows (tests pass their own table).
Choice dispatch_with(const TableEntry* rows, int count, const Problem& p, const DeviceInfo& device);
/// Rows of the committed table.
int dispatch_table_size();
/// Rules for devices/shapes not in the table: GEMV for M <= 4, the tensor-core path up to
/// M = 64 with split-K so that n_tiles * split_k covers about two waves of SMs, cuBLASLt above.
Choice rule_choice(const Problem& p, const DeviceInfo& device);
/// Split-K the rules give the mma path for n_tiles blocks along N (1 when K is short).
int rule_split_k(int n_tiles, int k, int sm_count);
/// Blocks along the weight rows of the mma path.
int mma_n_tiles(const Problem& p);
/// 8-row M tiles of the mma path for m rows (1, 2, 4 or 8: M padded to 8, 16, 32 or 64; m above
/// 64, a batch-invariant plan's, runs as 64-row slices).
int mma_m_tiles(int m);

}  // namespace spw::flat_gemm

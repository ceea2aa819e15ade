// SGMV: batched multi-LoRA (Punica semantics) with per-adapter ranks and multi-slice output.
//
//   for each segment i with adapter a = adapter_ids[i] >= 0, each slice s, each token t in
//   [seg_starts[i], seg_starts[i+1]):
//     shrink:  v[t, s, r]                 = sum_h x[t, h] * A[a, s][r, h]        r < ranks[a]
//     expand:  y[t, off_s + n]           += scale * scale_a * sum_r v[t, s, r] * B[a, s][r, n]
//
// Why it is fast: both halves are memory bound at decode batch sizes (every adapter's A and B
// are read once, x and y are small), so the kernels are built around 16-byte loads of A and B
// that are contiguous along the axis the threads walk, and around filling every SM even for a
// handful of segments: shrink splits the hidden (K) axis over blocks, expand splits the output
// (N) axis. Split-K partials are summed in a fixed order by the last block of each group (a
// counter in the workspace), so results are bitwise deterministic and one launch suffices.
// Segments are addressed by blockIdx from the device arrays, so run() needs no per-call
// upload and a plan stays valid for any segment layout within its bounds (graph replay).
// Three paths (Path): gemv (one token per block: decode), tiled (8-token tiles on CUDA
// cores) and tensor_core (64-token WMMA tiles: prefill). apply() runs both halves and, on
// sm_90, lets expand start during shrink (programmatic dependent launch): expand's B loads
// do not depend on shrink, only its v reads wait.
//
// Layouts (row-major, dtype = fp16 or bf16 for x, A, B, y; v is fp32):
//   x  [tokens, hidden] (row stride x_stride)
//   A  per (adapter, slice): [rank_a, hidden] — each rank row contiguous along hidden (PEFT's
//      lora_A.weight layout). Shrink is a dot product per (token, rank) along hidden, so lanes
//      walk hidden with 16-byte loads of A and x that are coalesced across the warp for any
//      rank; the [hidden, rank] layout would give rank*2-byte rows (16 bytes at rank 8) and
//      a strided reduction.
//   B  per (adapter, slice): [rank_a, out_size_s] — each rank row contiguous along the output
//      axis. Expand gives each thread 8 consecutive outputs: one 16-byte load of B per rank,
//      coalesced across the block, and one 16-byte read-modify-write of y. (PEFT stores
//      lora_B.weight as [out, rank]: transpose once at load time.)
//   v  [tokens, num_slices, rank_max] fp32; entries r >= ranks[a] and rows of no-adapter
//      segments are not written.
// Weights are given either as a device array of pointers (index adapter * num_slices + s; each
// pointer 16-byte aligned — device memory the host cannot check) or as one stacked tensor: A stacked [adapters][slices][rank_max][hidden]; B stacked
// [adapters][rank_max * sum_s out_size_s], slice s at column block offset rank_max *
// (out_size_0 + .. + out_size_{s-1}) with row stride out_size_s. Rows r >= ranks[a] of a
// stacked adapter are padding that is never read.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common/device.h"
#include "kernels/common/dtype.h"
#include "kernels/common/platform.h"

namespace spw::sgmv {

inline constexpr int kMaxSlices = 4;
inline constexpr int kMaxRank = 256;
inline constexpr int kMinRank = 1;

/// One output slice of a fused projection (Q/K/V, gate/up): its columns in y.
struct Slice {
  int out_offset = 0;  // first column of y
  int out_size = 0;    // columns (multiple of 8)
};

struct Problem {
  DType dtype = DType::f16;  // x, A, B, y
  int tokens = 0;            // rows of x, v, y (= seg_starts[segments])
  int segments = 0;
  int num_adapters = 0;      // adapter ids are in [-1, num_adapters)
  int hidden = 0;            // columns of x (multiple of 8)
  int rank_max = 0;          // v row width per slice; every used adapter rank <= rank_max <= 256
  int num_slices = 1;
  Slice slices[kMaxSlices] = {};
  int y_cols = 0;               // logical width of y; every slice ends within it
  long long x_stride = 0;       // elements between rows of x (0 = hidden)
  long long y_stride = 0;       // elements between rows of y (0 = y_cols)
};

/// Kernel path. automatic: gemv when every segment has <= 2 tokens (decode), tiled (8-token
/// tiles on CUDA cores) below 48 tokens, tensor_core (64-token tiles, mma via WMMA) above.
/// Tests force each path on the same inputs.
enum class Path { automatic = 0, gemv = 1, tiled = 2, tensor_core = 3 };

/// Host-side schedule. Valid for any device segment arrays with the same `segments`, total
/// `tokens`, no segment longer than `max_seg_len` and ranks <= rank_max.
struct Plan {
  Problem problem;
  int max_seg_len = 0;
  Path path = Path::gemv;
  int token_tile = 1;        // tokens per block: 1 (gemv), 8 (tiled), 64 (tensor_core)
  int token_tiles = 0;       // ceil(max_seg_len / token_tile): grid.y
  int k_split = 1;           // shrink: blocks along hidden per (segment, tile, slice)
  int k_chunk = 0;           // hidden elements per split (multiple of 8)
  int n_chunk_cols = 1024;   // expand: output columns per block (1024, 128 on tensor cores)
  int n_chunks = 1;          // expand: blocks along the widest slice's outputs
  size_t partial_offset = 0; // workspace: split-K partials [k_split][tokens][slices][rank_max] fp32
  size_t counter_offset = 0; // workspace: int32 counters [segments][token_tiles][slices]
  size_t workspace_bytes = 0;
  int used_segments = 0;     // segments with an adapter (for reporting)
  bool pdl = false;          // apply(): expand starts behind shrink (programmatic launch, cc >= 9.0)
};

/// Device arrays describing the batch (same values as given to plan()).
struct Segments {
  const int32_t* seg_starts = nullptr;   // [segments + 1], monotone, seg_starts[0] = 0
  const int32_t* adapter_ids = nullptr;  // [segments], -1 = no adapter
  const int32_t* ranks = nullptr;        // [num_adapters]
};

/// Adapter weights: exactly one of `ptrs` (device array [num_adapters * num_slices] of device
/// pointers) and `stacked` (one device tensor, layout above) is set.
struct Weights {
  const void* const* ptrs = nullptr;
  const void* stacked = nullptr;
};

struct ShrinkArgs {
  Segments seg;
  const void* x = nullptr;
  Weights A;
  float* v = nullptr;  // [tokens, num_slices, rank_max]
};

struct ExpandArgs {
  Segments seg;
  const float* v = nullptr;
  Weights B;
  void* y = nullptr;                      // accumulated into
  float scale = 1.f;
  const float* adapter_scales = nullptr;  // optional device [num_adapters], multiplies scale
};

/// Checks `problem` and the host copies of the segment arrays, then picks the path and the
/// splits for `device`. Throws spw::Error naming the bad argument.
Plan plan(const Problem& problem, const int32_t* seg_starts_host, const int32_t* adapter_ids_host,
          const int32_t* ranks_host, const DeviceInfo& device, Path path = Path::automatic);

/// v = x · A^T per segment (fp32). `workspace` (plan.workspace_bytes, 16-byte aligned) must
/// be zero-filled before its first use; every run leaves its counters at zero again.
void shrink(const Plan& plan, const ShrinkArgs& args, void* workspace, size_t workspace_bytes, Stream stream);

/// y += scale · v · B per segment. Needs no workspace.
void expand(const Plan& plan, const ExpandArgs& args, Stream stream);

/// shrink then expand in one call (the LoRA delta y += scale · (x · A^T) · B). On sm_90 the
/// expand is launched with programmatic dependent launch: it prefetches B while shrink runs
/// and waits for v on the device. e.v must be s.v and e.seg must equal s.seg.
void apply(const Plan& plan, const ShrinkArgs& s, const ExpandArgs& e, void* workspace, size_t workspace_bytes,
           Stream stream);

// ---- validation (host; shared by run and the C ABI) ----
void check_problem(const Problem& p, const char* where);
void check_shrink(const Plan& plan, const ShrinkArgs& a, const void* workspace, size_t workspace_bytes);
void check_expand(const Plan& plan, const ExpandArgs& a);
void check_apply(const Plan& plan, const ShrinkArgs& s, const ExpandArgs& e, const void* workspace,
                 size_t workspace_bytes);

/// Effective strides.
inline long long x_row_stride(const Problem& p) { return p.x_stride ? p.x_stride : p.hidden; }
inline long long y_row_stride(const Problem& p) { return p.y_stride ? p.y_stride : p.y_cols; }

}  // namespace spw::sgmv

// SGMV planning and argument checks (host). The plan only chooses grid shapes: the kernels
// read segment bounds from the device arrays, so nothing is uploaded per call.
#include <algorithm>

#include "kernels/common/error.h"
#include "kernels/common/vec.h"
#include "kernels/sgmv/sgmv.h"

namespace spw::sgmv {

void check_problem(const Problem& p, const char* w) {
  SPW_CHECK_ARG(p.dtype == DType::f16 || p.dtype == DType::bf16, w, "dtype", dtype_name(p.dtype),
                "must be fp16 or bf16");
  SPW_CHECK_ARG(p.tokens >= 0, w, "tokens", p.tokens, "must be >= 0");
  SPW_CHECK_ARG(p.segments >= 0, w, "segments", p.segments, "must be >= 0");
  SPW_CHECK_ARG(p.num_adapters >= 0, w, "num_adapters", p.num_adapters, "must be >= 0");
  SPW_CHECK_ARG(p.hidden > 0 && p.hidden % 8 == 0, w, "hidden", p.hidden,
                "must be a positive multiple of 8 (16-byte rows)");
  SPW_CHECK_ARG(p.rank_max >= kMinRank && p.rank_max <= kMaxRank, w, "rank_max", p.rank_max,
                "must be in [1, 256]");
  SPW_CHECK_ARG(p.num_slices >= 1 && p.num_slices <= kMaxSlices, w, "num_slices", p.num_slices,
                "must be in [1, 4]");
  SPW_CHECK_ARG(p.y_cols > 0 && p.y_cols % 8 == 0, w, "y_cols", p.y_cols, "must be a positive multiple of 8");
  SPW_CHECK_ARG(p.x_stride == 0 || (p.x_stride >= p.hidden && p.x_stride % 8 == 0), w, "x_stride", p.x_stride,
                "must be 0 or a multiple of 8 that is >= hidden");
  SPW_CHECK_ARG(p.y_stride == 0 || (p.y_stride >= p.y_cols && p.y_stride % 8 == 0), w, "y_stride", p.y_stride,
                "must be 0 or a multiple of 8 that is >= y_cols");
  for (int s = 0; s < p.num_slices; ++s) {
    const Slice& sl = p.slices[s];
    const std::string name = fmt::format("slices[{}].out_size", s);
    SPW_CHECK_ARG(sl.out_size > 0 && sl.out_size % 8 == 0, w, name, sl.out_size, "must be a positive multiple of 8");
    SPW_CHECK_ARG(sl.out_offset >= 0 && sl.out_offset % 8 == 0 && sl.out_offset + sl.out_size <= p.y_cols, w,
                  fmt::format("slices[{}].out_offset", s), sl.out_offset,
                  fmt::format("must be a multiple of 8 with out_offset + out_size <= y_cols ({})", p.y_cols));
    for (int o = 0; o < s; ++o) {
      const Slice& q = p.slices[o];
      const bool overlap = sl.out_offset < q.out_offset + q.out_size && q.out_offset < sl.out_offset + sl.out_size;
      SPW_CHECK_ARG(!overlap, w, fmt::format("slices[{}].out_offset", s), sl.out_offset,
                    fmt::format("overlaps slice {} [{}, {})", o, q.out_offset, q.out_offset + q.out_size));
    }
  }
}

Plan plan(const Problem& p, const int32_t* seg_starts, const int32_t* adapter_ids, const int32_t* ranks,
          const DeviceInfo& device, Path path) {
  constexpr const char* w = "sgmv::plan";
  check_problem(p, w);
  SPW_CHECK_ARG(seg_starts != nullptr, w, "seg_starts", "null", "host copy of the segment starts is required");
  SPW_CHECK_ARG(p.segments == 0 || adapter_ids != nullptr, w, "adapter_ids", "null", "host copy is required");
  SPW_CHECK_ARG(p.num_adapters == 0 || ranks != nullptr, w, "ranks", "null", "host copy is required");
  SPW_CHECK_ARG(device.sm_count > 0, w, "device.sm_count", device.sm_count, "must be > 0");
  SPW_CHECK_ARG(seg_starts[0] == 0, w, "seg_starts[0]", seg_starts[0], "must be 0");
  for (int a = 0; a < p.num_adapters; ++a)
    SPW_CHECK_ARG(ranks[a] >= kMinRank && ranks[a] <= p.rank_max, w, fmt::format("ranks[{}]", a), ranks[a],
                  fmt::format("must be in [1, rank_max = {}]", p.rank_max));
  Plan pl;
  pl.problem = p;
  for (int i = 0; i < p.segments; ++i) {
    SPW_CHECK_ARG(seg_starts[i + 1] >= seg_starts[i], w, fmt::format("seg_starts[{}]", i + 1), seg_starts[i + 1],
                  fmt::format("must be >= seg_starts[{}] = {} (not monotone)", i, seg_starts[i]));
    SPW_CHECK_ARG(adapter_ids[i] >= -1 && adapter_ids[i] < p.num_adapters, w, fmt::format("adapter_ids[{}]", i),
                  adapter_ids[i], fmt::format("must be -1 or in [0, num_adapters = {})", p.num_adapters));
    if (adapter_ids[i] >= 0 && seg_starts[i + 1] > seg_starts[i]) {
      pl.max_seg_len = std::max(pl.max_seg_len, seg_starts[i + 1] - seg_starts[i]);
      ++pl.used_segments;
    }
  }
  SPW_CHECK_ARG(seg_starts[p.segments] == p.tokens, w, fmt::format("seg_starts[{}]", p.segments),
                seg_starts[p.segments], fmt::format("must equal tokens = {}", p.tokens));

  // Path: one token per block (GEMV, x row cached in L1) for decode-like batches, 8-token
  // tiles once re-reading A per token would dominate, tensor cores once a 64-token tile is
  // mostly full (below that the padded MMA rows cost more than the CUDA-core FMAs).
  SPW_CHECK_ARG(path >= Path::automatic && path <= Path::tensor_core, w, "path", static_cast<int>(path),
                "must be automatic (0), gemv (1), tiled (2) or tensor_core (3)");
  if (path == Path::automatic)
    path = pl.max_seg_len <= 2 ? Path::gemv : pl.max_seg_len < 48 ? Path::tiled : Path::tensor_core;
  pl.path = path;
  pl.token_tile = path == Path::gemv ? 1 : path == Path::tiled ? 8 : 64;
  pl.token_tiles = ceil_div(std::max(pl.max_seg_len, 1), pl.token_tile);
  SPW_CHECK_ARG(pl.token_tiles <= 65535, w, "max segment length", pl.max_seg_len,
                fmt::format("must be <= {} tokens on this path (grid.y limit)", 65535 * pl.token_tile));

  // Split-K: aim for ~4 blocks per SM over the used (segment, tile, slice) groups. A split is
  // a multiple of 256 hidden elements (one 16-byte load per lane of a warp) where possible.
  const long long groups = std::max(1LL, static_cast<long long>(pl.used_segments) * pl.token_tiles * p.num_slices);
  const long long target = 4LL * device.sm_count;
  const int max_split = std::max(1, p.hidden / 256);
  pl.k_split = static_cast<int>(std::clamp<long long>(ceil_div(target, groups), 1, max_split));
  pl.k_chunk = round_up(ceil_div(p.hidden, pl.k_split), p.hidden >= 256 ? 256 : 8);
  pl.k_split = ceil_div(p.hidden, pl.k_chunk);  // no empty split

  // Split-N: 1024 outputs per block (128 threads x 8), halved down to 256 while the grid
  // would not reach the target (decode with few segments); 128 on tensor cores (fixed tile).
  int widest = 0;
  for (int s = 0; s < p.num_slices; ++s) widest = std::max(widest, p.slices[s].out_size);
  if (path == Path::tensor_core) {
    pl.n_chunk_cols = 128;
  } else {
    pl.n_chunk_cols = 1024;
    while (pl.n_chunk_cols > 256 && groups * ceil_div(widest, pl.n_chunk_cols) < target) pl.n_chunk_cols /= 2;
  }
  pl.n_chunks = ceil_div(widest, pl.n_chunk_cols);
  const long long grid_z = static_cast<long long>(p.num_slices) * std::max(pl.k_split, pl.n_chunks);
  SPW_CHECK_ARG(grid_z <= 65535, w, "num_slices x (hidden / k_chunk | widest slice / n_chunk_cols)", grid_z,
                "must be <= 65535 (grid.z limit): use fewer or narrower slices");

  size_t off = 0;
  if (pl.k_split > 1) {
    pl.partial_offset = off;
    off += round_up<size_t>(static_cast<size_t>(pl.k_split) * p.tokens * p.num_slices * p.rank_max * 4, 256);
    pl.counter_offset = off;
    off += round_up<size_t>(static_cast<size_t>(p.segments) * pl.token_tiles * p.num_slices * 4, 256);
  }
  pl.workspace_bytes = off;
  pl.pdl = device.cc_major >= 9;
  return pl;
}

static void check_segments(const Segments& s, const Problem& p, const char* w) {
  SPW_CHECK_ARG(s.seg_starts != nullptr, w, "seg.seg_starts", "null", "device segment starts are required");
  SPW_CHECK_ARG(p.segments == 0 || s.adapter_ids != nullptr, w, "seg.adapter_ids", "null",
                "device adapter ids are required");
  SPW_CHECK_ARG(p.num_adapters == 0 || s.ranks != nullptr, w, "seg.ranks", "null", "device ranks are required");
  SPW_CHECK_ARG(is_aligned(s.seg_starts, 4), w, "seg.seg_starts", fmt::ptr(s.seg_starts), "must be 4-byte aligned");
}

static void check_weights(const Weights& wt, const char* w, const char* name) {
  SPW_CHECK_ARG((wt.ptrs != nullptr) != (wt.stacked != nullptr), w, name, "ptrs/stacked",
                "exactly one of ptrs (device pointer array) and stacked must be set");
  if (wt.stacked) SPW_CHECK_ARG(is_aligned(wt.stacked, 16), w, fmt::format("{}.stacked", name), fmt::ptr(wt.stacked),
                                "must be 16-byte aligned");
  if (wt.ptrs) SPW_CHECK_ARG(is_aligned(wt.ptrs, 8), w, fmt::format("{}.ptrs", name), fmt::ptr(wt.ptrs),
                             "must be 8-byte aligned");
}

void check_shrink(const Plan& pl, const ShrinkArgs& a, const void* ws, size_t ws_bytes) {
  constexpr const char* w = "sgmv::shrink";
  check_problem(pl.problem, w);
  check_segments(a.seg, pl.problem, w);
  check_weights(a.A, w, "A");
  SPW_CHECK_ARG(a.x != nullptr || pl.problem.tokens == 0, w, "x", "null", "input rows are required");
  SPW_CHECK_ARG(a.v != nullptr || pl.problem.tokens == 0, w, "v", "null", "output is required");
  SPW_CHECK_ARG(is_aligned(a.x, 16), w, "x", fmt::ptr(a.x), "must be 16-byte aligned");
  SPW_CHECK_ARG(is_aligned(a.v, 4), w, "v", fmt::ptr(a.v), "must be 4-byte aligned");
  SPW_CHECK_ARG(ws_bytes >= pl.workspace_bytes, w, "workspace_bytes", ws_bytes,
                fmt::format("must be >= plan.workspace_bytes = {}", pl.workspace_bytes));
  SPW_CHECK_ARG(pl.workspace_bytes == 0 || (ws != nullptr && is_aligned(ws, 16)), w, "workspace", fmt::ptr(ws),
                "must be a non-null 16-byte aligned buffer");
}

void check_expand(const Plan& pl, const ExpandArgs& a) {
  constexpr const char* w = "sgmv::expand";
  check_problem(pl.problem, w);
  check_segments(a.seg, pl.problem, w);
  check_weights(a.B, w, "B");
  SPW_CHECK_ARG(a.v != nullptr || pl.problem.tokens == 0, w, "v", "null", "input is required");
  SPW_CHECK_ARG(a.y != nullptr || pl.problem.tokens == 0, w, "y", "null", "output is required");
  SPW_CHECK_ARG(is_aligned(a.v, 4), w, "v", fmt::ptr(a.v), "must be 4-byte aligned");
  SPW_CHECK_ARG(is_aligned(a.y, 16), w, "y", fmt::ptr(a.y), "must be 16-byte aligned");
  SPW_CHECK_ARG(is_aligned(a.adapter_scales, 4), w, "adapter_scales", fmt::ptr(a.adapter_scales),
                "must be 4-byte aligned");
}

void check_apply(const Plan& pl, const ShrinkArgs& s, const ExpandArgs& e, const void* ws, size_t ws_bytes) {
  check_shrink(pl, s, ws, ws_bytes);
  check_expand(pl, e);
  constexpr const char* w = "sgmv::apply";
  SPW_CHECK_ARG(e.v == s.v, w, "expand.v", fmt::ptr(e.v), fmt::format("must be shrink's v ({})", fmt::ptr(s.v)));
  SPW_CHECK_ARG(e.seg.seg_starts == s.seg.seg_starts && e.seg.adapter_ids == s.seg.adapter_ids &&
                    e.seg.ranks == s.seg.ranks,
                w, "expand.seg", "different arrays", "must be the segment arrays given to shrink");
}

#if !SPW_HAVE_CUDA
void shrink(const Plan& pl, const ShrinkArgs& a, void* ws, size_t n, Stream) {
  check_shrink(pl, a, ws, n);
  fail("sgmv::shrink: Spillway was built without CUDA; GPU kernels are not available");
}
void expand(const Plan& pl, const ExpandArgs& a, Stream) {
  check_expand(pl, a);
  fail("sgmv::expand: Spillway was built without CUDA; GPU kernels are not available");
}
void apply(const Plan& pl, const ShrinkArgs& s, const ExpandArgs& e, void* ws, size_t n, Stream) {
  check_apply(pl, s, e, ws, n);
  fail("sgmv::apply: Spillway was built without CUDA; GPU kernels are not available");
}
#endif

}  // namespace spw::sgmv

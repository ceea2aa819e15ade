// CPU reference of SGMV in double (see sgmv.h for the semantics and layouts). Weights are given
// per (adapter, slice) as float vectors in the GPU layout: A[a * S + s] is [ranks[a], hidden],
// B[a * S + s] is [ranks[a], out_size_s] (rows beyond the adapter's rank are never read).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/sgmv/sgmv.h"

namespace spw::sgmv::reference {

struct Batch {
  Problem problem;
  std::vector<int32_t> seg_starts, adapter_ids, ranks;
};

/// v [tokens, slices, rank_max]; entries the kernel does not write (no-adapter rows, r >= rank)
/// are NaN.
std::vector<double> shrink(const Batch& b, const std::vector<float>& x, const std::vector<std::vector<float>>& A);

/// y_out = y + scale * adapter_scales[a] * v · B on covered rows/columns, y elsewhere. `v` may
/// hold NaN in unwritten entries (they are never read). y has rows of y_stride elements.
std::vector<double> expand(const Batch& b, const std::vector<double>& v, const std::vector<std::vector<float>>& B,
                           const std::vector<float>& y, float scale, const std::vector<float>& adapter_scales = {});

/// True for the entries of v that shrink writes.
std::vector<bool> written(const Batch& b);

}  // namespace spw::sgmv::reference

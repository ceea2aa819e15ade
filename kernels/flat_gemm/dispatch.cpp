// Flat GEMM dispatcher: measured table first (dispatch_table.h), rules for everything else.
// Rules follow FlashDecoding++: GEMV while the weight read dominates and M is tiny, the
// swapped-operand tensor-core path up to M = 64, cuBLASLt for prefill-sized M; split-K so
// that the tensor-core path has about two waves of blocks on the device.
#include <algorithm>
#include <string>

#include "kernels/flat_gemm/dispatch_table.h"
#include "kernels/flat_gemm/flat_gemm.h"

namespace spw::flat_gemm {
namespace {
const TableEntry kTable[] = {SPW_FLAT_GEMM_TABLE_ROWS
    {nullptr, 0, 0, 0, Impl::automatic, 0}};
}  // namespace

int mma_n_tiles(const Problem& p) {
  // SwiGLU: a block holds kTileN/2 gate rows and the matching up rows.
  return p.swiglu ? ceil_div(p.n / 2, kTileN / 2) : ceil_div(p.n, kTileN);
}

int mma_m_tiles(int m) { return m <= 8 ? 1 : m <= 16 ? 2 : m <= 32 ? 4 : 8; }

int rule_split_k(int n_tiles, int k, int sm_count) {
  const int target = 2 * std::max(sm_count, 1);  // blocks for about two waves
  const int by_k = std::max(1, k / (4 * kTileK));  // each split keeps >= 4 pipeline stages of K
  int s = ceil_div(target, std::max(n_tiles, 1));
  return std::clamp(std::min(s, by_k), 1, kMaxSplitK);
}

Choice rule_choice(const Problem& p, const DeviceInfo& device) {
  Choice c;
  if (p.m > kMaxFlatM) {
    c.impl = Impl::cublaslt;
  } else if (p.m <= 4) {
    c.impl = Impl::gemv;
  } else {
    c.impl = Impl::mma;
    c.split_k = rule_split_k(mma_n_tiles(p), p.k, device.sm_count);
  }
  return c;
}

int dispatch_table_size() { return static_cast<int>(sizeof(kTable) / sizeof(kTable[0])) - 1; }

Choice dispatch(const Problem& p, const DeviceInfo& device) {
  return dispatch_with(kTable, dispatch_table_size(), p, device);
}

Choice dispatch_with(const TableEntry* rows, int count, const Problem& p, const DeviceInfo& device) {
  for (int i = 0; i < count; ++i) {
    const TableEntry& e = rows[i];
    if (!e.device_match) break;
    if (e.n != p.n || e.k != p.k || p.m > e.m_max) continue;
    if (device.name.find(e.device_match) == std::string::npos) continue;
    if (e.impl == Impl::gemv && p.m > kMaxGemvM) continue;
    if (e.impl == Impl::mma && p.m > kMaxFlatM) continue;
    return {e.impl, std::max(e.split_k, 1), true};
  }
  return rule_choice(p, device);
}

}  // namespace spw::flat_gemm

// Measured dispatch table of the flat GEMM family: written by `python3 bench/flat_gemm.py
// --autotune` on a GPU (it times every impl/split-K candidate through the C ABI and prints
// this file), committed, compiled into dispatch.cpp. Row format:
//   {"<device name substring>", n, k, m_max, Impl::<gemv|mma|cublaslt>, split_k},
// Rows of one (device, n, k) are sorted by m_max; the first row with M <= m_max wins.
// Shapes/devices without rows use rule_choice() (flat_gemm.h).
//
// No rows yet: no GPU was available when the family was written (2026-11-25). Run the
// autotune on an H100 and paste its output here.
#pragma once
// clang-format off
#define SPW_FLAT_GEMM_TABLE_ROWS \
  /* {"H100", 4096, 4096, 4, Impl::gemv, 1}, */
// clang-format on

// Compile-time dispatch of the attention kernels' (element type, head_dim) instantiations,
// written once for decode and tree attention. CUDA translation units only.
#pragma once

#include "kernels/common/dtype.h"
#include "kernels/common/error.h"

namespace spw {

/// Calls f.template operator()<T, D>() with T = half or bfloat16 (from `dtype`: bf16 gives
/// bfloat16, anything else half; callers have checked it) and D = head_dim in {64, 128, 256}.
/// Any other head_dim throws "<where>: head_dim = <d>: not supported (64, 128 or 256)".
/// Use with a template lambda: [&]<typename T, int D>() { launch<T, D>(...); }.
template <typename F>
void dispatch_dtype_head_dim(DType dtype, int head_dim, const char* where, F&& f) {
  auto by_head_dim = [&]<typename T>() {
    switch (head_dim) {
      case 64: f.template operator()<T, 64>(); return;
      case 128: f.template operator()<T, 128>(); return;
      case 256: f.template operator()<T, 256>(); return;
      default: fail("{}: head_dim = {}: not supported (64, 128 or 256)", where, head_dim);
    }
  };
  if (dtype == DType::bf16) by_head_dim.template operator()<bfloat16>();
  else by_head_dim.template operator()<half>();
}

}  // namespace spw

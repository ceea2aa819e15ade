#include "kernels/common/pinned.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/common/device.h"

#if SPW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace spw {

std::shared_ptr<std::byte> alloc_plan_host_memory(size_t bytes) {
  bytes = std::max<size_t>(bytes, 16);
#if SPW_HAVE_CUDA
  if (cuda_device_count() > 0) {
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) == cudaSuccess)
      return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { cudaFreeHost(q); });
    (void)cudaGetLastError();
  }
#endif
  // 256-byte aligned like the pinned pages' sub-allocations the planners lay out, and zeroed.
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

}  // namespace spw

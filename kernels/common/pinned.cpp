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

namespace {
constexpr size_t kAlign = 256;
size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
}  // namespace

std::shared_ptr<std::byte> alloc_plan_host_memory(size_t bytes) {
  bytes = std::max<size_t>(bytes, 16);
#if SPW_HAVE_CUDA
  if (cuda_device_count() > 0) {
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) == cudaSuccess) {
      std::memset(p, 0, bytes);
      return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { cudaFreeHost(q); });
    }
    (void)cudaGetLastError();
  }
#endif
  // 256-byte aligned like the pinned pages' sub-allocations the planners lay out, and zeroed.
  void* p = std::aligned_alloc(kAlign, align_up(bytes));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, align_up(bytes));
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

PlanHostArena::PlanHostArena(size_t reserve_bytes) {
  if (reserve_bytes > 0) {
    capacity_ = align_up(reserve_bytes);
    block_ = alloc_plan_host_memory(capacity_);
    allocations_ = 1;
  }
}

std::shared_ptr<std::byte> PlanHostArena::take(size_t bytes) {
  const size_t need = align_up(std::max<size_t>(bytes, 1));
  if (used_ + need > capacity_) {
    // A new block; the old one lives on in the plans carved from it. pinned memory is 4 KB
    // page aligned and the heap fallback 256-byte aligned, so offsets that are multiples of
    // 256 keep every take 256-byte aligned.
    capacity_ = std::max(2 * capacity_, align_up(std::max<size_t>(need, 4096)));
    block_ = alloc_plan_host_memory(capacity_);
    used_ = 0;
    ++allocations_;
  }
  std::byte* p = block_.get() + used_;
  used_ += need;
  std::memset(p, 0, need);
  return std::shared_ptr<std::byte>(block_, p);  // aliasing: owns the block, points into it
}

std::shared_ptr<std::byte> plan_host_memory(size_t bytes, PlanHostArena* arena) {
  return arena ? arena->take(bytes) : alloc_plan_host_memory(bytes);
}

}  // namespace spw

// Host memory for plan metadata that run() copies to the device with cudaMemcpyAsync: pinned
// when a device is present (a pageable source makes the copy synchronous and not capturable in
// a CUDA graph), zeroed 256-byte-aligned heap memory otherwise (CPU-only builds, planning tests).
#pragma once

#include <cstddef>
#include <memory>

namespace spw {

/// At least `bytes` (>= 16) bytes; freed with the right call when the last owner goes.
std::shared_ptr<std::byte> alloc_plan_host_memory(size_t bytes);

}  // namespace spw

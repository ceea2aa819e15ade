// Host memory for plan metadata that run() copies to the device with cudaMemcpyAsync: pinned
// when a device is present (a pageable source makes the copy synchronous and not capturable in
// a CUDA graph), 256-byte-aligned heap memory otherwise (CPU-only builds, planning tests);
// zeroed either way, so planners write only their sections.
#pragma once

#include <cstddef>
#include <memory>

namespace spw {

/// At least `bytes` (>= 16) zeroed bytes; freed with the right call when the last owner goes.
std::shared_ptr<std::byte> alloc_plan_host_memory(size_t bytes);

/// Caller-owned host memory that planners carve their metadata out of, reused plan after plan.
/// Planning once per forward pass with a fresh alloc_plan_host_memory costs a cudaHostAlloc
/// (tens of microseconds) and, when the plan goes, a cudaFreeHost (which synchronises the
/// device): a hot-path allocation an engine must not pay. With an arena, planning allocates
/// only when a plan does not fit (the arena then grows to at least twice its size), so a
/// steady stream of plans of bounded size allocates nothing after the first few.
///
/// Lifetime: a plan carved from the arena keeps the block it lives in alive (shared ownership),
/// so growing or destroying the arena never invalidates a plan. reset() rewinds the arena for
/// reuse: call it only when no plan carved since the previous reset will run again and none of
/// their copies is still in flight (e.g. after synchronising the stream they ran on); a plan
/// used after that would read a later plan's metadata.
class PlanHostArena {
 public:
  /// `reserve_bytes` > 0 allocates the first block now (off the hot path).
  explicit PlanHostArena(size_t reserve_bytes = 0);

  /// `bytes` (>= 1) zeroed bytes, 256-byte aligned, valid while the returned pointer (or a copy)
  /// lives. Grows the arena when the current block is full.
  std::shared_ptr<std::byte> take(size_t bytes);
  /// Rewinds to the start of the current block (see the lifetime rule above).
  void reset() { used_ = 0; }

  size_t capacity() const { return capacity_; }  ///< bytes in the current block
  size_t used() const { return used_; }          ///< bytes taken since the last reset
  int allocations() const { return allocations_; }  ///< blocks allocated so far (tests, logs)

 private:
  std::shared_ptr<std::byte> block_;
  size_t capacity_ = 0, used_ = 0;
  int allocations_ = 0;
};

/// `bytes` zeroed bytes of plan metadata: from `arena` when one is given, else a fresh allocation.
std::shared_ptr<std::byte> plan_host_memory(size_t bytes, PlanHostArena* arena);

}  // namespace spw

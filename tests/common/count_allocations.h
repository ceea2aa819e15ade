// Counts the calling thread's heap allocations, for tests that check a hot path allocates
// nothing: replaces the global operator new / delete of the test binary (malloc / free
// underneath). Include it in exactly ONE source file of a binary: the replacements are
// definitions, as the standard requires (not inline).
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace spw::test {

/// Whether this thread's allocations are being counted now.
inline thread_local bool counting_allocations = false;
/// Allocations counted so far (every thread).
inline std::atomic<long> allocations_counted{0};

/// Allocations the calling thread makes while f runs.
template <class F>
long allocations_in(F&& f) {
  const long before = allocations_counted.load();
  const bool was = counting_allocations;
  counting_allocations = true;
  f();
  counting_allocations = was;
  return allocations_counted.load() - before;
}

/// Stops counting this thread's allocations for the guard's lifetime (restores the state).
struct AllocationsNotCounted {
  bool was = counting_allocations;
  AllocationsNotCounted() { counting_allocations = false; }
  ~AllocationsNotCounted() { counting_allocations = was; }
  AllocationsNotCounted(const AllocationsNotCounted&) = delete;
  AllocationsNotCounted& operator=(const AllocationsNotCounted&) = delete;
};

namespace detail {
// Out of line: GCC would otherwise see free() of operator new's memory once a delete is
// inlined (-Wmismatched-new-delete), although both ends are malloc / free.
[[gnu::noinline]] inline void release(void* p) noexcept { std::free(p); }
}  // namespace detail

}  // namespace spw::test

void* operator new(std::size_t n) {
  if (spw::test::counting_allocations) spw::test::allocations_counted.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { spw::test::detail::release(p); }
void operator delete[](void* p) noexcept { spw::test::detail::release(p); }
void operator delete(void* p, std::size_t) noexcept { spw::test::detail::release(p); }
void operator delete[](void* p, std::size_t) noexcept { spw::test::detail::release(p); }

// A small fixed pool of worker threads for the CPU backend: parallel_for splits [0, n) into
// contiguous chunks that the caller's thread and the workers claim from a shared counter, so
// matrix products split their output rows without spawning threads per call.
//
// A forward pass makes a few hundred parallel_for calls, microseconds apart, so waking a
// sleeping thread each time (tens of microseconds on a VM) would cost as much as the work:
// idle workers spin for a short while (kSpin; pause, then yield) before they sleep on a
// condition variable, and a call that finds no sleeper notifies nobody. Chunks are claimed,
// not assigned: when a worker is slow to wake (the machine is busy with other processes),
// the caller takes its chunks instead of waiting for it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace spw::rt {

/// What parallel_for runs: a non-owning reference to a callable `void(int begin, int end)`.
/// Unlike std::function it never allocates (a lambda capturing more than two references was
/// copied to the heap on every call: a forward makes a few hundred calls); the callable must
/// outlive the call, which parallel_for's return-when-done guarantees.
class RangeFn {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, RangeFn> && std::is_invocable_v<const F&, int, int>)
  RangeFn(const F& f)  // NOLINT(google-explicit-constructor): lambdas convert at the call
      : obj_(&f), call_([](const void* o, int b, int e) { (*static_cast<const F*>(o))(b, e); }) {}
  void operator()(int begin, int end) const { call_(obj_, begin, end); }

 private:
  const void* obj_;
  void (*call_)(const void*, int, int);
};

class ThreadPool {
 public:
  /// threads <= 0: one per hardware thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  /// Calls fn(begin, end) on disjoint non-empty chunks covering [0, n) (several per thread,
  /// in any order, on any thread); returns when all are done. Not reentrant: one call at a
  /// time, from one thread.
  void parallel_for(int n, RangeFn fn);

  /// How long an idle worker spins (then yields) before it sleeps.
  static constexpr std::chrono::microseconds kSpin{200};
  /// Chunks per thread and call.
  static constexpr int kChunksPerThread = 4;

 private:
  void worker();
  void claim_chunks(uint32_t generation);

  std::vector<std::thread> workers_;
  // (generation << 32) | next unclaimed chunk of the current job.
  std::atomic<uint64_t> state_{0};
  std::atomic<int> done_chunks_{0};
  // The current job; written by parallel_for before it publishes the generation. A claim reads
  // fn_ and n_ only after its CAS succeeded (synchronised by state_); chunks_ is also read before
  // the claim, while parallel_for may be writing the next job's: an atomic (relaxed), so that
  // read is a stale or fresh hint, not a data race (ThreadSanitizer reported the plain int).
  const RangeFn* fn_ = nullptr;
  int n_ = 0;
  std::atomic<int> chunks_{0};
  uint32_t generation_ = 0;

  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace spw::rt

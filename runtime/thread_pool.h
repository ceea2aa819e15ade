// A small fixed pool of worker threads for the CPU backend: parallel_for splits [0, n) into
// one contiguous chunk per thread (the caller's thread works too), so matrix products split
// their output rows without spawning threads per call.
//
// A forward pass makes a few hundred parallel_for calls, microseconds apart, so waking a
// sleeping thread each time (tens of microseconds on a VM) would cost as much as the work.
// Threads therefore spin for a short while (kSpin) on an atomic generation counter before
// they sleep on a condition variable; a call that finds no sleeper notifies nobody.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace spw::rt {

class ThreadPool {
 public:
  /// threads <= 0: one per hardware thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  /// Calls fn(begin, end) on disjoint chunks covering [0, n); returns when all are done.
  /// Not reentrant: one call at a time, from one thread.
  void parallel_for(int n, const std::function<void(int, int)>& fn);

  /// How long an idle thread spins before it sleeps.
  static constexpr std::chrono::microseconds kSpin{300};

 private:
  void worker(int index);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_n_ = 0;
  std::atomic<long> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};      // workers blocked (or about to block) on start_cv_
  std::atomic<bool> caller_asleep_{false};
  bool stop_ = false;                 // guarded by mu_
};

}  // namespace spw::rt

// A small fixed pool of worker threads for the CPU backend: parallel_for splits [0, n) into
// one contiguous chunk per thread (the caller's thread works too), so matrix products split
// their output rows without spawning threads per call.
#pragma once

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
  void parallel_for(int n, const std::function<void(int, int)>& fn);

 private:
  void worker(int index);
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_n_ = 0;
  long generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace spw::rt

#include "runtime/thread_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPW_PAUSE() _mm_pause()
#else
#define SPW_PAUSE() std::this_thread::yield()
#endif

namespace spw::rt {
namespace {

// Spins until pred() or kSpin has passed; returns pred().
template <class Pred>
bool spin_until(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + ThreadPool::kSpin;
  for (int i = 1;; ++i) {
    if (pred()) return true;
    SPW_PAUSE();
    if (i % 64 == 0 && std::chrono::steady_clock::now() > end) return pred();
  }
}

void run_chunk(const std::function<void(int, int)>& fn, int n, int index, int parts) {
  const int begin = static_cast<int>(static_cast<long long>(n) * index / parts);
  const int end = static_cast<int>(static_cast<long long>(n) * (index + 1) / parts);
  if (begin < end) fn(begin, end);
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    ++generation_;
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

// Ordering: the caller publishes job_/job_n_, then bumps generation_ (seq_cst) and reads
// sleepers_; a worker going to sleep increments sleepers_ (seq_cst) and then re-reads
// generation_ under mu_. One of the two sees the other's store, so a new job is never missed.
void ThreadPool::worker(int index) {
  long seen = 0;
  for (;;) {
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      start_cv_.wait(lock, [&] { return generation_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = generation_.load(std::memory_order_acquire);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    run_chunk(*job_, job_n_, index, size());
    if (pending_.fetch_sub(1) == 1 && caller_asleep_.load()) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int n, const std::function<void(int, int)>& fn) {
  if (workers_.empty() || n <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    start_cv_.notify_all();
  }
  run_chunk(fn, n, 0, size());
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    std::unique_lock<std::mutex> lock(mu_);
    caller_asleep_.store(true);
    done_cv_.wait(lock, [&] { return pending_.load() == 0; });
    caller_asleep_.store(false);
  }
}

}  // namespace spw::rt

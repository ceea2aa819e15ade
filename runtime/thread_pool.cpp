#include "runtime/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPW_PAUSE() _mm_pause()
#else
#define SPW_PAUSE() std::this_thread::yield()
#endif

namespace spw::rt {
namespace {

uint32_t generation_of(uint64_t state) { return static_cast<uint32_t>(state >> 32); }
// The chunk field of a finished job: above every chunk count, so no claim on it can succeed.
constexpr uint32_t kClosed = 0x7fffffffu;

// Waits until pred(): pause for a few microseconds, then yield (lets a descheduled thread
// this one waits for run here). Gives up after `limit` (returns pred()); no limit if zero.
template <class Pred>
bool spin_until(Pred pred, std::chrono::microseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    if (pred()) return true;
    if (i < 256) {
      SPW_PAUSE();
      continue;
    }
    std::this_thread::yield();
    if (limit.count() > 0 && i % 16 == 0 && std::chrono::steady_clock::now() - start > limit) return pred();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.fetch_add(uint64_t{1} << 32);  // a new generation wakes every waiter, who sees stop_
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

// Claims chunks of job `generation` until none is left. A claim is a CAS on state_ that
// expects this generation, so a thread that is late never runs a chunk of a newer job with
// an older job's description: once its CAS succeeds, the job cannot have completed, hence
// fn_/n_/chunks_ are still this job's. That needs parallel_for to close a finished job
// (chunk field kClosed) before it rewrites the description: otherwise a late thread could
// read the NEXT job's larger chunks_, see its old generation's exhausted chunk index as
// unclaimed, and claim it (a chunk run twice, one completion too many: the caller waited
// forever for a count it had passed).
void ThreadPool::claim_chunks(uint32_t generation) {
  uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(s) != generation) return;
    const uint32_t chunk = static_cast<uint32_t>(s);
    // Before the claim, chunks_ may be the next job's (being written): a relaxed atomic read,
    // only a hint; the CAS decides. kClosed is above any count: the job is over.
    if (static_cast<int>(chunk) >= chunks_.load(std::memory_order_relaxed)) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    const int n = n_, parts = chunks_.load(std::memory_order_relaxed);  // this job's: it cannot have ended
    const int begin = static_cast<int>(static_cast<long long>(n) * chunk / parts);
    const int end = static_cast<int>(static_cast<long long>(n) * (chunk + 1) / parts);
    (*fn_)(begin, end);
    done_chunks_.fetch_add(1, std::memory_order_release);
    s = state_.load(std::memory_order_acquire);
  }
}

// Sleep protocol: parallel_for publishes the generation (seq_cst) and then reads sleepers_;
// a worker about to sleep increments sleepers_ (seq_cst) and re-reads the generation under
// mu_. One of the two sees the other's store, so no job is missed.
void ThreadPool::worker() {
  uint32_t seen = 0;  // the constructor's generation: a job or stop published before this
                      // thread started is seen as new
  for (;;) {
    auto fresh = [&] { return stop_.load() || generation_of(state_.load(std::memory_order_acquire)) != seen; };
    if (!spin_until(fresh, kSpin)) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, fresh);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_of(state_.load(std::memory_order_acquire));
    claim_chunks(seen);
  }
}

void ThreadPool::parallel_for(int n, RangeFn fn) {
  if (workers_.empty() || n <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  const int chunks = std::min(n, size() * kChunksPerThread);
  chunks_.store(chunks, std::memory_order_relaxed);
  done_chunks_.store(0, std::memory_order_relaxed);
  ++generation_;
  state_.store(uint64_t{generation_} << 32);  // publishes the job (seq_cst)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_all();
  }
  claim_chunks(generation_);
  // Every chunk is claimed; wait for the ones other threads are still running.
  spin_until([&] { return done_chunks_.load(std::memory_order_acquire) == chunks; }, std::chrono::microseconds(0));
  state_.store((uint64_t{generation_} << 32) | kClosed);  // before the next call rewrites the job
}

}  // namespace spw::rt

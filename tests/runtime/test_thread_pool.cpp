// The CPU backend's thread pool (runtime/thread_pool.h): every index exactly once over many
// back-to-back calls, a large job right after a small one (a hang once), workers that went to
// sleep, that the workers take part at all, a slow chunk, more threads than cores, threads <= 0;
// and that what chunks write with plain stores is visible to the caller when parallel_for
// returns, and what the caller wrote before the call to every chunk. tests/runtime/tests.cmake
// also builds this file with ThreadSanitizer (runtime_thread_pool_tsan), which checks those
// orderings rather than hoping to observe them: it reported the plain-int chunk count read
// before a claim, now an atomic.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/thread_pool.h"

using namespace spw::rt;

namespace {

TEST(ThreadPool, EveryIndexExactlyOnceOverManyCalls) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int n : {0, 1, 2, 3, 7, 64, 1001}) {
      for (int rep = 0; rep < 200; ++rep) {
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, [&](int b, int e) {
          ASSERT_LT(b, e);
          for (int i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n << " i " << i;
      }
    }
  }
}

// A job with few chunks followed at once by one with many: a worker still finishing its claim
// loop of the first must not claim a chunk of it against the second's chunk count (that ran
// a chunk twice and left the caller waiting for a count it had passed: a hang).
TEST(ThreadPool, SmallJobThenLargeJobRunsEveryIndexOnce) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(64);
    for (int rep = 0; rep < 200000; ++rep) {
      const int n = rep % 2 ? 64 : 2;
      for (int i = 0; i < n; ++i) hits[i].store(0, std::memory_order_relaxed);
      pool.parallel_for(n, [&](int b, int e) {
        for (int i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " rep " << rep << " i " << i;
    }
  }
}

TEST(ThreadPool, WorkersWakeUpAfterSleeping) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 5; ++rep) {
    std::this_thread::sleep_for(ThreadPool::kSpin * 4);  // past the spin: every worker sleeps
    std::atomic<int> sum{0};
    pool.parallel_for(300, [&](int b, int e) {
      for (int i = b; i < e; ++i) sum.fetch_add(i);
    });
    EXPECT_EQ(sum.load(), 299 * 300 / 2);
  }
}

// The workers do take part: a chunk waits (up to 2 s) until a second thread has run a chunk of
// the same call, both with the worker spinning (right after a call) and with it asleep (past
// kSpin). A pool whose workers missed new jobs would still give right answers, the caller
// running every chunk alone: only this sees it.
TEST(ThreadPool, WorkersTakePartAwakeAndAsleep) {
  ThreadPool pool(2);
  for (bool asleep : {false, true, false, true}) {
    if (asleep) std::this_thread::sleep_for(ThreadPool::kSpin * 4);
    std::mutex mu;
    std::set<std::thread::id> ids;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    pool.parallel_for(8, [&](int, int) {
      {
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(std::this_thread::get_id());
      }
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (ids.size() >= 2) return;
        }
        if (std::chrono::steady_clock::now() > deadline) return;
        std::this_thread::yield();
      }
    });
    EXPECT_EQ(ids.size(), 2u) << (asleep ? "worker asleep" : "worker spinning") << ": the caller ran every chunk";
  }
}

// threads <= 0: one thread per hardware thread (at least one).
TEST(ThreadPool, ZeroThreadsMeansOnePerHardwareThread) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(ThreadPool(0).size(), hw);
  EXPECT_EQ(ThreadPool(-1).size(), hw);
}

TEST(ThreadPool, WaitsForEveryChunkEvenWhenOneIsSlow) {
  ThreadPool pool(2);
  for (int rep = 0; rep < 3; ++rep) {
    std::atomic<int> done{0};
    pool.parallel_for(2, [&](int b, int) {
      if (b == 1) std::this_thread::sleep_for(ThreadPool::kSpin * 5);  // outlasts every spin
      done.fetch_add(1);
    });
    EXPECT_EQ(done.load(), 2);
  }
}

TEST(ThreadPool, CallerDoesTheWorkWhenWorkersAreBusyElsewhere) {
  // More threads than cores and every worker asleep: the call still completes, whoever runs it.
  ThreadPool pool(8);
  std::this_thread::sleep_for(ThreadPool::kSpin * 4);
  std::vector<std::atomic<int>> hits(50);
  pool.parallel_for(50, [&](int b, int e) {
    for (int i = b; i < e; ++i) hits[i].fetch_add(1);
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

// Plain (non-atomic) data both ways: the caller's writes before the call are read by the chunks,
// the chunks' writes are read by the caller after it; each call's values differ, so a chunk
// that ran before the caller's writes, or a caller that read before a chunk finished, fails
// the checks (and ThreadSanitizer reports the missing ordering in the tsan build).
TEST(ThreadPool, PlainWritesAreOrderedAroundTheCall) {
  for (int threads : {2, 4}) {
    ThreadPool pool(threads);
    std::vector<int> in(997), out(997);
    for (int rep = 0; rep < 2000; ++rep) {
      const int n = rep % 3 ? 997 : 5;
      for (int i = 0; i < n; ++i) in[i] = rep * 1000 + i;
      pool.parallel_for(n, [&](int b, int e) {
        for (int i = b; i < e; ++i) out[i] = in[i] + 1;
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(out[i], rep * 1000 + i + 1) << "threads " << threads << " rep " << rep;
    }
  }
}

}  // namespace

// The CPU backend's decode steps allocate nothing on the calling thread once warm: the token
// plan and activations live in a scratch kept between forwards, the KV cache grows by
// doubling, and the thread pool takes its work as a non-owning RangeFn (a std::function
// copied a large lambda to the heap on every parallel_for). The count is the calling thread's
// allocations inside a window (tests/common/count_allocations.h); worker threads' one-time
// growth of their thread-local score rows is not counted.
#include <atomic>
#include <filesystem>
#include <memory>

#include "runtime/gguf_writer.h"
#include "runtime/model_loader.h"
#include "runtime/thread_pool.h"
#include "tests/common/count_allocations.h"
#include "tests/common/helpers.h"

using namespace spw::rt;
using spw::test::allocations_in;

namespace {

TEST(CpuBackendAlloc, TheCounterSeesAnAllocation) {
  EXPECT_GE(allocations_in([] {
              int* p = new int(7);
              asm volatile("" : : "r"(p) : "memory");  // not elided
              delete p;
            }),
            1);  // so the zeros below can fail
}

TEST(CpuBackendAlloc, ParallelForTakesALargeLambdaWithoutAllocating) {
  ThreadPool pool(2);
  long a = 1, b = 2, c = 3, d = 4;  // captured by reference: four pointers, past std::function's buffer
  std::atomic<long> sum{0};
  auto body = [&](int begin, int end) {
    for (int i = begin; i < end; ++i) sum += a + b + c + d;
  };
  pool.parallel_for(64, body);
  EXPECT_EQ(allocations_in([&] { pool.parallel_for(64, body); }), 0);
  EXPECT_EQ(sum.load(), 2 * 64 * 10);
}

// A tiny random model of `context` tokens on `threads` threads (its file written to a temp
// folder and removed once loaded: the CPU backend copies the weights).
std::unique_ptr<Model> tiny_model(int context, int threads) {
  const auto dir = std::filesystem::temp_directory_path() / ("spw_cpu_alloc_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "tiny.gguf").string();
  TinyLlamaSpec spec;
  spec.context = context;
  write_tiny_llama(file, spec);
  auto m = load_model(file, {.threads = threads});
  std::filesystem::remove_all(dir);
  return m;
}

TEST(CpuBackendAlloc, WarmDecodeStepsAndVerificationPassesAllocateNothing) {
  auto m = tiny_model(256, 2);
  const int s = m->create_sequence();
  std::vector<float> logits;
  std::vector<int32_t> prompt(40);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(10 + i);
  const std::vector<int32_t> chain{5, 6, 7, 8}, tree{9, 10, 11, 12}, parents{-1, 0, 0, 1};
  auto step = [&](std::span<const int32_t> tokens, std::span<const int32_t> par) {
    SeqInput in{s, tokens, par};
    m->forward(std::span(&in, 1), logits);
  };
  // Warm-up: the prompt (cache capacity 40), one step (capacity 80), a chain and a tree.
  step(prompt, {});
  const int32_t one = 3;
  step(std::span(&one, 1), {});
  for (int r = 0; r < 3; ++r) {
    step(chain, {});
    m->rollback(s, 41);
    step(tree, parents);
    m->rollback(s, 41);
  }
  // Within the capacity: steps, verification passes and rollbacks allocate nothing.
  const long n = allocations_in([&] {
    for (int r = 0; r < 5; ++r) {
      step(std::span(&one, 1), {});
      step(chain, {});
      m->rollback(s, m->cached_tokens(s) - 2);
      step(tree, parents);
      m->rollback(s, m->cached_tokens(s) - 3);
    }
  });
  EXPECT_EQ(n, 0);
  EXPECT_LT(m->cached_tokens(s), 80);
}

// The KV cache grows only when a token does not fit (a sequence filled to its capacity exactly
// allocates nothing), by doubling, and never past max_tokens: 40 -> 80 -> 100 here. Once the
// cache holds max_tokens, a token more is an error, not a growth.
TEST(CpuBackendAlloc, KvCacheGrowsByDoublingUpToMaxTokens) {
  auto m = tiny_model(100, 1);
  ASSERT_EQ(m->max_tokens(), 100);
  const int s = m->create_sequence();
  std::vector<float> logits;
  std::vector<int32_t> prompt(40, 7);
  const int32_t one = 3;
  auto step = [&](std::span<const int32_t> tokens) {
    SeqInput in{s, tokens, {}};
    m->forward(std::span(&in, 1), logits);
  };
  step(prompt);  // capacity 40
  // Warm the scratch for sequences of up to 100 tokens on another sequence, then free it.
  {
    const int w = m->create_sequence();
    std::vector<int32_t> full(100, 7);
    SeqInput in{w, full, {}};
    m->forward(std::span(&in, 1), logits);
    for (int i = 0; i < 3; ++i) {
      m->rollback(w, 99);
      SeqInput next{w, std::span(&one, 1), {}};
      m->forward(std::span(&next, 1), logits);
    }
    m->free_sequence(w);
  }
  auto steps_allocate = [&](int from, int to) {  // steps making the sequence hold from+1 .. to tokens
    EXPECT_EQ(m->cached_tokens(s), from);
    return allocations_in([&] {
      for (int n = from; n < to; ++n) step(std::span(&one, 1));
    });
  };
  EXPECT_GT(steps_allocate(40, 41), 0) << "41 tokens: grown to 80";
  EXPECT_EQ(steps_allocate(41, 80), 0) << "up to the capacity exactly";
  EXPECT_GT(steps_allocate(80, 81), 0) << "81 tokens: grown to min(160, max_tokens)";
  EXPECT_EQ(steps_allocate(81, 100), 0) << "grown to max_tokens = 100 at once";
  EXPECT_THROW_MSG(step(std::span(&one, 1)), "exceed the context limit 100");
}

}  // namespace

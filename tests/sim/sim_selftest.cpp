// The simulator's own tests: barriers and reductions, the ldmatrix/mma fragment layouts
// against a plain matrix product, deferred cp.async, wmma, graph capture, and the failures it
// must report (a lane exiting under a warp collective, a deadlock, a sync inside a capture),
// poisoned static shared memory, graph updates, the order of blocks, programmatic dependent
// launch (the PDL check), and spw::LaunchRecord (kernels/common/launch.cuh).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <new>
#include <vector>

#include "kernels/common/cp_async.cuh"
#include "kernels/common/launch.cuh"
#include "kernels/common/mma.cuh"
#include "kernels/common/reduce.cuh"

namespace {

__global__ void sum_kernel(const float* x, float* out, int n) {
  SPW_STATIC_SMEM(float, scratch, [32]);
  float v = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v += x[i];
  v = spw::block_reduce_sum(v, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

// One warp: A [16][16] row-major and a 128-element B tile staged in shared memory, and the A
// fragment; the C/D fragment written back to D [16][8] in its PTX layout.
template <typename T>
T* stage(unsigned char* smem, const T* A, const T* B, uint32_t (&a)[4]) {
  T* sa = reinterpret_cast<T*>(smem);
  T* sb = sa + 256;
  const int l = threadIdx.x;
  for (int i = l; i < 256; i += 32) sa[i] = A[i];
  for (int i = l; i < 128; i += 32) sb[i] = B[i];
  __syncthreads();
  spw::mma::ldmatrix_x4(a, sa + (l % 16) * 16 + (l / 16) * 8);
  return sb;
}
void store_d(float* D, const float (&d)[4]) {
  const int g = threadIdx.x / 4, c = threadIdx.x % 4;
  D[g * 8 + 2 * c] = d[0];
  D[g * 8 + 2 * c + 1] = d[1];
  D[(g + 8) * 8 + 2 * c] = d[2];
  D[(g + 8) * 8 + 2 * c + 1] = d[3];
}

// B given as [8][16] (n, k): ldmatrix (no .trans) gives its fragment; D = 1 + A B.
template <typename T>
__global__ void mma_kernel(const T* A, const T* B, float* D) {
  SPW_DYNAMIC_SMEM(128, smem);
  uint32_t a[4], b[2];
  const T* sb = stage(smem, A, B, a);
  const int l = threadIdx.x;
  spw::mma::ldmatrix_x2(b, sb + (l % 8) * 16 + ((l / 8) % 2) * 8);
  float d[4] = {1.f, 1.f, 1.f, 1.f};
  spw::mma::mma_m16n8k16<T>(d, a, b[0], b[1]);
  store_d(D, d);
}

// B given as [16][8] (k, n): ldmatrix .trans gives the fragment of the same product.
__global__ void mma_trans_kernel(const __half* A, const __half* Bkn, float* D) {
  SPW_DYNAMIC_SMEM(128, smem);
  uint32_t a[4], b[4];
  const __half* sb = stage(smem, A, Bkn, a);
  // matrices: k rows 0-7 and 8-15 of the 8 columns (x4: the last two repeat them)
  spw::mma::ldmatrix_x4_trans(b, spw::mma::smem_u32(sb + (threadIdx.x % 16) * 8));
  float d[4] = {0.f, 0.f, 0.f, 0.f};
  spw::mma::mma_m16n8k16<__half>(d, a, b[0], b[1]);
  store_d(D, d);
}

__global__ void copy_kernel(const float4* src, float4* dst, bool wait) {
  SPW_DYNAMIC_SMEM(16, smem);
  float4* s = reinterpret_cast<float4*>(smem);
  spw::cp_async16(s + threadIdx.x, src + threadIdx.x, threadIdx.x % 2 == 0);
  spw::cp_async_commit();
  if (wait) spw::cp_async_wait<0>();
  __syncthreads();
  dst[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];  // another thread's copy
}

__global__ void early_exit_kernel(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f * threadIdx.x, 1);
}

// Lane 0 waits at the block barrier for its warp, which waits at a warp barrier for lane 0.
__global__ void deadlock_kernel(float* out) {
  if (threadIdx.x % 32 == 0) __syncthreads();
  else __syncwarp();
  out[threadIdx.x] = 1.f;
}

__global__ void add_kernel(float* x, float v) { x[threadIdx.x] += v; }

// A shuffle among half the warp, then (after a block barrier: the simulator refuses two warp
// collectives with different masks in flight at once) a shuffle and a vote over all of it.
__global__ void partial_mask_kernel(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_xor_sync(0x0000ffffu, v, 1);
  __syncthreads();
  v = __shfl_sync(0xffffffffu, v, (threadIdx.x + 1) % 32);
  out[threadIdx.x] = v + 100 * __popc(__ballot_sync(0xffffffffu, v % 2 == 0));
}

// Writes and reads back one float per thread past the first 48 KB of dynamic shared memory.
__global__ void big_smem_kernel(float* out) {
  SPW_DYNAMIC_SMEM(16, smem);
  float* s = reinterpret_cast<float*>(smem) + 16000;
  s[threadIdx.x] = 1.f + threadIdx.x;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

// Threads below `written` fill their slot of a static shared array; everyone reads theirs.
__global__ void static_smem_kernel(float* out, int written) {
  SPW_STATIC_SMEM(float, s, [64]);
  if (static_cast<int>(threadIdx.x) < written) s[threadIdx.x] = blockIdx.x + 1.f;
  __syncthreads();
  out[blockIdx.x * 64 + threadIdx.x] = s[threadIdx.x];
}

// Each block records when it ran: rank[linear block index] = how many blocks ran before it.
__global__ void block_rank_kernel(unsigned* counter, unsigned* rank) {
  if (threadIdx.x != 0) return;
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  rank[b] = atomicAdd(counter, 1u);
}

// ---- programmatic dependent launch: a producer, and consumers that wait (or not) ----------
__global__ void produce_kernel(float* out, int n, float v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  spw::pdl_launch_dependents();
  if (i < n) out[i] = v + static_cast<float>(i);
}

enum class Consume {
  wait_then_read,      // correct
  read_then_wait,      // reads the producer's output too early
  no_wait,             // never waits
  write_then_wait,     // writes the producer's output too early
  cp_async_then_wait,  // a cp.async of the producer's output issued too early, landing after the wait
  one_waits_all_sync,  // thread 0 waits, then a barrier, then everyone reads: correct
};
__global__ void consume_kernel(float* in, float* out, Consume how) {
  SPW_DYNAMIC_SMEM(16, smem);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float x = 0.f;
  switch (how) {
    case Consume::wait_then_read: spw::pdl_wait(); x = in[i]; break;
    case Consume::read_then_wait: x = in[i]; spw::pdl_wait(); break;
    case Consume::no_wait: x = in[i]; break;
    case Consume::write_then_wait: in[i] = -1.f; spw::pdl_wait(); x = in[i]; break;
    case Consume::cp_async_then_wait: {
      float4* s = reinterpret_cast<float4*>(smem);
      if (threadIdx.x % 4 == 0) spw::cp_async16(s + threadIdx.x / 4, in + i, true);
      spw::cp_async_commit();
      spw::pdl_wait();
      spw::cp_async_wait<0>();
      __syncthreads();
      x = reinterpret_cast<const float*>(s)[threadIdx.x];
      break;
    }
    case Consume::one_waits_all_sync:
      if (threadIdx.x == 0) spw::pdl_wait();
      __syncthreads();
      x = in[i];
      break;
  }
  out[i] = 2.f * x;
}

std::vector<float> halves_to_floats(const std::vector<__half>& v) {
  std::vector<float> f;
  for (auto h : v) f.push_back(__half2float(h));
  return f;
}

class Sim : public ::testing::Test {
 protected:
  void TearDown() override { spw::sim::reset_errors(); }
};

TEST_F(Sim, BlockReductionOverSeveralBlocks) {
  std::vector<float> x(1000), out(3, -1.f);
  double ref = 0;
  for (int i = 0; i < 1000; ++i) ref += x[i] = 0.5f * i;
  spw::launch(sum_kernel, dim3(3), dim3(128), 0, nullptr, x.data(), out.data(), 1000);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (float o : out) EXPECT_EQ(o, ref);
}

// Static shared memory starts every block as 0xff (NaN), as dynamic shared memory does: a slot
// no thread of the block wrote reads NaN, not what an earlier block or launch left there.
TEST_F(Sim, StaticSharedMemoryStartsEveryBlockPoisoned) {
  std::vector<float> out(3 * 64);
  spw::launch(static_smem_kernel, dim3(3), dim3(64), 0, nullptr, out.data(), 64);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (int i = 0; i < 3 * 64; ++i) EXPECT_EQ(out[i], i / 64 + 1.f) << i;
  spw::launch(static_smem_kernel, dim3(3), dim3(64), 0, nullptr, out.data(), 32);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (int i = 0; i < 3 * 64; ++i) {
    if (i % 64 < 32) EXPECT_EQ(out[i], i / 64 + 1.f) << i;
    else EXPECT_TRUE(std::isnan(out[i])) << i << ": never written in this block";
  }
}

// The order of blocks is the test's to choose (SPW_SIM_BLOCKS sets the default of a run); every
// block runs exactly once in each order, with the right index.
TEST_F(Sim, BlocksRunInGridOrderReversedOrShuffled) {
  const spw::sim::BlockOrder before = spw::sim::block_order();
  const uint64_t before_seed = spw::sim::block_order_seed();
  const dim3 grid(5, 3, 2);
  const unsigned n = 30;
  auto ranks = [&] {
    unsigned counter = 0;
    std::vector<unsigned> rank(n, ~0u);
    spw::launch(block_rank_kernel, grid, dim3(64), 0, nullptr, &counter, rank.data());
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    EXPECT_EQ(counter, n);
    std::vector<unsigned> sorted = rank;
    std::sort(sorted.begin(), sorted.end());
    for (unsigned i = 0; i < n; ++i) EXPECT_EQ(sorted[i], i) << "each block once";
    return rank;
  };
  std::vector<unsigned> forward(n), reverse(n);
  for (unsigned i = 0; i < n; ++i) forward[i] = i, reverse[i] = n - 1 - i;
  spw::sim::set_block_order(spw::sim::BlockOrder::forward);
  EXPECT_EQ(ranks(), forward);
  spw::sim::set_block_order(spw::sim::BlockOrder::reverse);
  EXPECT_EQ(ranks(), reverse);
  spw::sim::set_block_order(spw::sim::BlockOrder::shuffled, 7);
  const std::vector<unsigned> a = ranks(), b = ranks();
  EXPECT_NE(a, forward);
  EXPECT_NE(a, reverse);
  EXPECT_NE(a, b) << "each launch draws its own order";
  spw::sim::set_block_order(before, before_seed);
}

template <typename T>
void check_mma() {
  std::vector<T> A(256), B(128);
  for (int i = 0; i < 256; ++i) A[i] = static_cast<T>(static_cast<float>((i * 7) % 11) - 5.f);
  for (int i = 0; i < 128; ++i) B[i] = static_cast<T>(static_cast<float>((i * 5) % 9) - 4.f);
  std::vector<float> D(128, -7.f);
  spw::launch(mma_kernel<T>, dim3(1), dim3(32), 1024, nullptr, A.data(), B.data(), D.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      float s = 1.f;
      for (int k = 0; k < 16; ++k) s += static_cast<float>(A[r * 16 + k]) * static_cast<float>(B[n * 16 + k]);
      EXPECT_EQ(D[r * 8 + n], s) << "row " << r << " col " << n;
    }
}
TEST_F(Sim, MmaFragmentsGiveTheMatrixProductHalf) { check_mma<__half>(); }
TEST_F(Sim, MmaFragmentsGiveTheMatrixProductBf16) { check_mma<__nv_bfloat16>(); }

TEST_F(Sim, LdmatrixTransGivesTheBOperandOfARowMajorKnTile) {
  std::vector<__half> A(256), Bkn(128);
  for (int i = 0; i < 256; ++i) A[i] = __float2half(static_cast<float>(i % 13) - 6.f);
  for (int i = 0; i < 128; ++i) Bkn[i] = __float2half(static_cast<float>(i % 7) - 3.f);
  std::vector<float> D(128);
  spw::launch(mma_trans_kernel, dim3(1), dim3(32), 1024, nullptr, A.data(), Bkn.data(), D.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const auto a = halves_to_floats(A), b = halves_to_floats(Bkn);
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      float s = 0.f;
      for (int k = 0; k < 16; ++k) s += a[r * 16 + k] * b[k * 8 + n];
      EXPECT_EQ(D[r * 8 + n], s) << "row " << r << " col " << n;
    }
}

TEST_F(Sim, CpAsyncLandsAtTheWaitAndZeroFillsInvalidCopies) {
  std::vector<float4> src(64), dst(64);
  for (int i = 0; i < 64; ++i) src[i] = make_float4(i, i, i, i);
  spw::launch(copy_kernel, dim3(1), dim3(64), 64 * 16, nullptr, src.data(), dst.data(), true);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (int i = 0; i < 64; ++i) {
    const int j = (i + 1) % 64;
    EXPECT_EQ(dst[i].x, j % 2 == 0 ? static_cast<float>(j) : 0.f) << i;
  }
  // Without the wait the copies are still in flight after the barrier (they land when their
  // thread ends): a thread that reads a neighbour's still-running copy reads the poison.
  spw::launch(copy_kernel, dim3(1), dim3(64), 64 * 16, nullptr, src.data(), dst.data(), false);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_TRUE(std::any_of(dst.begin(), dst.end(), [](const float4& v) { return std::isnan(v.x); }));
}

TEST_F(Sim, LaneExitingUnderAWarpCollectiveFailsTheLaunch) {
  std::vector<float> out(32);
  testing::internal::CaptureStderr();
  spw::launch(early_exit_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  EXPECT_NE(err.find("lane 3 of warp 0 exited"), std::string::npos) << err;
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure) << "launch failures are sticky";
}

TEST_F(Sim, BarrierThatNotAllThreadsReachIsADeadlock) {
  std::vector<float> out(128);
  testing::internal::CaptureStderr();
  spw::launch(deadlock_kernel, dim3(1), dim3(128), 0, nullptr, out.data());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchFailure);
  EXPECT_NE(err.find("deadlock"), std::string::npos) << err;
}

TEST_F(Sim, DynamicSharedMemoryPast48KbNeedsTheKernelsOptIn) {
  std::vector<float> out(32, -1.f);
  testing::internal::CaptureStderr();
  spw::launch(big_smem_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, out.data());
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_NE(err.find("65536 bytes exceeds the kernel's 49152"), std::string::npos) << err;
  EXPECT_EQ(out[0], -1.f) << "a refused launch runs nothing";
  ASSERT_EQ(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024), cudaSuccess);
  spw::launch(big_smem_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, out.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(out[5], 6.f);
  // The opt-in is the kernel's new limit, and the device's bounds it.
  testing::internal::CaptureStderr();
  spw::launch(big_smem_kernel, dim3(1), dim3(32), 64 * 1024 + 16, nullptr, out.data());
  err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_NE(err.find("65552 bytes exceeds the kernel's 65536"), std::string::npos) << err;
  EXPECT_EQ(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
            cudaErrorInvalidValue);
  cudaGetLastError();
}

TEST_F(Sim, CollectivesOfPartOfTheWarpThenOfAllOfIt) {
  std::vector<int> out(32, -1);
  spw::launch(partial_mask_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  for (int l = 0; l < 32; ++l) {
    const int src = (l + 1) % 32, v = src < 16 ? src ^ 1 : src;
    EXPECT_EQ(out[l], v + 100 * 16) << "lane " << l;  // 16 even values among 0..31
  }
}

TEST_F(Sim, GraphCaptureRecordsAndReplaysAndRefusesSynchronisation) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  std::vector<float> x(32, 0.f);
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  spw::launch(add_kernel, dim3(1), dim3(32), 0, s, x.data(), 2.f);
  testing::internal::CaptureStderr();
  EXPECT_EQ(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 16), cudaErrorStreamCaptureUnsupported);
  testing::internal::GetCapturedStderr();
  cudaGraph_t g;
  ASSERT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  EXPECT_EQ(x[0], 0.f) << "a captured launch runs only on replay";
  cudaGraphExec_t e;
  ASSERT_EQ(cudaGraphInstantiate(&e, g, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  EXPECT_EQ(x[5], 4.f);
  cudaGraphExecDestroy(e);
  cudaGraphDestroy(g);
  cudaStreamDestroy(s);
}

__global__ void scale_kernel(float* x, float v) { x[threadIdx.x] *= v; }

cudaGraph_t capture(cudaStream_t s, const std::function<void()>& work) {
  EXPECT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
  work();
  cudaGraph_t g = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(s, &g), cudaSuccess);
  return g;
}

TEST_F(Sim, GraphExecUpdateTakesNewParametersOfTheSameTopologyOnly) {
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  std::vector<float> x(32, 1.f), y(32, 1.f);
  cudaGraph_t g1 = capture(s, [&] { spw::launch(add_kernel, dim3(1), dim3(32), 0, s, x.data(), 2.f); });
  cudaGraphExec_t e;
  ASSERT_EQ(cudaGraphInstantiate(&e, g1, 0), cudaSuccess);
  // Same topology, other arguments: the update takes them.
  cudaGraph_t g2 = capture(s, [&] { spw::launch(add_kernel, dim3(1), dim3(32), 0, s, y.data(), 5.f); });
  cudaGraphExecUpdateResultInfo info{};
  ASSERT_EQ(cudaGraphExecUpdate(e, g2, &info), cudaSuccess);
  EXPECT_EQ(info.result, cudaGraphExecUpdateSuccess);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  EXPECT_EQ(x[3], 1.f);
  EXPECT_EQ(y[3], 6.f);
  // One node more (a copy after the kernel): refused, the executable graph unchanged.
  float host = 0.f;
  cudaGraph_t g3 = capture(s, [&] {
    spw::launch(add_kernel, dim3(1), dim3(32), 0, s, x.data(), 1.f);
    cudaMemcpyAsync(&host, x.data(), sizeof(float), cudaMemcpyDeviceToHost, s);
  });
  EXPECT_EQ(cudaGraphExecUpdate(e, g3, &info), cudaErrorGraphExecUpdateFailure);
  EXPECT_EQ(info.result, cudaGraphExecUpdateErrorTopologyChanged);
  EXPECT_EQ(cudaGetLastError(), cudaErrorGraphExecUpdateFailure);
  ASSERT_EQ(cudaGraphLaunch(e, s), cudaSuccess);
  EXPECT_EQ(y[3], 11.f);
  EXPECT_EQ(x[3], 1.f);
  for (cudaGraph_t g : {g1, g2, g3}) cudaGraphDestroy(g);
  cudaGraphExecDestroy(e);
  cudaStreamDestroy(s);
}

struct Padded {  // 3 bytes of padding after c
  char c;
  int i;
};
__global__ void padded_kernel(Padded p, float* x) { x[threadIdx.x] = static_cast<float>(p.i + p.c); }

// With the PDL check on, a programmatic launch sees what the kernel before it in the stream
// changed as 0xff (NaN) until its wait, and may not write it; a plain launch, a copy between
// the two kernels or a host synchronisation ends the overlap.
class SimPdl : public Sim {
 protected:
  static constexpr int kN = 256, kThreads = 64;
  void SetUp() override {
    was_on_ = spw::sim::pdl_check();
    spw::sim::set_pdl_check(true);
    ASSERT_EQ(cudaMalloc(&in_, kBytes), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&out_, kBytes), cudaSuccess);
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    cudaStreamDestroy(stream_);
    cudaFree(in_);
    cudaFree(out_);
    spw::sim::set_pdl_check(was_on_);
    Sim::TearDown();
  }
  // Host values 1000 + i in `in_`, the producer over its first `produced` floats, then the
  // consumer (programmatic when `pdl`); returns the consumer's output.
  std::vector<float> run(Consume how, bool pdl = true, int produced = kN, bool copy_between = false) {
    std::vector<float> host(kN);
    for (int i = 0; i < kN; ++i) host[i] = 1000.f + static_cast<float>(i);
    EXPECT_EQ(cudaMemcpy(in_, host.data(), kBytes, cudaMemcpyHostToDevice), cudaSuccess);
    spw::launch(produce_kernel, dim3((produced + kThreads - 1) / kThreads), dim3(kThreads), 0, stream_, in_,
                produced, 1.f);
    if (copy_between) {
      EXPECT_EQ(cudaMemcpyAsync(out_, host.data(), 4, cudaMemcpyHostToDevice, stream_), cudaSuccess);
    }
    last_ = spw::launch_pdl(consume_kernel, dim3(kN / kThreads), dim3(kThreads), 256, stream_, pdl, in_, out_, how);
    std::vector<float> out(kN);
    EXPECT_EQ(cudaMemcpy(out.data(), out_, kBytes, cudaMemcpyDeviceToHost), last_ == cudaSuccess ? cudaSuccess
                                                                                            : cudaErrorLaunchFailure);
    return out;
  }
  static bool all_nan(const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isnan(x); });
  }
  static std::vector<float> produced_twice(int produced) {
    std::vector<float> v(kN);
    for (int i = 0; i < kN; ++i) v[i] = 2.f * (i < produced ? 1.f + i : 1000.f + i);
    return v;
  }
  static constexpr size_t kBytes = kN * sizeof(float);
  bool was_on_ = false;
  float *in_ = nullptr, *out_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaError_t last_ = cudaSuccess;
};

TEST_F(SimPdl, WaitingBeforeReadingSeesTheProducersOutput) {
  EXPECT_EQ(run(Consume::wait_then_read), produced_twice(kN));
  EXPECT_EQ(run(Consume::one_waits_all_sync), produced_twice(kN)) << "threads held at a barrier behind the waiting one";
}

TEST_F(SimPdl, ReadingBeforeTheWaitSeesPoisonButOnlyWhereTheProducerWrote) {
  EXPECT_TRUE(all_nan(run(Consume::read_then_wait)));
  EXPECT_TRUE(all_nan(run(Consume::no_wait)));
  EXPECT_TRUE(all_nan(run(Consume::cp_async_then_wait))) << "a cp.async issued before the wait lands stale data";
  const std::vector<float> half = run(Consume::read_then_wait, true, kN / 2);
  for (int i = 0; i < kN; ++i) {
    if (i < kN / 2) EXPECT_TRUE(std::isnan(half[i])) << i;
    else EXPECT_EQ(half[i], 2.f * (1000.f + i)) << i << ": the producer left it alone";
  }
  // After the launch the producer's output is back for everyone.
  std::vector<float> in(kN);
  ASSERT_EQ(cudaMemcpy(in.data(), in_, kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int i = 0; i < kN; ++i) EXPECT_EQ(in[i], i < kN / 2 ? 1.f + i : 1000.f + i) << i;
}

TEST_F(SimPdl, PlainLaunchesCopiesBetweenAndTheCheckOffOverlapNothing) {
  EXPECT_EQ(run(Consume::read_then_wait, false), produced_twice(kN)) << "not a programmatic launch";
  EXPECT_EQ(run(Consume::read_then_wait, true, kN, true), produced_twice(kN)) << "a copy in between";
  spw::sim::set_pdl_check(false);
  EXPECT_EQ(run(Consume::read_then_wait), produced_twice(kN)) << "the check off";
}

TEST_F(SimPdl, WritingTheProducersOutputBeforeTheWaitFailsTheLaunch) {
  testing::internal::CaptureStderr();
  run(Consume::write_then_wait);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(last_, cudaErrorLaunchFailure);
  EXPECT_NE(err.find("a programmatic launch wrote 256 byte(s)"), std::string::npos) << err;
  EXPECT_NE(err.find("before griddepcontrol.wait"), std::string::npos) << err;
}

TEST_F(SimPdl, GraphReplayKeepsTheProgrammaticEdge) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  spw::launch(produce_kernel, dim3(kN / kThreads), dim3(kThreads), 0, stream_, in_, kN, 1.f);
  spw::launch_pdl(consume_kernel, dim3(kN / kThreads), dim3(kThreads), 256, stream_, true, in_, out_,
                  Consume::read_then_wait);
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  std::vector<float> out(kN);
  ASSERT_EQ(cudaMemcpy(out.data(), out_, kBytes, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(all_nan(out));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST(LaunchRecord, RecordsInsteadOfIssuingAndComparesLaunchesExactly) {
  std::vector<float> x(32, 1.f), y(32, 1.f);
  float host[4] = {};
  cudaStream_t s;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  auto record = [&](auto&& work) {
    spw::LaunchRecord r;
    spw::RecordLaunches scope(&r);
    work();
    return r;
  };
  auto base = [&] {
    spw::launch(add_kernel, dim3(1), dim3(32), 0, s, x.data(), 2.f);
    EXPECT_EQ(spw::copy_async(host, x.data(), 16, cudaMemcpyDeviceToHost, s), cudaSuccess);
  };
  const spw::LaunchRecord a = record(base);
  EXPECT_EQ(x[0], 1.f) << "a recorded launch does not run";
  EXPECT_EQ(host[0], 0.f) << "a recorded copy does not run";
  EXPECT_GT(a.size(), 0u);
  EXPECT_TRUE(a == record(base));
  EXPECT_EQ(spw::launch_record(), nullptr) << "the scope ends the recording";
  // Any difference in what would be issued makes the records differ.
  EXPECT_FALSE(a == record([&] {
    spw::launch(add_kernel, dim3(1), dim3(32), 0, s, x.data(), 3.f);  // an argument
    spw::copy_async(host, x.data(), 16, cudaMemcpyDeviceToHost, s);
  }));
  EXPECT_FALSE(a == record([&] {
    spw::launch(add_kernel, dim3(1), dim3(32), 0, s, y.data(), 2.f);  // a pointer
    spw::copy_async(host, x.data(), 16, cudaMemcpyDeviceToHost, s);
  }));
  EXPECT_FALSE(a == record([&] {
    spw::launch(scale_kernel, dim3(1), dim3(32), 0, s, x.data(), 2.f);  // the kernel
    spw::copy_async(host, x.data(), 16, cudaMemcpyDeviceToHost, s);
  }));
  EXPECT_FALSE(a == record([&] {
    spw::launch(add_kernel, dim3(1), dim3(16), 0, s, x.data(), 2.f);  // the block
    spw::copy_async(host, x.data(), 16, cudaMemcpyDeviceToHost, s);
  }));
  EXPECT_FALSE(a == record([&] {
    spw::launch(add_kernel, dim3(1), dim3(32), 0, s, x.data(), 2.f);
    spw::copy_async(host, x.data(), 8, cudaMemcpyDeviceToHost, s);  // the copy's size
  }));
  // Padding never makes equal launches differ: the same values over different stack garbage.
  auto padded = [&](unsigned char garbage) {
    alignas(Padded) unsigned char raw[sizeof(Padded)];
    std::memset(raw, garbage, sizeof raw);
    Padded* p = new (raw) Padded;
    p->c = 1;
    p->i = 7;
    return record([&] { spw::launch(padded_kernel, dim3(1), dim3(32), 0, s, *p, x.data()); });
  };
  EXPECT_TRUE(padded(0x00) == padded(0xab));
  // Without a record the same calls issue their work.
  base();
  EXPECT_EQ(x[0], 3.f);
  EXPECT_EQ(host[0], 3.f);
  cudaStreamDestroy(s);
}

}  // namespace

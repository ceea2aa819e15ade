// spw-sim: runs Spillway's CUDA kernels on the CPU, so that their logic is tested on
// machines without a GPU (CI, most development sessions).
//
// A sim build compiles the kernel sources (*.cu) as plain C++ with this header included
// first (-DSPW_SIM=1) and links tests/sim/sim_core.cpp in place of the CUDA runtime. Each CUDA
// thread becomes a fiber; the fibers of one block run on one OS thread, switching at every
// synchronisation point, so the kernels run unmodified except for three hooks in
// kernels/common: the launch (spw::launch), the dynamic shared memory (SPW_DYNAMIC_SMEM) and the
// warp-level matrix instructions (kernels/common/mma.cuh), which call the functions below.
//
// What it models, and so tests:
//  - __syncthreads, warp shuffles/votes/__syncwarp as real barriers over the live threads;
//    a warp collective whose mask names a lane that has exited, or a deadlock (threads waiting
//    on different barriers), fails the launch with a message that says where.
//  - cp.async as deferred copies: a copy lands only when a cp.async.wait_group that covers its
//    group runs (or the thread ends), so reading a tile before waiting for it reads stale data.
//  - shared memory poisoned (0xff bytes: NaN in fp32/fp16/bf16) in every block: dynamic at its
//    start, static (SPW_STATIC_SMEM) at the first declaration the block reaches;
//    a launch with more than 48 KB of it fails unless the kernel opted in to that much
//    (cudaFuncSetAttribute, cudaFuncAttributeMaxDynamicSharedMemorySize), as on a GPU.
//  - ldmatrix (x1/x2/x4, .trans) and mma.sync m16n8k16 with the PTX fragment layouts, and the
//    nvcuda::wmma API (16x16x16, layouts per the fragment types), in fp32 arithmetic.
//  - streams execute in order at the call; CUDA-graph capture records launches, copies and
//    memsets and replays them; host synchronisation and allocation inside a capture fail with
//    cudaErrorStreamCaptureUnsupported, as on a GPU (the "graph safe" contract).
//  - lanes run in increasing order, or in decreasing order with SPW_SIM_REVERSE=1 (a kernel
//    whose result depends on the order has a race); blocks run in grid order, or reversed or
//    shuffled with SPW_SIM_BLOCKS=reverse|shuffle[:SEED] (a result that depends on the order of
//    blocks, which a GPU does not promise, is an inter-block race).
//  - programmatic dependent launch, with SPW_SIM_PDL=1 (set_pdl_check): until griddepcontrol.wait
//    lets it go on, a kernel sees what the previous kernel wrote as 0xff bytes, and may not write it.
// What it does not model: timing, memory coalescing, bank conflicts, register limits, the
// exact rounding of tensor-core accumulation, or concurrency between streams or blocks (blocks
// run one after another, which hides races between blocks that run at the same time; only
// their order can be varied). Two warp collectives with different masks in flight in one warp
// at once (legal since Volta) fail the launch as unsupported. Under the PDL check, a kernel
// that writes before its wait what the previous kernel reads (not writes) goes unnoticed.
// Global memory bounds are checked when the sim tests are built with AddressSanitizer
// (cudaMalloc allocates exactly what it is asked).
#pragma once

#ifndef SPW_SIM
#error "tests/sim/cuda_sim.h is only for SPW_SIM builds"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

// ---- CUDA C++ keywords as plain C++ -------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#undef __shared__
#undef __constant__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// Static shared memory is declared with SPW_STATIC_SMEM (kernels/common/launch.cuh): blocks run
// one at a time, so a function-local static is exactly a per-block shared variable, and the
// macro refills it with 0xff bytes at the first declaration a block reaches. A plain __shared__
// would skip that refill, so it does not compile here.
#define __shared__ SPW_SIM_declare_static_shared_memory_with_SPW_STATIC_SMEM
#define __constant__ static

namespace spw::sim {

inline constexpr int kWarp = 32;
inline constexpr int kSlotBytes = 64;

/// One simulated CUDA thread (a fiber).
struct Thread {
  uint3 tid{};
  unsigned linear = 0, lane = 0, warp = 0;
  int state = 0;  // see sim_core.cpp
  void* sp = nullptr;
  // cp.async: copies issued and not yet landed, and the end index of each committed group
  // `poison`: the source is memory the previous kernel wrote, read before griddepcontrol.wait
  // (a programmatic launch, see set_pdl_check): the copy lands 0xff bytes, as stale data would.
  struct Copy { void* dst; const void* src; bool valid, poison; };
  std::vector<Copy> copies;
  int group_end[64] = {};
  int n_groups = 0;
};

/// The block being run: its coordinates, dynamic shared memory and warp exchange slots.
struct Block {
  uint3 bid{};
  dim3 bdim, gdim;
  unsigned char* dyn_smem = nullptr;
  size_t dyn_bytes = 0;
  unsigned char (*slots)[2][kWarp][kSlotBytes] = nullptr;  // [warp][bank][lane][bytes]
  unsigned* warp_epoch = nullptr;                          // [warp]: warp barriers released so far
};

extern Thread* g_thread;
extern Block* g_block;

inline const uint3& thread_idx() { return g_thread->tid; }
inline const uint3& block_idx() { return g_block->bid; }
inline const dim3& block_dim() { return g_block->bdim; }
inline const dim3& grid_dim() { return g_block->gdim; }
inline unsigned lane_id() { return g_thread->lane; }
// A warp collective deposits into the exchange bank of the warp's epoch (the count of its
// barrier releases) read before its barrier, and reads that bank after it. Banks alternate
// with every release, so a fast lane depositing for the next collective never overwrites what
// a slow lane still reads, and one barrier per collective suffices; the epoch also names the
// collective (claim_warp_result). Being per warp, it stays in step when only some lanes take part.
inline unsigned warp_epoch() { return g_block->warp_epoch[g_thread->warp]; }
inline void* slot(unsigned epoch, unsigned lane) { return g_block->slots[g_thread->warp][epoch & 1u][lane]; }

/// Fails the running launch with `msg` (the fiber does not return).
[[noreturn]] void kernel_error(const std::string& msg);
/// __syncthreads over the block's live threads.
void block_barrier();
/// Barrier over the lanes of `mask` in the caller's warp (each must call it with that mask).
void warp_barrier(unsigned mask);
/// cp.async bookkeeping (sim_core.cpp).
void cp_async_issue(void* dst, const void* src, bool valid);
void cp_async_commit();
void cp_async_wait(int keep);
/// Dynamic shared memory of the running block (SPW_DYNAMIC_SMEM).
inline unsigned char* dynamic_smem() { return g_block->dyn_smem; }
/// A static shared variable's declaration was reached (SPW_STATIC_SMEM): the first time in each
/// block, its `bytes` at `p` become 0xff, as dynamic shared memory does at every block start.
void fresh_static_smem(void* p, size_t bytes);

/// Warp-collective results computed once: the first lane of the warp to call claim(epoch) for
/// the collective of that epoch (warp_epoch() before its barrier) gets true and fills
/// warp_scratch() (1024 floats per warp), which every lane reads before the warp's next barrier.
bool claim_warp_result(unsigned epoch);
float* warp_scratch();
/// Clears the sticky launch error (a GPU needs a new process; the simulator's own tests don't).
void reset_errors();
/// cudaMalloc + cudaHostAlloc (cudaMallocHost) calls so far in this process: tests check that
/// warm passes allocate no device or pinned memory.
uint64_t allocation_calls();
/// The order in which a launch runs its blocks (one at a time): `forward` (x fastest, then y,
/// then z), `reverse`, or `shuffled` (a permutation drawn from `seed` and the launch's count).
/// A GPU promises no order, so a kernel whose result changes with it has an inter-block race.
/// The default comes from SPW_SIM_BLOCKS (forward, reverse, shuffle or shuffle:SEED).
enum class BlockOrder { forward, reverse, shuffled };
void set_block_order(BlockOrder order, uint64_t seed = 0);
BlockOrder block_order();
uint64_t block_order_seed();
/// Programmatic dependent launch (spw::launch_pdl with pdl = true; griddepcontrol on sm_90):
/// such a kernel may start before the previous kernel in its stream has finished, and must
/// run griddepcontrol.wait (spw::pdl_wait) before it touches what that kernel wrote. With the
/// check on, the sim keeps, for every kernel, the bytes it changed (a snapshot of all cudaMalloc
/// memory before it, compared after), and runs a programmatic launch as if that kernel finished
/// only when no thread of the block can go on without it: until then those bytes read as 0xff
/// (NaN in fp32/fp16/bf16; cp.async copies from them land 0xff too), and writing them fails the
/// launch. Off by default (the snapshots cost a copy of device memory per launch); the default
/// comes from SPW_SIM_PDL (1 = on). A copy or memset in the stream between the two kernels, or
/// a synchronous one anywhere, ends the overlap, as on a GPU.
void set_pdl_check(bool on);
bool pdl_check();
/// griddepcontrol.wait in a kernel (spw::pdl_wait): returns once the previous kernel in the
/// stream has finished, which in a programmatic launch under the check is when every thread of
/// the block waits for it, has ended, or is held at a barrier by one that waits.
void grid_dependency_wait();
/// Launches `body` (one call per thread) on a grid; used by spw::launch in SPW_SIM builds.
/// `func` (the kernel) is checked like a GPU does: dynamic shared memory over 48 KB needs its
/// cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize) first. `pdl`: a
/// programmatic dependent launch (see set_pdl_check).
void launch(const void* func, dim3 grid, dim3 block, size_t smem, cudaStream_t stream, std::function<void()> body,
            bool pdl = false);

// ---- warp exchange ------------------------------------------------------------------------
template <typename T>
T exchange(unsigned mask, T v, int src) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= kSlotBytes, "shuffle type");
  const unsigned lane = lane_id(), e = warp_epoch();
  std::memcpy(slot(e, lane), &v, sizeof(T));
  warp_barrier(mask);
  T r = v;
  if (src >= 0 && src < kWarp) {
    if (!(mask >> src & 1u))
      kernel_error("warp shuffle: lane " + std::to_string(lane) + " reads lane " + std::to_string(src) +
                   ", which is not in the mask");
    std::memcpy(&r, slot(e, static_cast<unsigned>(src)), sizeof(T));
  }
  return r;
}

}  // namespace spw::sim

#define threadIdx (::spw::sim::thread_idx())
#define blockIdx (::spw::sim::block_idx())
#define blockDim (::spw::sim::block_dim())
#define gridDim (::spw::sim::grid_dim())
inline constexpr int warpSize = 32;

// ---- synchronisation, shuffles, votes -----------------------------------------------------
inline void __syncthreads() { ::spw::sim::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::spw::sim::warp_barrier(mask); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = static_cast<int>(::spw::sim::lane_id());
  return ::spw::sim::exchange(mask, v, (lane / width) * width + ((src % width) + width) % width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = static_cast<int>(::spw::sim::lane_id());
  int src = lane ^ lane_mask;
  if (src / width > lane / width) src = lane;  // later groups: the caller's own value
  return ::spw::sim::exchange(mask, v, src);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(::spw::sim::lane_id());
  const int src = lane + static_cast<int>(delta);
  return ::spw::sim::exchange(mask, v, src / width == lane / width ? src : lane);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = static_cast<int>(::spw::sim::lane_id());
  const int src = lane - static_cast<int>(delta);
  return ::spw::sim::exchange(mask, v, src >= 0 && src / width == lane / width ? src : lane);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  using namespace ::spw::sim;
  const unsigned lane = lane_id(), e = warp_epoch();
  const int mine = pred ? 1 : 0;
  std::memcpy(slot(e, lane), &mine, sizeof(int));
  warp_barrier(mask);
  unsigned bits = 0;
  for (int l = 0; l < kWarp; ++l) {
    if (!(mask >> l & 1u)) continue;
    int v;
    std::memcpy(&v, slot(e, static_cast<unsigned>(l)), sizeof(int));
    if (v) bits |= 1u << l;
  }
  return bits;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == __ballot_sync(mask, 1); }
inline unsigned __activemask() { return 0xffffffffu; }

// ---- memory and arithmetic intrinsics -----------------------------------------------------
template <typename T>
T __ldg(const T* p) { return *p; }
template <typename T>
T __ldcg(const T* p) { return *p; }
template <typename T>
T __ldcs(const T* p) { return *p; }
template <typename T>
void __stcg(T* p, T v) { *p = v; }
template <typename T>
T atomicAdd(T* p, T v) { const T old = *p; *p = old + v; return old; }
template <typename T>
T atomicExch(T* p, T v) { const T old = *p; *p = v; return old; }
template <typename T>
T atomicMax(T* p, T v) { const T old = *p; *p = std::max(old, v); return old; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.f / x; }
inline float __saturatef(float x) { return std::min(1.f, std::max(0.f, x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
// Shared-space addresses are offsets into the block's dynamic shared memory (the only shared
// memory the kernels address numerically); anything else fails the launch.
inline unsigned long long __cvta_generic_to_shared(const void* p) {
  const auto* b = ::spw::sim::g_block->dyn_smem;
  const auto* q = static_cast<const unsigned char*>(p);
  if (q < b || q > b + ::spw::sim::g_block->dyn_bytes)
    ::spw::sim::kernel_error("__cvta_generic_to_shared of an address outside the dynamic shared memory");
  return static_cast<unsigned long long>(q - b);
}
namespace spw::sim {
/// The pointer behind a shared-space address (an offset, see __cvta_generic_to_shared).
inline const void* shared_ptr(uint32_t addr) {
  if (addr >= g_block->dyn_bytes) kernel_error("shared-space address " + std::to_string(addr) + " past the dynamic shared memory");
  return g_block->dyn_smem + addr;
}
}  // namespace spw::sim
using std::isfinite;
using std::isinf;
using std::isnan;
using std::max;
using std::min;

/// cuda_runtime.h's typed overload (nvcc only): the kernel's address as the function handle.
template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// ---- nvcuda::wmma (16x16x16): every lane holds the whole tile -----------------------------
// Real fragments spread a tile over the warp in an unspecified layout; code may only use them
// through these functions and uniform element-wise operations, which a whole-tile copy in
// every lane satisfies. Each call is a warp collective, as on the GPU.
namespace nvcuda::wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[num_elements];
};

namespace detail {
template <typename T>
float f(T v) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(v);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(v);
  else return static_cast<float>(v);
}
inline void sync() { ::spw::sim::warp_barrier(0xffffffffu); }
}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename L, typename V>
void fill_fragment(fragment<Use, M, N, K, T, L>& a, V v) {
  for (auto& e : a.x) e = static_cast<T>(v);
}
template <typename Use, int M, int N, int K, typename T, typename L>
void load_matrix_sync(fragment<Use, M, N, K, T, L>& a, const T* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, T, L>;
  detail::sync();
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      a.x[r * F::cols + c] = std::is_same_v<L, col_major> ? p[c * ldm + r] : p[r * ldm + c];
  detail::sync();
}
template <int M, int N, int K, typename T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& a, const T* p, unsigned ldm, layout_t layout) {
  detail::sync();
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) a.x[r * N + c] = layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c];
  detail::sync();
}
template <int M, int N, int K, typename T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& a, unsigned ldm, layout_t layout) {
  detail::sync();
  if (::spw::sim::lane_id() == 0)
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < N; ++c) (layout == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = a.x[r * N + c];
  detail::sync();
}
template <int M, int N, int K, typename Tab, typename La, typename Lb, typename Tc>
void mma_sync(fragment<accumulator, M, N, K, Tc>& d, const fragment<matrix_a, M, N, K, Tab, La>& a,
              const fragment<matrix_b, M, N, K, Tab, Lb>& b, const fragment<accumulator, M, N, K, Tc>& c) {
  static_assert(M * N <= 1024, "wmma tile fits the warp scratch");
  detail::sync();
  const unsigned n = ::spw::sim::warp_epoch();
  float* out = ::spw::sim::warp_scratch();
  if (::spw::sim::claim_warp_result(n)) {  // all lanes hold the same tiles: compute once
    float fa[M * K], fb[K * N];
    for (int i = 0; i < M * K; ++i) fa[i] = detail::f(a.x[i]);
    for (int i = 0; i < K * N; ++i) fb[i] = detail::f(b.x[i]);
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float acc = detail::f(c.x[i * N + j]);
        for (int k = 0; k < K; ++k) acc += fa[i * K + k] * fb[k * N + j];
        out[i * N + j] = acc;
      }
  }
  for (int i = 0; i < M * N; ++i) d.x[i] = static_cast<Tc>(out[i]);
  detail::sync();
}
}  // namespace nvcuda::wmma

// ---- the PTX matrix instructions behind kernels/common/mma.cuh ----------------------------
namespace spw::sim {
/// ldmatrix.sync.aligned.m8n8.x{count}[.trans].shared.b16: lane l supplies the address of row
/// l % 8 of matrix l / 8; register i of lane l receives two b16 of matrix i.
void ldmatrix(unsigned* r, int count, bool trans, const void* addr);
/// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: d += a * b over the warp's fragments.
void mma_m16n8k16(float* d, const unsigned* a, const unsigned* b, bool bf16);
}  // namespace spw::sim

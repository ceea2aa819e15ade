// Kernel launches and dynamic shared memory, written once so that a SPW_SIM build (tests/sim:
// the kernels compiled as C++ and run on a CPU simulator) can replace them. CUDA TUs only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

/// Declares `name` as the block's dynamic shared memory (unsigned char[], `align`-byte aligned).
/// SPW_STATIC_SMEM(type, name, dims) declares a statically sized shared variable:
/// SPW_STATIC_SMEM(float, scratch, [32]) is `__shared__ float scratch[32]` (dims may be empty).
/// In a SPW_SIM build both start each block as 0xff bytes (NaN in fp32/fp16/bf16), as garbage
/// would on a GPU, so that reading what no thread of the block wrote shows up.
#if defined(SPW_SIM)
#define SPW_DYNAMIC_SMEM(align, name) unsigned char* name = ::spw::sim::dynamic_smem()
#define SPW_STATIC_SMEM(type, name, dims) \
  static type name dims;                  \
  ::spw::sim::fresh_static_smem(&name, sizeof(name))
#else
#define SPW_DYNAMIC_SMEM(align, name) extern __shared__ __align__(align) unsigned char name[]
#define SPW_STATIC_SMEM(type, name, dims) __shared__ type name dims
#endif

namespace spw {

/// What a stretch of host code would put into its streams, recorded instead of issued: every
/// kernel launch (function, grid, block, shared memory, stream, the bytes of each argument),
/// every copy made through copy_async (destination, source, size, kind, stream) and whatever
/// else adds itself (flat_gemm's cuBLASLt products). Two equal records issue identical work, so
/// a CUDA graph captured from the one replays the other exactly (the CUDA backend's step
/// graphs); the data behind the pointers, device or host, is not part of a record.
class LaunchRecord {
 public:
  void clear() { bytes_.clear(); }
  size_t size() const { return bytes_.size(); }
  bool operator==(const LaunchRecord& o) const { return bytes_ == o.bytes_; }
  /// Appends the object representation of `v` with its padding bits zeroed (a struct's padding
  /// would otherwise make equal launches differ). T must be trivially copyable.
  template <typename T>
  void add(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "LaunchRecord::add: T must be trivially copyable");
    T copy = v;
    __builtin_clear_padding(&copy);
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &copy, sizeof(T));
  }
  template <typename... T>
  void add_all(const T&... v) { (add(v), ...); }

 private:
  std::vector<unsigned char> bytes_;
};

namespace detail {
inline thread_local LaunchRecord* t_record = nullptr;
}

/// The record this thread's launches and copies go into instead of their streams, or nullptr
/// (issue them): see RecordLaunches.
inline LaunchRecord* launch_record() { return detail::t_record; }

/// While alive, this thread's spw::launch / launch_pdl / copy_async calls (and flat_gemm's
/// cuBLASLt products) append to `record` and issue nothing. Host code around them runs as usual
/// (argument checks, plans' host work), so a recorded pass throws where the real one would.
class RecordLaunches {
 public:
  explicit RecordLaunches(LaunchRecord* record) : outer_(detail::t_record) { detail::t_record = record; }
  ~RecordLaunches() { detail::t_record = outer_; }
  RecordLaunches(const RecordLaunches&) = delete;
  RecordLaunches& operator=(const RecordLaunches&) = delete;

 private:
  LaunchRecord* outer_;
};

/// cudaMemcpyAsync, or its entry in the active LaunchRecord (returns cudaSuccess then).
inline cudaError_t copy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (LaunchRecord* r = detail::t_record) {
    r->add_all('C', dst, src, bytes, kind, stream);
    return cudaSuccess;
  }
  return cudaMemcpyAsync(dst, src, bytes, kind, stream);
}

namespace detail {
template <typename... P>
void record_launch(LaunchRecord& r, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   bool pdl, const P&... args) {
  r.add_all('K', kernel, grid, block, smem, stream, pdl);
  (r.add(args), ...);
}
}  // namespace detail

/// kernel<<<grid, block, smem, stream>>>(args...): the arguments are converted to the kernel's
/// parameter types here, as a launch does. Errors surface through cudaGetLastError as usual.
template <typename... P, typename... A>
inline void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: argument count differs from the kernel's");
  if (LaunchRecord* r = detail::t_record) {
    detail::record_launch<P...>(*r, kernel, grid, block, smem, stream, false, P(std::forward<A>(args))...);
    return;
  }
#if defined(SPW_SIM)
  ::spw::sim::launch(reinterpret_cast<const void*>(kernel), grid, block, smem, stream,
                     [kernel, ... a = P(std::forward<A>(args))]() { kernel(a...); });
#else
  kernel<<<grid, block, smem, stream>>>(std::forward<A>(args)...);
#endif
}

/// The same launch with programmatic stream serialization when `pdl` (the kernel may start
/// while the previous kernel in the stream finishes; it must wait with griddepcontrol.wait
/// before reading that kernel's output). Returns the launch's error code.
template <typename... P, typename... A>
inline cudaError_t launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, bool pdl,
                              A&&... args) {
  if (LaunchRecord* r = detail::t_record) {
    detail::record_launch<P...>(*r, kernel, grid, block, smem, stream, pdl, P(std::forward<A>(args))...);
    return cudaSuccess;
  }
#if defined(SPW_SIM)
  static_assert(sizeof...(P) == sizeof...(A), "launch_pdl: argument count differs from the kernel's");
  ::spw::sim::launch(reinterpret_cast<const void*>(kernel), grid, block, smem, stream,
                     [kernel, ... a = P(std::forward<A>(args))]() { kernel(a...); }, pdl);
  return cudaPeekAtLastError();  // as a failed cudaLaunchKernelEx leaves its error recorded
#else
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
#endif
}

/// In the kernel that a programmatic launch (launch_pdl, pdl = true) follows in its stream: lets
/// that launch start before this grid ends (its blocks still wait in pdl_wait for this whole
/// grid to finish). No-op before sm_90.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/// In a kernel launched by launch_pdl(pdl = true): waits until the previous kernel in the stream
/// has finished and its writes are visible. Nothing it wrote may be read or written before this;
/// the sim checks that (tests/sim/cuda_sim.h, SPW_SIM_PDL). No-op before sm_90 (no overlap there).
__device__ __forceinline__ void pdl_wait() {
#if defined(SPW_SIM)
  ::spw::sim::grid_dependency_wait();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

}  // namespace spw

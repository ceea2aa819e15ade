// Kernel launches and dynamic shared memory, written once so that a SPW_SIM build (tests/sim:
// the kernels compiled as C++ and run on a CPU simulator) can replace them. CUDA TUs only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

/// Declares `name` as the block's dynamic shared memory (unsigned char[], `align`-byte aligned).
#if defined(SPW_SIM)
#define SPW_DYNAMIC_SMEM(align, name) unsigned char* name = ::spw::sim::dynamic_smem()
#else
#define SPW_DYNAMIC_SMEM(align, name) extern __shared__ __align__(align) unsigned char name[]
#endif

namespace spw {

/// kernel<<<grid, block, smem, stream>>>(args...): the arguments are converted to the kernel's
/// parameter types here, as a launch does. Errors surface through cudaGetLastError as usual.
template <typename... P, typename... A>
inline void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: argument count differs from the kernel's");
#if defined(SPW_SIM)
  ::spw::sim::launch(grid, block, smem, stream, [kernel, ... a = P(std::forward<A>(args))]() { kernel(a...); });
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
#if defined(SPW_SIM)
  (void)pdl;
  launch(kernel, grid, block, smem, stream, std::forward<A>(args)...);
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

}  // namespace spw

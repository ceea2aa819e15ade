#include "kernels/common/device.h"

#include "kernels/common/error.h"

#if SPW_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace spw {

DeviceInfo DeviceInfo::synthetic(int sm_count, int cc_major, int cc_minor) {
  DeviceInfo d;
  d.name = fmt::format("synthetic-sm{}{}-{}sm", cc_major, cc_minor, sm_count);
  d.sm_count = sm_count;
  d.cc_major = cc_major;
  d.cc_minor = cc_minor;
  d.l2_bytes = 50LL << 20;
  d.global_mem_bytes = 80LL << 30;
  d.max_smem_per_block = 227 * 1024;
  return d;
}

#if SPW_HAVE_CUDA
static std::string version_string(int v) { return fmt::format("{}.{}", v / 1000, (v % 1000) / 10); }

std::optional<std::string> gpu_unavailable_reason() {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return fmt::format("no usable CUDA device: cudaGetDeviceCount failed with {} ({})",
                       cudaGetErrorName(err), cudaGetErrorString(err));
  }
  if (n == 0) return std::string("no usable CUDA device: cudaGetDeviceCount reported 0 devices");
  return std::nullopt;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

DeviceInfo query_device(int ordinal) {
  cudaDeviceProp p{};
  cudaError_t err = cudaGetDeviceProperties(&p, ordinal);
  if (err != cudaSuccess)
    fail("query_device: device {} cannot be queried: {} ({})", ordinal, cudaGetErrorName(err),
         cudaGetErrorString(err));
  DeviceInfo d;
  d.ordinal = ordinal;
  d.name = p.name;
  d.sm_count = p.multiProcessorCount;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.l2_bytes = p.l2CacheSize;
  d.global_mem_bytes = static_cast<long long>(p.totalGlobalMem);
  d.max_smem_per_block = static_cast<int>(p.sharedMemPerBlockOptin);
  return d;
}

std::string cuda_runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? version_string(v) : "none";
}
std::string cuda_driver_version() {
  int v = 0;
  return cudaDriverGetVersion(&v) == cudaSuccess && v > 0 ? version_string(v) : "none";
}
#else
std::optional<std::string> gpu_unavailable_reason() {
  return std::string("Spillway was built without CUDA (nvcc not found at configure time)");
}
int cuda_device_count() { return 0; }
DeviceInfo query_device(int ordinal) {
  fail("query_device: device {} requested but Spillway was built without CUDA", ordinal);
}
std::string cuda_runtime_version() { return "none"; }
std::string cuda_driver_version() { return "none"; }
#endif

}  // namespace spw

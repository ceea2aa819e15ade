// What a planner needs to know about the GPU it plans for. plan() functions take a
// DeviceInfo so that scheduling is plain host code, testable on a machine without a GPU
// (tests build DeviceInfo values by hand, e.g. an H100's 132 SMs).
#pragma once

#include <optional>
#include <string>

namespace spw {

struct DeviceInfo {
  int ordinal = 0;              // CUDA device index
  std::string name;             // e.g. "NVIDIA H100 80GB HBM3"
  int sm_count = 0;             // streaming multiprocessors
  int cc_major = 0, cc_minor = 0;  // compute capability
  long long l2_bytes = 0;       // L2 cache size
  long long global_mem_bytes = 0;
  int max_smem_per_block = 0;   // opt-in shared memory per block (bytes)

  /// A made-up device for planning tests and CPU-only tools.
  static DeviceInfo synthetic(int sm_count, int cc_major = 9, int cc_minor = 0);
};

/// Number of usable CUDA devices; 0 in a CPU-only build or when no driver/device is present.
int cuda_device_count();

/// Why no GPU can be used (no device, no driver, CPU-only build), or nullopt if one can.
std::optional<std::string> gpu_unavailable_reason();

/// Properties of device `ordinal`; throws spw::Error if it cannot be queried.
DeviceInfo query_device(int ordinal = 0);

/// The CUDA runtime / driver versions as "13.0" strings ("none" when unavailable).
std::string cuda_runtime_version();
std::string cuda_driver_version();

}  // namespace spw

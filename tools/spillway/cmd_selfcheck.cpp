// `spillway selfcheck`: lists the kernel families, what this build contains and whether a
// usable GPU is present. Exit code 0 in both cases: a CPU-only machine is a valid setup.
#include <fmt/format.h>

#include "kernels/common/device.h"
#include "kernels/common/families.h"
#include "tools/spillway/command.h"

namespace {

int selfcheck(const std::vector<std::string>& args) {
  if (!args.empty()) {
    fmt::print("usage: spillway selfcheck\n  Lists the kernels and whether a GPU is present.\n");
    return args[0] == "--help" ? 0 : 2;
  }
  fmt::print("Spillway self-check\n");
  fmt::print("  build: {}\n", spw::built_with_cuda()
                                  ? fmt::format("CUDA (runtime {})", spw::cuda_runtime_version())
                                  : std::string("CPU only (no CUDA toolkit at configure time)"));
  fmt::print("  kernel families:\n");
  for (const auto& f : spw::kernel_families())
    fmt::print("    {:<18} {}  [{}]\n", f.name, f.summary,
               spw::built_with_cuda() ? "GPU kernels + CPU reference" : "CPU reference only");
  if (auto why = spw::gpu_unavailable_reason()) {
    fmt::print("  GPU: none — {}\n", *why);
    fmt::print("  GPU kernels cannot run here; CPU references, planning and the CPU backend can.\n");
  } else {
    int n = spw::cuda_device_count();
    for (int i = 0; i < n; ++i) {
      spw::DeviceInfo d = spw::query_device(i);
      fmt::print("  GPU {}: {} (sm_{}{}, {} SMs, {:.1f} GiB, L2 {} MiB), driver {}\n", i, d.name,
                 d.cc_major, d.cc_minor, d.sm_count, d.global_mem_bytes / double(1 << 30),
                 d.l2_bytes >> 20, spw::cuda_driver_version());
    }
  }
  return 0;
}

spw::cli::CommandRegistration reg({"selfcheck", "list the kernels and whether a GPU is present", selfcheck});

}  // namespace

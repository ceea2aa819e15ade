// The kernel families Spillway ships, for the CLI self-check and the docs.
#pragma once

#include <string_view>
#include <vector>

namespace spw {

struct KernelFamily {
  std::string_view name;     // folder under kernels/
  std::string_view summary;  // what it computes
};

/// Every kernel family, in the order of DESIGN.md.
const std::vector<KernelFamily>& kernel_families();

/// True when this build contains the CUDA kernels (else only CPU references and planning).
bool built_with_cuda();

}  // namespace spw

// Shapes shared by the flat GEMM CPU and GPU tests: the real-model (N, K) pairs
// (Llama-2-7B, Llama-3-8B) and odd sizes (N not a multiple of the 64-row tile, K not a
// multiple of the 64-element pipeline stage).
#pragma once

#include <utility>
#include <vector>

namespace spw::flat_gemm::test_cases {

inline const std::vector<std::pair<int, int>> kModelShapes = {
    {4096, 4096},  {12288, 4096}, {6144, 4096},  {22016, 4096}, {28672, 4096},
    {4096, 11008}, {4096, 14336}, {32000, 4096}, {128256, 4096}};

inline const std::vector<std::pair<int, int>> kOddShapes = {
    {1, 8}, {7, 72}, {65, 136}, {100, 520}, {130, 1000}, {333, 64}, {1000, 4104}, {2050, 968}};

}  // namespace spw::flat_gemm::test_cases

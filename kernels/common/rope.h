// Rotary position embedding (RoPE) math, written once for the CUDA kernel, the CPU backend and
// the references: inverse frequencies (with Llama-3 "llama3" frequency scaling) and the
// rotation of one pair of elements.
#pragma once

#include <cmath>

#include "kernels/common/platform.h"

namespace spw {

/// How a model applies RoPE. GGUF llama models store Q/K permuted for the "normal" layout
/// (pairs of adjacent elements 2i, 2i+1); NeoX-style models (Qwen2) rotate (i, i + d/2).
struct RopeParams {
  int head_dim = 128;     // rotated dimension (the whole head)
  float theta = 10000.f;  // base
  bool neox = false;      // pair layout, see above
  // Llama-3 frequency scaling; factor 0 disables it.
  float scaling_factor = 0.f;
  float low_freq_factor = 1.f;
  float high_freq_factor = 4.f;
  int original_context = 8192;
};

/// Inverse frequency of pair `i` (0 <= i < head_dim / 2), with Llama-3 scaling when enabled:
/// long wavelengths are divided by the factor, short ones kept, the band between blended.
SPW_HD inline float rope_inv_freq(int i, const RopeParams& p) {
  float freq = powf(p.theta, -2.f * static_cast<float>(i) / static_cast<float>(p.head_dim));
  if (p.scaling_factor > 0.f) {
    const float two_pi = 6.283185307179586f;
    float wavelen = two_pi / freq;
    float low_wavelen = p.original_context / p.low_freq_factor;
    float high_wavelen = p.original_context / p.high_freq_factor;
    if (wavelen > low_wavelen) {
      freq = freq / p.scaling_factor;
    } else if (wavelen >= high_wavelen) {
      float smooth = (p.original_context / wavelen - p.low_freq_factor) /
                     (p.high_freq_factor - p.low_freq_factor);
      freq = (1.f - smooth) * freq / p.scaling_factor + smooth * freq;
    }
  }
  return freq;
}

/// Element indices of pair i in a head for the given layout.
SPW_HD inline void rope_pair(int i, const RopeParams& p, int* a, int* b) {
  if (p.neox) { *a = i; *b = i + p.head_dim / 2; }
  else { *a = 2 * i; *b = 2 * i + 1; }
}

/// Rotates (x0, x1) by `angle` = position * inv_freq.
SPW_HD inline void rope_rotate(float* x0, float* x1, float angle) {
  float c = cosf(angle), s = sinf(angle);
  float a = *x0, b = *x1;
  *x0 = a * c - b * s;
  *x1 = a * s + b * c;
}

}  // namespace spw

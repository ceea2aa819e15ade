// Random SGMV batches shared by the CPU and GPU tests: segment layouts, ranks, slices, weights.
#pragma once

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "kernels/sgmv/reference.h"
#include "tests/common/helpers.h"

namespace spw::sgmv::test_cases {

enum class Layout { one_adapter, per_token, mixed, with_empty, with_none, long_segments };

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::one_adapter: return "one_adapter";
    case Layout::per_token: return "per_token";
    case Layout::mixed: return "mixed";
    case Layout::with_empty: return "with_empty";
    case Layout::with_none: return "with_none";
    case Layout::long_segments: return "long_segments";
  }
  return "?";
}
inline const std::vector<Layout>& all_layouts() {
  static const std::vector<Layout> v{Layout::one_adapter, Layout::per_token, Layout::mixed,
                                     Layout::with_empty,  Layout::with_none, Layout::long_segments};
  return v;
}

/// A batch plus its weights (float values already rounded to dtype) and inputs.
struct Case {
  reference::Batch batch;
  std::vector<float> x, y;
  std::vector<std::vector<float>> A, B;  // per (adapter, slice), GPU layout, ranks[a] rows
  std::vector<float> adapter_scales;
};

/// Segment lengths for a layout over roughly `tokens` tokens.
inline std::vector<int> segment_lengths(Layout l, int tokens, std::mt19937_64& rng) {
  std::vector<int> len;
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  switch (l) {
    case Layout::one_adapter: len = {tokens}; break;
    case Layout::per_token: len.assign(tokens, 1); break;
    case Layout::mixed:
    case Layout::with_none:
      for (int t = 0; t < tokens;) { int n = std::min(tokens - t, uni(1, 9)); len.push_back(n); t += n; }
      break;
    case Layout::with_empty:
      for (int t = 0; t < tokens;) {
        int n = uni(0, 3) == 0 ? 0 : std::min(tokens - t, uni(1, 5));
        len.push_back(n);
        t += n;
      }
      len.push_back(0);
      break;
    case Layout::long_segments:
      for (int t = 0; t < tokens;) { int n = std::min(tokens - t, uni(9, 40)); len.push_back(n); t += n; }
      break;
  }
  return len;
}

struct CaseSpec {
  DType dtype = DType::f16;
  Layout layout = Layout::mixed;
  int tokens = 16, hidden = 256, num_adapters = 4;
  std::vector<int> ranks;            // per adapter; empty => all rank_max
  int rank_max = 16;
  std::vector<int> slice_sizes{256};  // out_size per slice, packed in y unless y_pad
  int y_pad = 0;                      // extra columns between slices and at the end
  int x_pad = 0;                      // extra columns per x row
  bool scales = false;
};

inline Case make_case(const CaseSpec& sp, std::mt19937_64& rng) {
  Case c;
  auto& b = c.batch;
  Problem& p = b.problem;
  auto lens = segment_lengths(sp.layout, sp.tokens, rng);
  p.dtype = sp.dtype;
  p.segments = static_cast<int>(lens.size());
  p.num_adapters = sp.num_adapters;
  p.hidden = sp.hidden;
  p.rank_max = sp.rank_max;
  p.num_slices = static_cast<int>(sp.slice_sizes.size());
  int col = 0;
  for (int s = 0; s < p.num_slices; ++s) {
    p.slices[s] = {col, sp.slice_sizes[s]};
    col += sp.slice_sizes[s] + sp.y_pad;
  }
  p.y_cols = col;
  p.x_stride = sp.x_pad ? sp.hidden + sp.x_pad : 0;
  b.seg_starts.push_back(0);
  for (int n : lens) b.seg_starts.push_back(b.seg_starts.back() + n);
  p.tokens = b.seg_starts.back();
  std::uniform_int_distribution<int> pick(0, sp.num_adapters - 1);
  for (int i = 0; i < p.segments; ++i) {
    int a = sp.layout == Layout::one_adapter ? 0 : sp.layout == Layout::per_token ? i % sp.num_adapters : pick(rng);
    if (sp.layout == Layout::with_none && i % 3 == 1) a = -1;
    b.adapter_ids.push_back(a);
  }
  b.ranks = sp.ranks.empty() ? std::vector<int32_t>(sp.num_adapters, sp.rank_max)
                             : std::vector<int32_t>(sp.ranks.begin(), sp.ranks.end());
  // Scales keep |y| ~ 1: sum over hidden of products ~ sqrt(hidden) * 1/3.
  c.x = test::random_floats(rng, static_cast<size_t>(p.tokens) * x_row_stride(p), -1.f, 1.f, sp.dtype);
  for (int a = 0; a < p.num_adapters; ++a)
    for (int s = 0; s < p.num_slices; ++s) {
      c.A.push_back(test::random_floats(rng, static_cast<size_t>(b.ranks[a]) * p.hidden, -0.1f, 0.1f, sp.dtype));
      c.B.push_back(test::random_floats(rng, static_cast<size_t>(b.ranks[a]) * p.slices[s].out_size, -0.5f, 0.5f,
                                        sp.dtype));
    }
  c.y = test::random_floats(rng, static_cast<size_t>(p.tokens) * y_row_stride(p), -1.f, 1.f, sp.dtype);
  if (sp.scales) c.adapter_scales = test::random_floats(rng, p.num_adapters, 0.5f, 2.f);
  return c;
}

/// The same math written directly from the definition (token -> segment -> adapter), used to
/// check the reference: y + scale * (x · A^T) · B per token.
inline std::vector<double> naive_lora(const Case& c, float scale) {
  const auto& b = c.batch;
  const Problem& p = b.problem;
  std::vector<double> out(c.y.begin(), c.y.end());
  for (int t = 0; t < p.tokens; ++t) {
    int seg = static_cast<int>(std::upper_bound(b.seg_starts.begin(), b.seg_starts.end(), t) - b.seg_starts.begin()) - 1;
    const int a = b.adapter_ids[seg];
    if (a < 0) continue;
    const double sc = scale * (c.adapter_scales.empty() ? 1.0 : c.adapter_scales[a]);
    for (int s = 0; s < p.num_slices; ++s) {
      const auto& A = c.A[a * p.num_slices + s];
      const auto& B = c.B[a * p.num_slices + s];
      const int N = p.slices[s].out_size;
      for (int n = 0; n < N; ++n) {
        double acc = 0;
        for (int h = 0; h < p.hidden; ++h) {
          double w = 0;  // (A^T B)[h, n]
          for (int r = 0; r < b.ranks[a]; ++r) w += static_cast<double>(A[r * p.hidden + h]) * B[r * N + n];
          acc += c.x[t * x_row_stride(p) + h] * w;
        }
        out[t * y_row_stride(p) + p.slices[s].out_offset + n] += sc * acc;
      }
    }
  }
  return out;
}

}  // namespace spw::sgmv::test_cases

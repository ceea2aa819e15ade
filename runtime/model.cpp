// Model is an interface; backends live in cpu_backend.cpp / cuda_backend.cu. Here: the rules
// shared by every backend.
#include "runtime/model.h"

#include <algorithm>
#include <cmath>

#include "kernels/common/error.h"
#include "kernels/common/host_math.h"

namespace spw::rt {

int32_t greedy_token(std::span<const float> logits) {
  SPW_CHECK(!logits.empty(), "greedy_token: empty logits");
  // The rule of the scalar scan `if (x[i] > x[best]) best = i` (lowest index of the maximum; a
  // NaN wins only at index 0), in two passes that vectorise: the maximum over 8 lanes (a NaN
  // keeps the lane's value: std::max(m, NaN) = m), then the first index holding it. A 49k-token
  // row: ~15 us instead of ~170 us for the scan, which reloads x[best] every step.
  const float* x = logits.data();
  const size_t n = logits.size();
  if (std::isnan(x[0])) return 0;
  const float best = lane_max(logits, x[0]);
  for (size_t i = 0; i < n; ++i)
    if (x[i] == best) return static_cast<int32_t>(i);
  return 0;  // unreachable: best is one of the values
}

void Model::forward_argmax(std::span<const SeqInput> batch, std::vector<int32_t>& tokens) {
  thread_local std::vector<float> logits;
  forward(batch, logits);
  const size_t vocab = static_cast<size_t>(config().vocab_size);
  tokens.resize(logits.size() / vocab);
  for (size_t r = 0; r < tokens.size(); ++r)
    tokens[r] = greedy_token(std::span<const float>(logits.data() + r * vocab, vocab));
}

void Model::check_top_k(int k, const char* where) const {
  const int kmax = std::min(config().vocab_size, kMaxTopK);
  SPW_CHECK_ARG(k >= 1 && k <= kmax, where, "k", k, fmt::format("must be in [1, {}]", kmax));
}

namespace {
void rank_rows(std::span<const float> logits, int vocab, int k, std::vector<TopToken>& top) {
  const size_t rows = logits.size() / static_cast<size_t>(vocab);
  top.resize(rows * k);
  for (size_t r = 0; r < rows; ++r) top_tokens(logits.data() + r * vocab, vocab, k, top.data() + r * k);
}
}  // namespace

void Model::forward_topk(std::span<const SeqInput> batch, int k, std::vector<TopToken>& top) {
  check_top_k(k, "Model::forward_topk");
  thread_local std::vector<float> logits;
  forward(batch, logits);
  rank_rows(logits, config().vocab_size, k, top);
}

std::span<const float> Model::forward_view_topk(std::span<const SeqInput> batch, int k, std::vector<TopToken>& top) {
  check_top_k(k, "Model::forward_view_topk");
  const std::span<const float> rows = forward_view(batch);
  rank_rows(rows, config().vocab_size, k, top);
  return rows;
}

std::span<const float> Model::forward_view(std::span<const SeqInput> batch) {
  forward(batch, view_rows_);
  return view_rows_;
}

}  // namespace spw::rt

// Model is an interface; backends live in cpu_backend.cpp / cuda_backend.cu. Here: the rules
// shared by every backend.
#include "runtime/model.h"

#include "kernels/common/error.h"

namespace spw::rt {

int32_t greedy_token(std::span<const float> logits) {
  SPW_CHECK(!logits.empty(), "greedy_token: empty logits");
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  return best;
}

void Model::forward_argmax(std::span<const SeqInput> batch, std::vector<int32_t>& tokens) {
  thread_local std::vector<float> logits;
  forward(batch, logits);
  const size_t vocab = static_cast<size_t>(config().vocab_size);
  tokens.resize(logits.size() / vocab);
  for (size_t r = 0; r < tokens.size(); ++r)
    tokens[r] = greedy_token(std::span<const float>(logits.data() + r * vocab, vocab));
}

}  // namespace spw::rt

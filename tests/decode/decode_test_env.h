// Shared fixtures for decode tests: a target FakeModel and a loader for drafter specs
// ("draft" = a similar small model, "self" = the target's first layers approximated by the
// position-free variant of the target function, "badvocab" = a model with another vocabulary).
#pragma once

#include <memory>

#include "decode/bigram.h"
#include "decode/drafter_config.h"
#include "tests/decode/fake_model.h"

namespace spw::test {

inline constexpr int kVocab = 50;
inline constexpr int kMaxTokens = 160;

inline std::shared_ptr<rt::Model> load_fake(const std::string& path, int layers, int vocab = kVocab) {
  if (path == "badvocab") return std::make_shared<FakeModel>(vocab + 1, kMaxTokens);
  if (path == "target") {
    // self:N: a model with fewer "layers" approximating the target.
    auto m = std::make_shared<FakeModel>(vocab, kMaxTokens, 1, 4.f, 0.f);
    (void)layers;
    return m;
  }
  if (path == "draft") return std::make_shared<FakeModel>(vocab, kMaxTokens, 1, 4.f, 0.8f);
  if (path == "other") return std::make_shared<FakeModel>(vocab, kMaxTokens, 5, 4.f, 0.f);
  throw std::runtime_error("no such model: " + path);
}

inline decode::DrafterEnv make_env(int vocab = kVocab, decode::SamplingParams sp = {}) {
  decode::DrafterEnv env;
  env.vocab_size = vocab;
  env.load_model = [vocab](const std::string& p, int l) { return load_fake(p, l, vocab); };
  env.target_path = "target";
  // A bigram table from the target's own greedy text.
  FakeModel t(vocab, kMaxTokens, 1, 4.f, 0.f);
  std::vector<std::vector<int32_t>> corpus;
  for (int s = 0; s < 8; ++s) {
    auto seq = t.greedy_reference({s, s + 1}, 60);
    corpus.push_back(seq);
  }
  env.bigram = std::make_shared<decode::BigramTable>(
      decode::BigramTable::from_sequences(corpus, vocab, 2, 0));
  env.sampling = sp;
  return env;
}

}  // namespace spw::test

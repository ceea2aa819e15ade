// Drafter config strings -> DrafterFactory. Grammar (whitespace ignored; see decode/README.md):
//
//   spec    := 'none' | 'ar' | term          ('none'/'ar': plain autoregressive decoding)
//   term    := 'maxgram' [':' MIN '-' MAX] [('+bigram' | '+recycle') ['@' P]]
//            | ('bigram' | 'recycle') ['@' P]   P: stop the bigram chain below this probability
//                                             recycle: the bigram table refreshed by the
//                                             target's top-k predictions (Token Recycling)
//            | 'model:' PATH                  a smaller GGUF model (same vocabulary)
//            | 'self:' LAYERS | 'model:self:' LAYERS   the target's first LAYERS layers
//            | 'vcascade(' term ',' term {',' term} [';' opt {',' opt}] ')'
//            | 'hcascade(' term '*' N {',' term '*' N} ')'
//   opt     := 'lenience=' NUMBER (>= 1, default 1) | 'k=' N (lower draft per round, default 4)
//
// vcascade(A, B, C) = A reviews vcascade(B, C) (the same options at every level); every term
// but the last must be a model drafter. A PATH may not contain , ; ( ) * or whitespace.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "decode/bigram.h"
#include "decode/drafter.h"
#include "decode/sampling.h"

namespace spw::rt {
class Model;
}

namespace spw::decode {

struct DrafterEnv {
  int vocab_size = 0;  // the target's
  // Loads a model (max_layers <= 0: all layers). Needed for model:/self: terms.
  std::function<std::shared_ptr<rt::Model>(const std::string& path, int max_layers)> load_model;
  std::string target_path;                       // what self:N loads
  std::shared_ptr<const BigramTable> bigram;      // needed for bigram terms
  SamplingParams sampling;                        // model drafters sample with these
};

/// The spec a `--draft` argument names: `arg` itself, or for "@FILE" the text of FILE without
/// its '#' comments (to the end of a line) and whitespace (which the grammar ignores), so a
/// cascade may be laid out over several lines.
/// Paths in the file (model:PATH) are as on the command line: relative to the working
/// directory. Throws naming the file when it cannot be read, is over 64 KiB, or holds no spec.
std::string read_drafter_spec(const std::string& arg);

/// Parses `spec`, loads the models it names once (shared by every drafter made), and returns
/// a factory making one drafter per sequence (empty factory for 'none'/'ar'). Errors name the
/// bad token and its position: "drafter spec 'maxgarm': unknown drafter 'maxgarm' ... at
/// position 0" (the spec as parsed, without whitespace; a long one quoted in part). Cascades
/// nest at most 16 deep.
DrafterFactory make_drafter_factory(const std::string& spec, const DrafterEnv& env);

}  // namespace spw::decode

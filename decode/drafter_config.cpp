// Recursive-descent parser for drafter config strings (grammar in drafter_config.h).
#include "decode/drafter_config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>

#include "decode/cascade.h"
#include "decode/maxgram.h"
#include "decode/metrics.h"
#include "decode/model_drafter.h"
#include "kernels/common/error.h"
#include "runtime/model.h"

namespace spw::decode {

namespace {

struct Node {
  enum Kind { maxgram, bigram, model, vcascade, hcascade } kind = maxgram;
  MaxGramOptions mg;
  bool with_bigram = false;
  bool recycle = false;  // the bigram table refreshed by the target's predictions
  std::string path;  // model
  int layers = 0;    // model: 0 = all
  std::shared_ptr<rt::Model> loaded;
  double cost = 0;
  std::vector<Node> children;
  std::vector<int> positions;  // hcascade
  double lenience = 1.0;
  int round = 4;
  std::string text;  // the term as written
};

class Parser {
 public:
  Parser(std::string spec, const DrafterEnv& env) : env_(env) {
    for (char c : spec)
      if (!std::isspace(static_cast<unsigned char>(c))) s_ += c;
  }

  Node parse() {
    Node n = term();
    if (pos_ != s_.size()) error("unexpected '" + rest() + "'");
    return n;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("drafter spec '{}': {} at position {}", quoted(), what, pos_);
  }
  // Errors quote at most kQuote characters of a spec part or word (a generated spec can be
  // 100 KB long).
  static constexpr size_t kQuote = 48;
  // The spec as errors quote it: whole when short, else its first kQuote characters and the
  // kQuote around the error position.
  std::string quoted() const {
    if (s_.size() <= 3 * kQuote) return s_;
    const size_t from = std::min(pos_ > kQuote / 2 ? pos_ - kQuote / 2 : 0, s_.size() - kQuote);
    if (from <= kQuote) return s_.substr(0, from + kQuote) + "...";
    return s_.substr(0, kQuote) + "..." + s_.substr(from, kQuote) + (from + kQuote < s_.size() ? "..." : "");
  }
  std::string rest() const { return s_.substr(pos_, 12); }
  bool eat(const std::string& t) {
    if (s_.compare(pos_, t.size(), t) == 0) {
      pos_ += t.size();
      return true;
    }
    return false;
  }
  void expect(const std::string& t) {
    if (!eat(t)) error("expected '" + t + "' but found '" + (pos_ < s_.size() ? rest() : "end") + "'");
  }
  std::string word() const {  // up to a delimiter
    size_t e = pos_;
    while (e < s_.size() && std::string(",;()*").find(s_[e]) == std::string::npos) ++e;
    return s_.substr(pos_, e - pos_);
  }
  std::string bad_word() const {  // the word an error names, cut short
    const std::string w = word();
    return w.empty() ? rest() : w.size() > kQuote ? w.substr(0, kQuote) + "..." : w;
  }
  int integer(const char* what) {
    size_t e = pos_;
    while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
    if (e == pos_ || e - pos_ > 6) error(std::string("expected a number (") + what + ") but found '" + rest() + "'");
    const int v = std::stoi(s_.substr(pos_, e - pos_));
    pos_ = e;
    return v;
  }
  // ['@' P]: the bigram chain's confidence cut, 0 < P <= 1 (0 when absent).
  float min_p() {
    if (!eat("@")) return 0.f;
    const double p = number("bigram min probability");
    if (!(p > 0.0 && p <= 1.0)) error("bigram@P needs 0 < P <= 1");
    return static_cast<float>(p);
  }
  double number(const char* what) {
    size_t e = pos_;
    while (e < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[e])) || s_[e] == '.')) ++e;
    try {
      if (e == pos_) throw 0;
      size_t used = 0;
      const double v = std::stod(s_.substr(pos_, e - pos_), &used);
      if (used != e - pos_) throw 0;  // "1.2.3": a number, then more dots
      pos_ = e;
      return v;
    } catch (...) {
      error(std::string("expected a number (") + what + ") but found '" + rest() + "'");
    }
  }

  void load(Node& n) {
    if (!env_.load_model) error("'" + n.text + "' needs a model loader (none given)");
    const std::string path = n.path.empty() ? env_.target_path : n.path;
    if (path.empty()) error("'" + n.text + "' needs the target model's path");
    const std::string key = path + "#" + std::to_string(n.layers);
    auto it = models_.find(key);
    if (it == models_.end()) it = models_.emplace(key, env_.load_model(path, n.layers)).first;
    n.loaded = it->second;
    SPW_CHECK(n.loaded, "drafter spec '{}': loading '{}' failed", quoted(), path);
    const auto& cfg = n.loaded->config();
    if (n.layers > cfg.num_layers)
      error("'" + n.text + "': the model has only " + std::to_string(cfg.num_layers) + " layers");
    SPW_CHECK(cfg.vocab_size == env_.vocab_size,
              "drafter spec '{}': '{}' has vocab_size = {}: must equal the target's vocab_size {}",
              quoted(), n.text, cfg.vocab_size, env_.vocab_size);
    n.cost = estimate_parameters(cfg, n.layers);
  }

  // Cascades nest at most kMaxDepth deep: no useful cascade comes near it, and a parser that
  // recursed without bound would overflow the caller's stack on a generated spec.
  static constexpr int kMaxDepth = 16;

  Node term() {
    const size_t start = pos_;
    if (++depth_ > kMaxDepth) error("cascades nested over " + std::to_string(kMaxDepth) + " deep");
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    Node n;
    if (eat("vcascade(")) {
      n.kind = Node::vcascade;
      n.children.push_back(term());
      while (eat(",")) n.children.push_back(term());
      if (n.children.size() < 2) error("vcascade needs at least two drafters");
      if (eat(";")) {
        do {
          if (eat("lenience=")) {
            n.lenience = number("lenience");
            if (n.lenience < 1.0) error("lenience must be >= 1");
          } else if (eat("k=")) {
            n.round = integer("k");
            if (n.round < 1 || n.round > 64) error("k must be in [1, 64]");
          } else {
            error("unknown vcascade option '" + bad_word() + "' (lenience=, k=)");
          }
        } while (eat(","));
      }
      expect(")");
      for (size_t i = 0; i + 1 < n.children.size(); ++i)
        if (n.children[i].kind != Node::model)
          fail("drafter spec '{}': vcascade reviewer '{}' must be a model drafter (model:PATH or self:N)",
               quoted(), n.children[i].text);
    } else if (eat("hcascade(")) {
      n.kind = Node::hcascade;
      do {
        n.children.push_back(term());
        expect("*");
        const int p = integer("positions");
        if (p < 1 || p > 64) error("positions must be in [1, 64]");
        n.positions.push_back(p);
      } while (eat(","));
      expect(")");
    } else if (eat("model:self:") || eat("self:")) {
      n.kind = Node::model;
      n.layers = integer("layers");
      if (n.layers < 1) error("self:N needs N >= 1 layers");
      n.text = s_.substr(start, pos_ - start);
      load(n);
    } else if (eat("model:")) {
      n.kind = Node::model;
      n.path = word();
      if (n.path.empty()) error("model: needs a path");
      pos_ += n.path.size();
      n.text = s_.substr(start, pos_ - start);
      load(n);
    } else if (eat("maxgram")) {
      n.kind = Node::maxgram;
      if (eat(":")) {
        n.mg.min_n = integer("min n");
        expect("-");
        n.mg.max_n = integer("max n");
        if (n.mg.min_n < 1 || n.mg.max_n < n.mg.min_n || n.mg.max_n > 64)
          error("maxgram:MIN-MAX needs 1 <= MIN <= MAX <= 64");
      }
      if (eat("+bigram") || (n.recycle = eat("+recycle"))) {
        n.with_bigram = true;
        n.mg.bigram_min_p = min_p();
      }
      if (n.with_bigram && !env_.bigram)
        error(std::string("'maxgram+") + (n.recycle ? "recycle" : "bigram") +
              "' needs a bigram table (build one with `spillway bigram build`)");
    } else if (eat("bigram") || (n.recycle = eat("recycle"))) {
      n.kind = Node::bigram;
      n.mg.bigram_min_p = min_p();
      if (!env_.bigram)
        error(std::string("'") + (n.recycle ? "recycle" : "bigram") +
              "' needs a bigram table (build one with `spillway bigram build`)");
    } else {
      error("unknown drafter '" + bad_word() +
            "' (expected maxgram, bigram, recycle, model:PATH, self:N, vcascade(...), hcascade(...))");
    }
    if (n.text.empty()) n.text = s_.substr(start, pos_ - start);
    return n;
  }

  const DrafterEnv& env_;
  std::string s_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::map<std::string, std::shared_ptr<rt::Model>> models_;
};

std::unique_ptr<ModelDrafter> make_model(const Node& n, const DrafterEnv& env, uint64_t salt) {
  SamplingParams sp = env.sampling;
  sp.seed ^= salt * 0x9E3779B97F4A7C15ull;
  return std::make_unique<ModelDrafter>(n.loaded, env.vocab_size, n.text, sp, n.cost);
}

std::unique_ptr<Drafter> build(const Node& n, const DrafterEnv& env, uint64_t& salt) {
  switch (n.kind) {
    case Node::maxgram:
      return std::make_unique<MaxGramDrafter>(n.mg, n.with_bigram ? env.bigram : nullptr, n.recycle);
    case Node::bigram:
      return std::make_unique<BigramDrafter>(env.bigram, n.mg.bigram_min_p, n.recycle);
    case Node::model:
      return make_model(n, env, ++salt);
    case Node::hcascade: {
      std::vector<Cascade::Part> parts;
      for (size_t i = 0; i < n.children.size(); ++i)
        parts.push_back({build(n.children[i], env, salt), n.positions[i]});
      return Cascade::horizontal(std::move(parts), n.text);
    }
    case Node::vcascade: {
      // vcascade(A, B, C) = A reviews vcascade(B, C): build from the bottom up.
      std::unique_ptr<Drafter> lower = build(n.children.back(), env, salt);
      for (size_t i = n.children.size() - 1; i-- > 0;) {
        const bool outer = i == 0;
        lower = Cascade::vertical(make_model(n.children[i], env, ++salt), std::move(lower), n.lenience,
                                  n.round, outer ? n.text : "");
      }
      return lower;
    }
  }
  return nullptr;
}

}  // namespace

std::string read_drafter_spec(const std::string& arg) {
  if (arg.empty() || arg[0] != '@') return arg;
  const std::string path = arg.substr(1);
  if (path.empty()) fail("drafter spec '@': needs a file name after '@'");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("drafter spec file '{}': cannot open it ({})", path, std::strerror(errno));
  constexpr size_t kMaxBytes = 64 * 1024;
  std::string text(kMaxBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (in.bad()) fail("drafter spec file '{}': read error", path);
  if (text.size() > kMaxBytes) fail("drafter spec file '{}': over {} bytes: not a drafter spec", path, kMaxBytes);
  std::string spec;  // whitespace means nothing to the grammar (a PATH may not hold any)
  bool comment = false;
  for (const char c : text) {
    if (c == '\n') comment = false;
    if (c == '#') comment = true;
    if (!comment && !std::isspace(static_cast<unsigned char>(c))) spec += c;
  }
  if (spec.empty()) fail("drafter spec file '{}': holds no spec (only comments and whitespace)", path);
  return spec;
}

DrafterFactory make_drafter_factory(const std::string& spec, const DrafterEnv& env) {
  std::string trimmed;
  for (char c : spec)
    if (!std::isspace(static_cast<unsigned char>(c))) trimmed += c;
  if (trimmed.empty()) fail("drafter spec '{}': empty (use 'none' for autoregressive decoding)", spec);
  if (trimmed == "none" || trimmed == "ar") return {};
  SPW_CHECK_ARG(env.vocab_size > 0, "make_drafter_factory", "vocab_size", env.vocab_size, "must be > 0");
  auto root = std::make_shared<Node>(Parser(spec, env).parse());
  // Every drafter made gets its own sampling stream (a drafter's samples must be fresh draws,
  // not the same draw repeated for every sequence), reproducible from env.sampling.seed.
  auto made = std::make_shared<uint64_t>(0);
  return [root, env, made]() {
    uint64_t salt = 1000003ull * ++*made;
    return build(*root, env, salt);
  };
}

}  // namespace spw::decode

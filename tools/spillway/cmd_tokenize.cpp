// `spillway tokenize`: shows how a model's tokenizer splits a text — ids and pieces — with
// the special tokens and the chat template the runtime uses, so a prompt can be checked
// before it is generated from.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>

#include "kernels/common/error.h"
#include "runtime/chat_template.h"
#include "runtime/tokenizer.h"
#include "runtime/unicode.h"
#include "tools/spillway/command.h"

namespace {

constexpr const char* kDefaultModel = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

void usage() {
  fmt::print(
      "usage: spillway tokenize [--model FILE.gguf] [--text TEXT] [--special] [--chat] [--no-bos]\n"
      "  Prints the token ids and pieces of TEXT (or of stdin when --text is not given).\n"
      "  --model    GGUF model whose tokenizer to use (default {})\n"
      "  --special  control tokens written in the text (e.g. <|im_start|>) become their ids\n"
      "  --chat     format the text as one user message with the model's chat template\n"
      "             (implies --special)\n"
      "  --no-bos   do not add BOS/EOS even where the model's metadata asks for them\n",
      kDefaultModel);
}

// Shows a piece unambiguously: control characters and bytes that are not (complete) UTF-8
// are escaped — a byte-level token may end in the middle of a character.
std::string escape(std::string_view s) {
  std::string out;
  for (size_t pos = 0; pos < s.size();) {
    uint32_t cp;
    int len = spw::rt::unicode::decode_one(s, pos, &cp);
    if (cp == '\n') out += "\\n";
    else if (cp == '\t') out += "\\t";
    else if (cp == '\r') out += "\\r";
    else if (cp == '\\') out += "\\\\";
    else if (cp < 0x20 || cp == 0x7F || cp >= spw::rt::unicode::kInvalidBase)
      out += fmt::format("\\x{:02x}", uint8_t(s[pos]));
    else out.append(s, pos, size_t(len));
    pos += size_t(len);
  }
  return out;
}

int tokenize(const std::vector<std::string>& args) {
  std::string model, text;
  bool have_text = false, special = false, chat = false, add_special = true;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      SPW_CHECK(i + 1 < args.size(), "tokenize: {} needs a value", a);
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else if (a == "--model") {
      model = value();
    } else if (a == "--text") {
      text = value();
      have_text = true;
    } else if (a == "--special") {
      special = true;
    } else if (a == "--chat") {
      chat = special = true;
    } else if (a == "--no-bos") {
      add_special = false;
    } else {
      fmt::print(stderr, "spillway tokenize: unknown option '{}'\n", a);
      usage();
      return 2;
    }
  }
  if (model.empty()) {
    model = kDefaultModel;
    SPW_CHECK(std::filesystem::exists(model),
              "tokenize: no --model given and the default model {} is missing: run tools/fetch_model.sh",
              model);
  }
  if (!have_text) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());

  spw::rt::Tokenizer tok = spw::rt::Tokenizer::from_gguf_file(model);
  for (const auto& w : tok.warnings()) fmt::print(stderr, "warning: {}\n", w);
  fmt::print("model: {} ({} vocabulary, {} tokens, pre-tokenizer {})\n", model,
             tok.is_byte_level() ? "byte-level BPE" : "SentencePiece BPE", tok.n_vocab(),
             tok.is_byte_level() ? spw::rt::pre_tokenizer_name(tok.pre_tokenizer()) : "-");
  if (chat) {
    auto tmpl = spw::rt::ChatTemplate::detect(tok.chat_template());
    if (!tmpl.fallback_reason().empty()) fmt::print(stderr, "note: {}\n", tmpl.fallback_reason());
    else fmt::print("chat template: {}\n", tmpl.name());
    std::vector<spw::rt::ChatMessage> messages = {{"user", text}};
    text = tmpl.apply(messages, /*add_generation_prompt=*/true);
  }

  auto t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tok.encode(text, add_special, special);
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  for (int32_t id : ids) fmt::print("{:>7}  '{}'\n", id, escape(tok.token_to_piece(id)));
  fmt::print("{} tokens from {} bytes in {:.0f} us\nids: [{}]\n", ids.size(), text.size(), us,
             fmt::join(ids, ", "));
  return 0;
}

spw::cli::CommandRegistration reg({"tokenize", "print the token ids and pieces of a text", tokenize});

}  // namespace

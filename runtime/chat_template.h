// Chat templates of instruct models, recognised from `tokenizer.chat_template`.
// A Jinja interpreter is out of scope: the templates small instruct models ship are a
// handful of fixed formats, so the template text is matched against known markers and
// the format is written in C++. Recognised: ChatML (SmolLM2-Instruct, Qwen2; including the
// default system message a SmolLM2 template inserts when none is given), Llama-3 and
// Zephyr (TinyLlama-Chat). Anything else -> kind `plain`: the messages' contents are joined
// and fallback_reason() says why, so a caller can print it.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace spw::rt {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Kind { plain, chatml, llama3, zephyr };

  static ChatTemplate detect(std::string_view template_text);

  Kind kind() const { return kind_; }
  const char* name() const;
  // Empty when the template was recognised.
  const std::string& fallback_reason() const { return fallback_reason_; }
  // System message the template adds when the conversation has none ("" = none).
  const std::string& default_system() const { return default_system_; }

  // The prompt text, special tokens written out: encode it with parse_special = true.
  // add_generation_prompt appends the opening of the assistant's turn.
  std::string apply(std::span<const ChatMessage> messages, bool add_generation_prompt = true) const;

 private:
  Kind kind_ = Kind::plain;
  std::string default_system_;
  std::string fallback_reason_;
};

}  // namespace spw::rt

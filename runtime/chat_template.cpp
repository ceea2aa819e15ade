// Recognising chat templates by their markers and writing the prompt (chat_template.h).
#include "runtime/chat_template.h"

namespace spw::rt {

namespace {

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

std::string trim(std::string_view s) {
  const char* ws = " \t\n\r";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

// SmolLM2's template: {% if loop.first and messages[0]['role'] != 'system' %}
//   {{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, ...<|im_end|>\n' }}
// Returns the literal system text, or "" when the template has no such default.
std::string chatml_default_system(std::string_view t) {
  if (!contains(t, "!= 'system'") && !contains(t, "!= \"system\"")) return {};
  constexpr std::string_view open = "<|im_start|>system\n";
  size_t b = t.find(open);
  if (b == std::string_view::npos) return {};
  b += open.size();
  size_t e = t.find("<|im_end|>", b);
  if (e == std::string_view::npos) return {};
  std::string_view text = t.substr(b, e - b);
  // A Jinja expression (e.g. "' + message['content'] + '") is not a literal default.
  if (contains(text, "{{") || contains(text, "' +") || contains(text, "+ '")) return {};
  return std::string(text);
}

}  // namespace

ChatTemplate ChatTemplate::detect(std::string_view t) {
  ChatTemplate c;
  if (t.empty()) {
    c.fallback_reason_ = "the model has no tokenizer.chat_template: using the plain prompt";
  } else if (contains(t, "<|im_start|>")) {
    c.kind_ = Kind::chatml;
    c.default_system_ = chatml_default_system(t);
  } else if (contains(t, "<|start_header_id|>") && contains(t, "<|eot_id|>")) {
    c.kind_ = Kind::llama3;
  } else if (contains(t, "<|user|>") && contains(t, "<|assistant|>")) {
    c.kind_ = Kind::zephyr;
  } else {
    c.fallback_reason_ =
        "the model's chat template is not one Spillway knows (ChatML, Llama-3, Zephyr): using "
        "the plain prompt without chat formatting";
  }
  return c;
}

const char* ChatTemplate::name() const {
  switch (kind_) {
    case Kind::plain: return "plain";
    case Kind::chatml: return "chatml";
    case Kind::llama3: return "llama3";
    case Kind::zephyr: return "zephyr";
  }
  return "?";
}

std::string ChatTemplate::apply(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::string out;
  const bool has_system = !messages.empty() && messages[0].role == "system";
  switch (kind_) {
    case Kind::plain:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i) out += "\n";
        out += messages[i].content;
      }
      return out;
    case Kind::chatml:
      if (!has_system && !default_system_.empty() && !messages.empty())
        out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
      for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case Kind::llama3:
      // <|begin_of_text|> is the BOS the tokenizer adds; the template trims contents.
      for (const auto& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case Kind::zephyr:
      for (const auto& m : messages) out += "<|" + m.role + "|>\n" + m.content + "</s>\n";
      if (add_generation_prompt) out += "<|assistant|>\n";
      return out;
  }
  return out;
}

}  // namespace spw::rt

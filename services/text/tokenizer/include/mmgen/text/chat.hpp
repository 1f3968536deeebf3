// Chat prompts in Qwen's ChatML, rendered as the published Qwen2.5, Qwen3 and
// Qwen3.5 chat templates render them (no Jinja engine: each rule of those templates is
// one branch below), and the parsing of a model's reply into reasoning,
// content and tool calls.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/text/json.hpp"

namespace mmgen::text {

struct ToolCall {
  std::string name;
  Json arguments;  // usually an object; a string is printed as is by Qwen3
  bool operator==(const ToolCall&) const = default;
};

struct ChatMessage {
  std::string role;  // system | user | assistant | tool
  std::string content;
  std::optional<std::string> reasoning_content;  // assistant (Qwen3)
  std::vector<ToolCall> tool_calls;              // assistant
};

enum class ChatFormat {
  qwen2_5,  // Qwen2 / Qwen2.5: default system prompt, tools, no thinking
  qwen3,    // Qwen3: no default system, <think> blocks, enable_thinking
  // Qwen3.5: thinking by default (the generation prompt opens <think>),
  // trimmed contents, XML tool calls (<function=..><parameter=..>), tools
  // listed before the system prompt.
  qwen3_5,
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::qwen3;
  // Written as the system turn when the chat has none (Qwen2 / Qwen2.5).
  std::optional<std::string> default_system;
  // The generation prompt opens a think block itself ("<think>\n"), as the
  // thinking-only Qwen3 releases do; replies then start inside reasoning.
  bool generation_opens_think = false;

  static ChatTemplate qwen3();
  static ChatTemplate qwen3_5();
  static ChatTemplate qwen2_5();  // "You are Qwen, created by Alibaba Cloud. ..."
  static ChatTemplate qwen2();    // "You are a helpful assistant."
  // The format a published Jinja chat_template implements, recognised by the
  // features it uses. Throws ProtocolError(unsupported) for a non-ChatML one.
  static ChatTemplate detect(std::string_view jinja_source);
  // detect() on tokenizer_config.json's chat_template (or a chat_template.jinja beside it).
  static ChatTemplate from_model_dir(const std::filesystem::path& dir);
};

struct ChatOptions {
  bool add_generation_prompt = true;
  // Qwen3 / Qwen3.5: false appends an empty think block to the generation
  // prompt; Qwen3.5 with true opens one.
  bool enable_thinking = true;
  // Function definitions ({"type": "function", "function": {...}}), printed as
  // JSON lines in the system turn.
  std::vector<Json> tools;
};

// Throws ProtocolError(invalid_request) for an empty chat, an unknown role,
// and what a template refuses (Qwen3.5: no user query, a late system message,
// tool-call arguments that are not an object).
std::string render_chat(const ChatTemplate& tmpl, std::span<const ChatMessage> messages,
                        const ChatOptions& options);

// Whether the prompt render_chat writes for these options ends inside an open
// think block, so the reply starts with reasoning (parse_reply's and
// ReasoningStreamParser's `starts_in_reasoning`).
bool generation_starts_in_reasoning(const ChatTemplate& tmpl, const ChatOptions& options);

// ---- replies -----------------------------------------------------------------------

struct ParsedReply {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;
  // <tool_call> blocks whose JSON could not be read; their text stays in content.
  std::vector<std::string> tool_call_errors;
};

// Splits a finished reply (decoded text; <think> and <tool_call> are not
// special tokens, so they are in it). `starts_in_reasoning`: the prompt ended
// with an open think block. Tool calls are read in both published forms: a
// JSON object (Qwen2.5 / Qwen3) or XML (Qwen3.5: <function=NAME> with
// <parameter=ARG> blocks; a value that is valid JSON becomes that JSON value,
// any other text a string).
ParsedReply parse_reply(std::string_view text, bool starts_in_reasoning = false);

// The same split of reasoning and content for a reply that arrives in pieces.
// Tag text split across pieces is held back until it is known. The
// concatenated deltas equal parse_reply's reasoning, and its content when the
// reply has no tool calls (tool-call text streams as content; the final
// parse_reply extracts the calls).
class ReasoningStreamParser {
 public:
  explicit ReasoningStreamParser(bool starts_in_reasoning = false);
  struct Delta {
    std::string reasoning;
    std::string content;
  };
  Delta push(std::string_view text);
  Delta finish();

 private:
  enum class Mode { start, reasoning, content_start, content };
  Delta step(bool final);

  Mode mode_;
  bool reasoning_started_ = false;  // a non-newline reasoning byte has been emitted
  std::string buffer_;
};

}  // namespace mmgen::text

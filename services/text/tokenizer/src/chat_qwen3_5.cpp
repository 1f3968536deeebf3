// ChatML rendering following the chat_template.jinja published with the
// Qwen3.5 checkpoints. What sets it apart from Qwen3's:
//  - every message's content is trimmed of (Unicode) whitespace first, as the
//    template's `|trim` does;
//  - the tool list is the system turn's head, the system prompt comes after it;
//  - tool calls are XML (<function=NAME><parameter=ARG>value</parameter>), one
//    parameter per top-level argument;
//  - assistant turns after the last real user query always carry a think block
//    (empty when there is no reasoning);
//  - the generation prompt opens a think block unless thinking is off, in
//    which case it writes an empty one;
//  - a chat without a real user query, or with a system message after the
//    first, is refused.
#include <cmath>

#include "chat_internal.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text::detail {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

constexpr std::string_view kToolsHead =
    "<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>";
// The instructions that follow the tool list, as the template writes them.
constexpr std::string_view kToolsTail =
    "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO "
    "suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\n"
    "value_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second "
    "parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
    "<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner "
    "<function=...></function> block must be nested within <tool_call></tool_call> XML tags\n"
    "- Required parameters MUST be specified\n- You may provide optional reasoning for your "
    "function call in natural language BEFORE the function call, but NOT after\n- If there is "
    "no function call available, answer the question like normal with your current knowledge "
    "and do not tell the user about function calls\n</IMPORTANT>";

// Python's str.isspace() code points (what Jinja's trim strips).
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// Decodes the UTF-8 character starting at s[i] (input is valid UTF-8).
char32_t decode_at(std::string_view s, std::size_t i, std::size_t& len) {
  auto b = static_cast<unsigned char>(s[i]);
  len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  if (i + len > s.size()) {
    len = 1;
    return b;
  }
  char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (std::size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return c;
}

// Python's str.strip() with no argument.
std::string_view py_strip(std::string_view s) {
  std::size_t len = 0;
  while (!s.empty() && py_space(decode_at(s, 0, len))) s.remove_prefix(len);
  while (!s.empty()) {
    std::size_t start = s.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (!py_space(decode_at(s, start, len))) break;
    s.remove_suffix(s.size() - start);
  }
  return s;
}

std::string_view lstrip_nl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view rstrip_nl(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}

bool wrapped_tool_response(std::string_view c) {
  return c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
}

// A parameter value as the template prints it: objects and arrays as JSON,
// everything else as Python's str() would (True, None, 1e-07, ...).
void append_argument(std::string& out, const Json& v) {
  if (v.is_string()) out += v.as_string();
  else if (v.is_object() || v.is_array()) out += dump_json(v);
  else if (v.is_null()) out += "None";
  else if (v.is_bool()) out += v.as_bool() ? "True" : "False";
  else if (!v.is_int() && std::isnan(v.as_double())) out += "nan";
  else if (!v.is_int() && std::isinf(v.as_double())) out += v.as_double() > 0 ? "inf" : "-inf";
  else out += dump_json(v);
}

// The arguments object of a call. The template iterates a mapping; an
// OpenAI-style JSON string holding an object is read as that object.
Json arguments_object(const ToolCall& call) {
  if (call.arguments.is_object() || call.arguments.is_null()) return call.arguments;
  if (call.arguments.is_string()) {
    try {
      Json parsed = parse_json(call.arguments.as_string());
      if (parsed.is_object()) return parsed;
    } catch (const ProtocolError&) {
    }
  }
  throw ProtocolError(ErrorCode::invalid_request,
                      "tool call '" + call.name + "': arguments must be a JSON object");
}

void tool_call_block(std::string& out, const ToolCall& call, bool first, bool after_text) {
  out += first ? (after_text ? "\n\n" : "") : "\n";
  out += "<tool_call>\n<function=";
  out += call.name;
  out += ">\n";
  Json args = arguments_object(call);
  if (args.is_object())
    for (const auto& [name, value] : args.as_object()) {
      out += "<parameter=";
      out += name;
      out += ">\n";
      append_argument(out, value);
      out += "\n</parameter>\n";
    }
  out += "</function>\n</tool_call>";
}

}  // namespace

void render_qwen3_5(std::string& out, std::span<const ChatMessage> m, const ChatOptions& opt) {
  const bool first_is_system = m[0].role == "system";
  if (!opt.tools.empty()) {
    out += kToolsHead;
    for (const Json& tool : opt.tools) {
      out += '\n';
      out += dump_json(tool);
    }
    out += kToolsTail;
    if (first_is_system) {
      std::string_view system = py_strip(m[0].content);
      if (!system.empty()) {
        out += "\n\n";
        out += system;
      }
    }
    out += "<|im_end|>\n";
  } else if (first_is_system) {
    out += "<|im_start|>system\n";
    out += py_strip(m[0].content);
    out += "<|im_end|>\n";
  }

  // The last user turn that is a real query, not tool output passed as a user
  // turn: reasoning is kept only for assistant turns after it.
  std::size_t last_query = m.size();
  for (std::size_t k = m.size(); k-- > 0;)
    if (m[k].role == "user" && !wrapped_tool_response(py_strip(m[k].content))) {
      last_query = k;
      break;
    }
  if (last_query == m.size())
    throw ProtocolError(ErrorCode::invalid_request,
                        "this chat template needs a user message (none found in the chat)");

  for (std::size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    std::string_view content = py_strip(msg.content);
    if (msg.role == "system") {
      if (i > 0)
        throw ProtocolError(ErrorCode::invalid_request,
                            "this chat template takes a system message only at the beginning");
    } else if (msg.role == "user") {
      out += "<|im_start|>user\n";
      out += content;
      out += "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      std::string_view reasoning;
      if (msg.reasoning_content) {
        reasoning = *msg.reasoning_content;
      } else if (content.find("</think>") != std::string_view::npos) {
        std::string_view before = rstrip_nl(content.substr(0, content.find("</think>")));
        if (auto open = before.rfind("<think>"); open != std::string_view::npos)
          before = before.substr(open + 7);
        reasoning = lstrip_nl(before);
        content = lstrip_nl(content.substr(content.rfind("</think>") + 8));
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query) {
        out += "<think>\n";
        out += py_strip(reasoning);
        out += "\n</think>\n\n";
      }
      out += content;
      const bool after_text = !py_strip(content).empty();
      for (std::size_t j = 0; j < msg.tool_calls.size(); ++j)
        tool_call_block(out, msg.tool_calls[j], j == 0, after_text);
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      // A tool result opens a user turn after any other message (not as the
      // very first message, where the template writes none).
      if (i > 0 && m[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      out += content;
      out += "\n</tool_response>";
      if (i + 1 == m.size() || m[i + 1].role != "tool") out += "<|im_end|>\n";
    } else {
      throw ProtocolError(ErrorCode::invalid_request,
                          "chat message role must be system, user, assistant or tool, not '" +
                              msg.role + "'");
    }
  }
  if (opt.add_generation_prompt)
    out += opt.enable_thinking ? "<|im_start|>assistant\n<think>\n"
                               : "<|im_start|>assistant\n<think>\n\n</think>\n\n";
}

}  // namespace mmgen::text::detail

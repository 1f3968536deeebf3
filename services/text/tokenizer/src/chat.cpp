// ChatML rendering following the published Qwen2.5 and Qwen3 chat templates
// (Qwen3.5's is in chat_qwen3_5.cpp), and recognising a template.
#include "mmgen/text/chat.hpp"

#include <fstream>
#include <sstream>

#include "chat_internal.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::text {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

constexpr std::string_view kQwen25System =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr std::string_view kQwen2System = "You are a helpful assistant.";

// Python's str.strip('\n') family, as the templates use them.
std::string_view lstrip_nl(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view rstrip_nl(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}
std::string_view strip_nl(std::string_view s) { return lstrip_nl(rstrip_nl(s)); }

void turn(std::string& out, std::string_view role, std::string_view content) {
  out += "<|im_start|>";
  out += role;
  out += '\n';
  out += content;
  out += "<|im_end|>\n";
}

// The tools block of the system turn; `preamble` is what precedes "# Tools".
void tools_system_turn(std::string& out, std::string_view preamble, const std::vector<Json>& tools) {
  out += "<|im_start|>system\n";
  out += preamble;
  out += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
         "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
  for (const Json& tool : tools) {
    out += '\n';
    out += dump_json(tool);
  }
  out += "\n</tools>\n\nFor each function call, return a json object with function name and "
         "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
         "{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
}

void tool_call_block(std::string& out, const ToolCall& call, bool raw_string_arguments) {
  out += "<tool_call>\n{\"name\": \"";
  out += call.name;
  out += "\", \"arguments\": ";
  if (raw_string_arguments && call.arguments.is_string()) out += call.arguments.as_string();
  else out += dump_json(call.arguments);
  out += "}\n</tool_call>";
}

// Consecutive tool results share one user turn, each in <tool_response>.
void tool_turn(std::string& out, std::span<const ChatMessage> m, std::size_t i) {
  if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
  out += "\n<tool_response>\n";
  out += m[i].content;
  out += "\n</tool_response>";
  if (i + 1 == m.size() || m[i + 1].role != "tool") out += "<|im_end|>\n";
}

[[noreturn]] void unknown_role(const std::string& role) {
  throw ProtocolError(ErrorCode::invalid_request,
                      "chat message role must be system, user, assistant or tool, not '" + role + "'");
}

void render_qwen3(std::string& out, std::span<const ChatMessage> m, const ChatOptions& opt) {
  const bool first_is_system = m[0].role == "system";
  if (!opt.tools.empty()) {
    tools_system_turn(out, first_is_system ? m[0].content + "\n\n" : std::string(), opt.tools);
  } else if (first_is_system) {
    turn(out, "system", m[0].content);
  }
  // The last real user query: reasoning is shown only for turns after it.
  std::size_t last_query = m.size() - 1;
  for (std::size_t k = m.size(); k-- > 0;) {
    const std::string& c = m[k].content;
    bool is_tool_result = c.starts_with("<tool_response>") && c.ends_with("</tool_response>");
    if (m[k].role == "user" && !is_tool_result) {
      last_query = k;
      break;
    }
  }
  for (std::size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i > 0)) {
      turn(out, msg.role, msg.content);
    } else if (msg.role == "assistant") {
      std::string_view content = msg.content;
      std::string_view reasoning;
      if (msg.reasoning_content) {
        reasoning = *msg.reasoning_content;
      } else if (auto close = content.find("</think>"); close != std::string_view::npos) {
        std::string_view before = rstrip_nl(content.substr(0, close));
        if (auto open = before.rfind("<think>"); open != std::string_view::npos)
          before = before.substr(open + 7);
        reasoning = lstrip_nl(before);
        content = lstrip_nl(content.substr(content.rfind("</think>") + 8));
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query && (i + 1 == m.size() || !reasoning.empty())) {
        out += "<think>\n";
        out += strip_nl(reasoning);
        out += "\n</think>\n\n";
        out += lstrip_nl(content);
      } else {
        out += content;
      }
      for (std::size_t j = 0; j < msg.tool_calls.size(); ++j) {
        if (j > 0 || !content.empty()) out += '\n';
        tool_call_block(out, msg.tool_calls[j], /*raw_string_arguments=*/true);
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      tool_turn(out, m, i);
    } else if (!(msg.role == "system" && i == 0)) {
      unknown_role(msg.role);
    }
  }
  if (opt.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!opt.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
}

void render_qwen2_5(std::string& out, const ChatTemplate& tmpl, std::span<const ChatMessage> m,
                    const ChatOptions& opt) {
  const bool first_is_system = m[0].role == "system";
  const std::string fallback = tmpl.default_system.value_or("");
  if (!opt.tools.empty()) {
    tools_system_turn(out, (first_is_system ? m[0].content : fallback) + "\n\n", opt.tools);
  } else if (first_is_system) {
    turn(out, "system", m[0].content);
  } else if (tmpl.default_system) {
    turn(out, "system", *tmpl.default_system);
  }
  for (std::size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i > 0) ||
        (msg.role == "assistant" && msg.tool_calls.empty())) {
      turn(out, msg.role, msg.content);
    } else if (msg.role == "assistant") {
      out += "<|im_start|>assistant";
      if (!msg.content.empty()) out += "\n" + msg.content;
      for (const ToolCall& call : msg.tool_calls) {
        out += '\n';
        tool_call_block(out, call, /*raw_string_arguments=*/false);
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      tool_turn(out, m, i);
    } else if (!(msg.role == "system" && i == 0)) {
      unknown_role(msg.role);
    }
  }
  if (opt.add_generation_prompt) out += "<|im_start|>assistant\n";
}

// The default system prompt a Qwen2-style template writes, if any: the text
// of a literal '<|im_start|>system\n...<|im_end|>' or of
// `set system_message = '...'`.
std::optional<std::string> default_system_of(std::string_view src) {
  for (std::string_view known : {kQwen25System, kQwen2System})
    if (src.find(known) != std::string_view::npos) return std::string(known);
  constexpr std::string_view kOpen = "<|im_start|>system\\n";
  for (std::size_t at = src.find(kOpen); at != std::string_view::npos; at = src.find(kOpen, at + 1)) {
    std::size_t begin = at + kOpen.size();
    std::size_t end = src.find("<|im_end|>", begin);
    if (end == std::string_view::npos) break;
    std::string_view text = src.substr(begin, end - begin);
    if (!text.empty() && text.find_first_of("'\"{}+") == std::string_view::npos)
      return std::string(text);
  }
  return std::nullopt;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw ProtocolError(ErrorCode::invalid_request, "cannot open " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ChatTemplate ChatTemplate::qwen3() { return ChatTemplate{ChatFormat::qwen3, std::nullopt, false}; }
ChatTemplate ChatTemplate::qwen3_5() { return ChatTemplate{ChatFormat::qwen3_5, std::nullopt, false}; }
ChatTemplate ChatTemplate::qwen2_5() {
  return ChatTemplate{ChatFormat::qwen2_5, std::string(kQwen25System), false};
}
ChatTemplate ChatTemplate::qwen2() {
  return ChatTemplate{ChatFormat::qwen2_5, std::string(kQwen2System), false};
}

ChatTemplate ChatTemplate::detect(std::string_view src) {
  if (src.find("<|im_start|>") == std::string_view::npos)
    throw ProtocolError(ErrorCode::unsupported, "chat template is not ChatML (no <|im_start|>)");
  // Qwen3.5: a thinking switch and XML tool calls.
  if (src.find("enable_thinking") != std::string_view::npos &&
      src.find("<function=") != std::string_view::npos &&
      src.find("<parameter=") != std::string_view::npos)
    return qwen3_5();
  if (src.find("enable_thinking") != std::string_view::npos ||
      src.find("<think>") != std::string_view::npos) {
    ChatTemplate t = qwen3();
    t.generation_opens_think = src.find("<|im_start|>assistant\\n<think>\\n") != std::string_view::npos ||
                               src.find("<|im_start|>assistant\n<think>\n") != std::string_view::npos;
    return t;
  }
  return ChatTemplate{ChatFormat::qwen2_5, default_system_of(src), false};
}

ChatTemplate ChatTemplate::from_model_dir(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "chat_template.jinja"))
    return detect(read_text(dir / "chat_template.jinja"));
  auto cfg_path = dir / "tokenizer_config.json";
  Json cfg = [&] {
    try {
      return parse_json(read_text(cfg_path));
    } catch (const ProtocolError& e) {
      throw ProtocolError(e.code(), cfg_path.string() + ": " + e.what());
    }
  }();
  const Json* tmpl = cfg.find("chat_template");
  if (tmpl && tmpl->is_string()) return detect(tmpl->as_string());
  if (tmpl && tmpl->is_array())  // [{"name": ..., "template": ...}]
    for (const Json& named : tmpl->as_array())
      if (const Json* name = named.find("name"); name && name->is_string() && name->as_string() == "default")
        if (const Json* t = named.find("template"); t && t->is_string()) return detect(t->as_string());
  throw ProtocolError(ErrorCode::invalid_request, cfg_path.string() + ": no chat_template");
}

std::string render_chat(const ChatTemplate& tmpl, std::span<const ChatMessage> messages,
                        const ChatOptions& options) {
  if (messages.empty()) throw ProtocolError(ErrorCode::invalid_request, "chat has no messages");
  std::string out;
  if (tmpl.format == ChatFormat::qwen3_5) {
    detail::render_qwen3_5(out, messages, options);
  } else if (tmpl.format == ChatFormat::qwen3) {
    if (tmpl.generation_opens_think) {
      // Thinking-only releases open the block in the prompt and have no switch.
      ChatOptions always_thinking = options;
      always_thinking.enable_thinking = true;
      render_qwen3(out, messages, always_thinking);
      if (options.add_generation_prompt) out += "<think>\n";
    } else {
      render_qwen3(out, messages, options);
    }
  } else {
    render_qwen2_5(out, tmpl, messages, options);
  }
  return out;
}

bool generation_starts_in_reasoning(const ChatTemplate& tmpl, const ChatOptions& options) {
  if (!options.add_generation_prompt) return false;
  if (tmpl.format == ChatFormat::qwen3_5) return options.enable_thinking;
  return tmpl.format == ChatFormat::qwen3 && tmpl.generation_opens_think;
}

}  // namespace mmgen::text

// Chat rendering compared with transformers' apply_chat_template, run at test
// time (scripts/fixtures/tokenizer_reference.py chat). Templates: the Qwen2
// chat_template published in ../shared/data/qwen2-tokenizer, and renditions of
// the Qwen3 / Qwen2.5 templates (see the script) or real ones named by
// MMGEN_QWEN3_CHAT_TEMPLATE / MMGEN_QWEN25_CHAT_TEMPLATE.
#include <gtest/gtest.h>

#include "mmgen/text/chat.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using namespace testing;

ChatMessage msg(std::string role, std::string content) {
  ChatMessage m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

ChatMessage with_calls(ChatMessage m, std::vector<ToolCall> calls) {
  m.tool_calls = std::move(calls);
  return m;
}

ChatMessage with_reasoning(ChatMessage m, std::string reasoning) {
  m.reasoning_content = std::move(reasoning);
  return m;
}

// The message as transformers takes it (OpenAI-style tool calls).
Json to_json(const ChatMessage& m) {
  JsonObject o{{"role", m.role}, {"content", m.content}};
  if (m.reasoning_content) o.emplace_back("reasoning_content", *m.reasoning_content);
  if (!m.tool_calls.empty()) {
    JsonArray calls;
    for (const ToolCall& c : m.tool_calls)
      calls.push_back(JsonObject{{"type", "function"},
                                 {"function", JsonObject{{"name", c.name}, {"arguments", c.arguments}}}});
    o.emplace_back("tool_calls", std::move(calls));
  }
  return Json(std::move(o));
}

struct Case {
  std::string template_name;
  ChatTemplate tmpl;
  std::vector<ChatMessage> messages;
  ChatOptions options;
};

std::vector<std::vector<ChatMessage>> conversations() {
  ToolCall weather{"get_weather", parse_json(R"({"city": "Paris", "unit": "celsius", "days": 3})")};
  ToolCall time{"get_time", parse_json(R"({"zone": "Europe/Paris", "format": "24h"})")};
  ToolCall raw{"echo", Json(std::string(R"({"text": "already json"})"))};
  return {
      {msg("user", "Hello! 你好")},
      {msg("system", "You are terse."), msg("user", "Q1"),
       msg("assistant", "<think>\nfirst thoughts\n</think>\n\nA1"), msg("user", "Q2")},
      {msg("user", "What's the weather in Paris and the time?"),
       with_reasoning(with_calls(msg("assistant", ""), {weather, time}), "I need two tools."),
       msg("tool", R"({"temp": 21, "sky": "clear"})"), msg("tool", R"({"time": "14:05"})"),
       with_reasoning(msg("assistant", "It is 21 °C and 14:05."), "Combine both.")},
      {msg("system", "Use tools wisely."), msg("user", "Weather?"),
       with_calls(msg("assistant", "Let me check."), {weather}), msg("tool", "sunny"),
       msg("user", "<tool_response>\nlooks like a tool result\n</tool_response>")},
      {msg("user", "echo this"), with_calls(msg("assistant", "<think>\nr\n</think>\n\n"), {raw}),
       msg("tool", "done"), msg("assistant", "<think>\nfinal r\n</think>\n\nDone.")},
      {msg("system", "S"), msg("user", "a"), msg("assistant", "b"), msg("system", "late system"),
       msg("user", "c")},
  };
}

std::vector<Json> tool_definitions() {
  return {parse_json(R"({"type": "function", "function": {"name": "get_weather",
      "description": "Current weather for a city, in °C or °F.",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"},
      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer",
      "minimum": 1, "maximum": 7.5}}, "required": ["city"]}}})"),
          parse_json(R"({"type": "function", "function": {"name": "get_time", "description": "Time \"now\"",
      "parameters": {"type": "object", "properties": {}}}})")};
}

std::vector<Case> cases(bool with_published_qwen2) {
  std::vector<Case> out;
  auto convs = conversations();
  for (std::size_t i = 0; i < convs.size(); ++i) {
    for (bool tools : {false, true}) {
      for (int thinking = 0; thinking < 2; ++thinking) {
        Case c{"qwen3", ChatTemplate::qwen3(), convs[i], {}};
        c.options.enable_thinking = thinking == 1;
        if (tools) c.options.tools = tool_definitions();
        c.options.add_generation_prompt = convs[i].back().role != "assistant";
        out.push_back(c);
      }
      Case c{"qwen2_5", ChatTemplate::qwen2_5(), convs[i], {}};
      if (tools) c.options.tools = tool_definitions();
      c.options.add_generation_prompt = convs[i].back().role != "assistant";
      // Qwen2.5 has no reasoning: history keeps assistant text as written.
      out.push_back(c);
    }
  }
  if (with_published_qwen2) {
    // That template always writes a system turn and opens the assistant turn
    // after each user turn, so it matches ChatML for chats ending with the user.
    for (auto conv : std::vector<std::vector<ChatMessage>>{
             {msg("user", "Hi")},
             {msg("system", "Be brief."), msg("user", "Hi")},
             {msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "How are you?")}}) {
      out.push_back(Case{"qwen2_published", ChatTemplate::qwen2(), conv, {}});
    }
  }
  return out;
}

TEST(ChatParity, RendersAsTransformersApplyChatTemplate) {
  if (auto why = reference_unavailable(); !why.empty()) GTEST_SKIP() << why;
  bool published = fs::exists(qwen2_dir() / "tokenizer_config.json");
  std::vector<Case> all = cases(published);
  JsonArray spec;
  for (const Case& c : all) {
    JsonArray messages;
    for (const auto& m : c.messages) messages.push_back(to_json(m));
    JsonObject o{{"template", c.template_name}, {"messages", std::move(messages)},
                 {"add_generation_prompt", c.options.add_generation_prompt},
                 {"tools", JsonArray(c.options.tools)}};
    if (c.template_name == "qwen3") o.emplace_back("enable_thinking", c.options.enable_thinking);
    spec.push_back(std::move(o));
  }
  TempDir work;
  write_file(work.path() / "cases.json", dump_json(Json(std::move(spec))));
  std::vector<std::string> args = {"chat", "--cases", (work.path() / "cases.json").string(), "--out",
                                   (work.path() / "out.json").string()};
  if (published) {
    args.push_back("--qwen2-dir");
    args.push_back(qwen2_dir().string());
  }
  ASSERT_EQ(run_reference(args, work.path()), "");
  const JsonArray expected = parse_json(read_file(work.path() / "out.json")).as_array();
  ASSERT_EQ(expected.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::string got = render_chat(all[i].tmpl, all[i].messages, all[i].options);
    EXPECT_EQ(got, expected[i].as_string())
        << "case " << i << " (" << all[i].template_name << ", thinking "
        << all[i].options.enable_thinking << ", tools " << all[i].options.tools.size() << ")";
  }
}

}  // namespace
}  // namespace mmgen::text

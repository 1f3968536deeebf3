#include "mmgen/text/chat.hpp"

#include <gtest/gtest.h>

#include <random>

#include "mmgen/protocol.hpp"

namespace mmgen::text {
namespace {

ChatMessage msg(std::string role, std::string content) {
  ChatMessage m;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

TEST(ChatRender, Qwen3GenerationPromptWithThinkingOnAndOff) {
  std::vector<ChatMessage> chat{msg("user", "Hi")};
  ChatOptions on;
  EXPECT_EQ(render_chat(ChatTemplate::qwen3(), chat, on),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  ChatOptions off;
  off.enable_thinking = false;
  EXPECT_EQ(render_chat(ChatTemplate::qwen3(), chat, off),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatRender, Qwen3DropsReasoningOfEarlierTurns) {
  std::vector<ChatMessage> chat{msg("system", "S"), msg("user", "Q1"),
                                msg("assistant", "<think>\nr1\n</think>\n\nA1"), msg("user", "Q2")};
  EXPECT_EQ(render_chat(ChatTemplate::qwen3(), chat, {}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
            "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatRender, Qwen3KeepsReasoningOfTheLastTurn) {
  ChatMessage answer = msg("assistant", "A");
  answer.reasoning_content = "\nR\n";
  std::vector<ChatMessage> chat{msg("user", "Q"), answer};
  ChatOptions opt;
  opt.add_generation_prompt = false;
  EXPECT_EQ(render_chat(ChatTemplate::qwen3(), chat, opt),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\nA<|im_end|>\n");
}

TEST(ChatRender, Qwen3ToolsCallsAndResults) {
  ChatMessage call = msg("assistant", "");
  call.tool_calls.push_back({"get_weather", parse_json(R"({"city": "Paris"})")});
  std::vector<ChatMessage> chat{msg("user", "Weather?"), call, msg("tool", R"({"temp": 21})"),
                                msg("tool", "second")};
  ChatOptions opt;
  opt.tools.push_back(parse_json(
      R"({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}})"));
  EXPECT_EQ(render_chat(ChatTemplate::qwen3(), chat, opt),
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user "
            "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": "
            "\"object\"}}}\n</tools>\n\nFor each function call, return a json object with function name and "
            "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
            "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\nWeather?<|im_end|>\n"
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
            "\"Paris\"}}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response>\n<tool_response>\nsecond\n"
            "</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatRender, Qwen25DefaultSystemAndToolCallArguments) {
  std::vector<ChatMessage> chat{msg("user", "Hi")};
  EXPECT_EQ(render_chat(ChatTemplate::qwen2_5(), chat, {}),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
            "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  ChatMessage call = msg("assistant", "Checking.");
  call.tool_calls.push_back({"f", Json("raw")});
  chat.push_back(call);
  ChatOptions opt;
  opt.add_generation_prompt = false;
  // Qwen2.5 always prints arguments through tojson, so a string is quoted.
  EXPECT_NE(render_chat(ChatTemplate::qwen2_5(), chat, opt)
                .find("<|im_start|>assistant\nChecking.\n<tool_call>\n{\"name\": \"f\", \"arguments\": "
                      "\"raw\"}\n</tool_call><|im_end|>\n"),
            std::string::npos);
}

TEST(ChatRender, BadChatsAreTypedErrors) {
  std::vector<ChatMessage> none;
  EXPECT_THROW(render_chat(ChatTemplate::qwen3(), none, {}), proto::ProtocolError);
  std::vector<ChatMessage> odd{msg("narrator", "x")};
  try {
    render_chat(ChatTemplate::qwen3(), odd, {});
    FAIL();
  } catch (const proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find("narrator"), std::string::npos);
  }
}

TEST(ChatTemplateDetect, RecognisesTheFamilies) {
  ChatTemplate q3 = ChatTemplate::detect(
      "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
      "{%- endif %}<|im_start|>");
  EXPECT_EQ(q3.format, ChatFormat::qwen3);
  EXPECT_FALSE(q3.generation_opens_think);
  ChatTemplate thinking_only =
      ChatTemplate::detect("{{- '<|im_start|>assistant\\n<think>\\n' }} </think>");
  EXPECT_TRUE(thinking_only.generation_opens_think);
  ChatTemplate q2 = ChatTemplate::detect(
      "{% set system_message = 'You are a helpful assistant.' %}{{ '<|im_start|>system\\n' + "
      "system_message + '<|im_end|>\\n' }}");
  EXPECT_EQ(q2.format, ChatFormat::qwen2_5);
  EXPECT_EQ(q2.default_system, "You are a helpful assistant.");
  ChatTemplate math = ChatTemplate::detect(
      "{{- '<|im_start|>system\\nPlease reason step by step.<|im_end|>\\n' }}");
  EXPECT_EQ(math.default_system, "Please reason step by step.");
  EXPECT_THROW(ChatTemplate::detect("[INST] {{ messages }} [/INST]"), proto::ProtocolError);
}

TEST(ChatTemplateDetect, ThinkingOnlyTemplateOpensTheBlock) {
  ChatTemplate t = ChatTemplate::qwen3();
  t.generation_opens_think = true;
  std::vector<ChatMessage> chat{msg("user", "Hi")};
  EXPECT_EQ(render_chat(t, chat, {}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n");
}

// ---- replies ------------------------------------------------------------------------

TEST(ParseReply, SplitsReasoningFromContent) {
  ParsedReply r = parse_reply("<think>\nLet me think.\n\nStep 2.\n</think>\n\nThe answer is 4.");
  EXPECT_EQ(r.reasoning, "Let me think.\n\nStep 2.");
  EXPECT_EQ(r.content, "The answer is 4.");
  EXPECT_TRUE(r.tool_calls.empty());

  r = parse_reply("Just an answer.\n");
  EXPECT_EQ(r.reasoning, "");
  EXPECT_EQ(r.content, "Just an answer.\n");

  r = parse_reply("<think>\nstill thinking when max_tokens hit");
  EXPECT_EQ(r.reasoning, "still thinking when max_tokens hit");
  EXPECT_EQ(r.content, "");

  r = parse_reply("opened by the prompt\n</think>\n\nanswer", /*starts_in_reasoning=*/true);
  EXPECT_EQ(r.reasoning, "opened by the prompt");
  EXPECT_EQ(r.content, "answer");
}

TEST(ParseReply, ExtractsToolCalls) {
  ParsedReply r = parse_reply(
      "<think>\nneed weather\n</think>\n\nLet me check.\n<tool_call>\n{\"name\": \"get_weather\", "
      "\"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n"
      "{\"name\": \"now\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(r.reasoning, "need weather");
  EXPECT_EQ(r.content, "Let me check.");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(dump_json(r.tool_calls[0].arguments), "{\"city\": \"Paris\", \"days\": 2}");
  EXPECT_EQ(r.tool_calls[1].name, "now");
  EXPECT_TRUE(r.tool_call_errors.empty());
}

TEST(ParseReply, BadOrUnfinishedToolCallsStayText) {
  ParsedReply r = parse_reply("<tool_call>\n{not json}\n</tool_call>");
  EXPECT_TRUE(r.tool_calls.empty());
  ASSERT_EQ(r.tool_call_errors.size(), 1u);
  EXPECT_EQ(r.content, "<tool_call>\n{not json}\n</tool_call>");

  r = parse_reply("<tool_call>\n{\"arguments\": {}}\n</tool_call>");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_NE(r.tool_call_errors.at(0).find("name"), std::string::npos);

  r = parse_reply("text <tool_call>\n{\"name\": \"f\"");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_EQ(r.content, "text <tool_call>\n{\"name\": \"f\"");
}

TEST(ReasoningStreamParser, AnyChunkingGivesTheSameSplitAsParseReply) {
  const std::vector<std::pair<std::string, bool>> replies = {
      {"<think>\nLet me think.\n\nStep 2.\n</think>\n\nThe answer is 4.", false},
      {"<think>\n\n</think>\n\nshort", false},
      {"no tags at all\n\n", false},
      {"  <think>x</think>y", false},
      {"<thin", false},
      {"<think>\nunfinished\n\n", false},
      {"prompt opened it\n</think>\n\n\nanswer\n</think> stays", true},
      {"\n\n</think>", true},
  };
  std::mt19937 rng(99);
  for (const auto& [text, opened] : replies) {
    ParsedReply whole = parse_reply(text, opened);
    for (int round = 0; round < 50; ++round) {
      ReasoningStreamParser stream(opened);
      std::string reasoning, content;
      std::size_t pos = 0;
      while (pos < text.size()) {
        std::size_t n = 1 + rng() % 5;
        auto d = stream.push(std::string_view(text).substr(pos, n));
        reasoning += d.reasoning;
        content += d.content;
        pos += n;
      }
      auto d = stream.finish();
      reasoning += d.reasoning;
      content += d.content;
      EXPECT_EQ(reasoning, whole.reasoning) << text;
      EXPECT_EQ(content, whole.content) << text;
    }
  }
}

}  // namespace
}  // namespace mmgen::text

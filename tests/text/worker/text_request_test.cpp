// Job params -> TextRequest: tools and tool calls reach the chat template,
// Qwen3.5's default prompt opens a think block, bad values are invalid_request.
#include <gtest/gtest.h>

#include <string>

#include "mmgen/protocol.hpp"
#include "text_request.hpp"

using namespace mmgen;
using namespace mmgen::text;

namespace {

const Value kWeatherTool = ValueMap{
    {"type", "function"},
    {"function", ValueMap{{"name", "get_weather"},
                          {"description", "Weather in a city"},
                          {"parameters", ValueMap{{"type", "object"}}}}}};

TextRequest parse(ValueMap p, const ChatTemplate& tmpl) {
  return parse_text_request(Params(std::move(p)), tmpl, GenerationDefaults{});
}

TEST(TextRequest, ToolsAreRenderedIntoTheSystemTurn) {
  for (const ChatTemplate& tmpl : {ChatTemplate::qwen3(), ChatTemplate::qwen3_5()}) {
    const auto r = parse(ValueMap{{"prompt", "Weather in Paris?"}, {"tools", ValueArray{kWeatherTool}}}, tmpl);
    EXPECT_NE(r.prompt_text.find("get_weather"), std::string::npos) << r.prompt_text;
    EXPECT_NE(r.prompt_text.find("Weather in a city"), std::string::npos);
    const auto plain = parse(ValueMap{{"prompt", "Weather in Paris?"}}, tmpl);
    EXPECT_EQ(plain.prompt_text.find("get_weather"), std::string::npos);
  }
}

TEST(TextRequest, ToolsAsJsonTextKeepTheirKeyOrder) {
  const std::string tools =
      R"([{"type":"function","function":{"name":"zeta","description":"z first","parameters":{}}}])";
  const auto r = parse(ValueMap{{"prompt", "hi"}, {"tools", tools}}, ChatTemplate::qwen3());
  const auto name = r.prompt_text.find("\"name\"");
  const auto desc = r.prompt_text.find("\"description\"");
  ASSERT_NE(name, std::string::npos) << r.prompt_text;
  EXPECT_LT(name, desc) << "name was given before description";
}

TEST(TextRequest, AssistantToolCallsAndToolResultsAreRendered) {
  const ValueArray messages{
      ValueMap{{"role", "user"}, {"content", "Weather in Paris?"}},
      ValueMap{{"role", "assistant"},
               {"content", ""},
               {"tool_calls", ValueArray{ValueMap{
                                  {"type", "function"},
                                  {"function", ValueMap{{"name", "get_weather"},
                                                        {"arguments", ValueMap{{"city", "Paris"}}}}}}}}},
      ValueMap{{"role", "tool"}, {"content", "sunny, 21 C"}},
  };
  const auto r = parse(ValueMap{{"messages", messages}, {"tools", ValueArray{kWeatherTool}}},
                       ChatTemplate::qwen3_5());
  EXPECT_NE(r.prompt_text.find("<function=get_weather>"), std::string::npos) << r.prompt_text;
  EXPECT_NE(r.prompt_text.find("Paris"), std::string::npos);
  EXPECT_NE(r.prompt_text.find("sunny, 21 C"), std::string::npos);
}

TEST(TextRequest, Qwen3_5StartsInReasoningUnlessThinkingIsOff) {
  EXPECT_TRUE(parse(ValueMap{{"prompt", "hi"}}, ChatTemplate::qwen3_5()).starts_in_reasoning);
  EXPECT_FALSE(parse(ValueMap{{"prompt", "hi"}, {"think", false}}, ChatTemplate::qwen3_5()).starts_in_reasoning);
  EXPECT_FALSE(parse(ValueMap{{"prompt", "hi"}}, ChatTemplate::qwen2_5()).starts_in_reasoning);
}

TEST(TextRequest, BadToolsAreInvalidRequest) {
  for (const Value& tools : {Value("not json ["), Value(std::int64_t{3}), Value(ValueArray{ValueMap{{"x", 1}}})}) {
    try {
      const ValueArray messages{
          ValueMap{{"role", "user"}, {"content", "hi"}},
          ValueMap{{"role", "assistant"}, {"content", ""}, {"tool_calls", tools}},
      };
      parse(ValueMap{{"messages", messages}}, ChatTemplate::qwen3_5());
      ADD_FAILURE() << "accepted tool_calls " << tools.to_json();
    } catch (const proto::ProtocolError& e) {
      EXPECT_EQ(e.code(), proto::ErrorCode::invalid_request) << e.what();
    }
  }
  EXPECT_THROW(parse(ValueMap{{"prompt", "hi"}, {"tools", "{"}}, ChatTemplate::qwen3()), proto::ProtocolError);
}

}  // namespace

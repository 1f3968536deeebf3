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

// ---- image input ----------------------------------------------------------------------

TextRequest parse_images(ValueMap p, std::size_t images) {
  return parse_text_request(Params(std::move(p)), ChatTemplate::qwen3_5(), GenerationDefaults{}, images);
}

ValueMap image_part() { return ValueMap{{"type", "image"}}; }
ValueMap text_part(const std::string& t) { return ValueMap{{"type", "text"}, {"text", t}}; }

TEST(TextRequest, ImagePartsRenderAsTheQwen3_5Template) {
  // Expected: transformers' apply_chat_template on the Qwen3.5 template
  // (tests/fixtures/text/qwen3_5_tokenizer/chat_template.jinja) with these
  // content lists, enable_thinking=False, add_generation_prompt=True.
  ValueArray msgs;
  msgs.push_back(ValueMap{{"role", "system"}, {"content", "Be brief."}});
  msgs.push_back(ValueMap{{"role", "user"},
                          {"content", ValueArray{text_part("Compare "), image_part(), text_part(" and "),
                                                 image_part()}}});
  msgs.push_back(ValueMap{{"role", "assistant"}, {"content", "Two cats."}});
  msgs.push_back(ValueMap{{"role", "user"}, {"content", ValueArray{image_part(), text_part("And this?")}}});
  const auto r = parse_images(ValueMap{{"messages", msgs}, {"think", false}}, 3);
  EXPECT_EQ(r.prompt_text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCompare "
            "<|vision_start|><|image_pad|><|vision_end|> and <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n"
            "<|im_start|>assistant\nTwo cats.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|>And this?<|im_end|>\n<|im_start|>assistant\n<think>\n\n"
            "</think>\n\n");
}

TEST(TextRequest, PromptWithImagesPutsTheImagesFirst) {
  const auto r = parse_images(ValueMap{{"prompt", "What is this?"}, {"think", false}}, 2);
  EXPECT_NE(r.prompt_text.find("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
                               "<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>"),
            std::string::npos)
      << r.prompt_text;
  // Without images nothing changes.
  EXPECT_EQ(parse_images(ValueMap{{"prompt", "hi"}}, 0).prompt_text.find("vision"), std::string::npos);
}

TEST(TextRequest, ImageCountsAndPartsAreChecked) {
  ValueArray two_images;
  two_images.push_back(ValueMap{{"role", "user"}, {"content", ValueArray{image_part(), image_part()}}});
  try {
    parse_images(ValueMap{{"messages", two_images}}, 1);
    FAIL() << "expected invalid_request";
  } catch (const proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), proto::ErrorCode::invalid_request);
    EXPECT_NE(std::string(e.what()).find("2 image parts but the job has 1 image inputs"), std::string::npos)
        << e.what();
  }
  ValueArray system_image;
  system_image.push_back(ValueMap{{"role", "system"}, {"content", ValueArray{image_part()}}});
  system_image.push_back(ValueMap{{"role", "user"}, {"content", "hi"}});
  EXPECT_THROW(parse_images(ValueMap{{"messages", system_image}}, 1), proto::ProtocolError);
  ValueArray bad_type;
  bad_type.push_back(ValueMap{{"role", "user"}, {"content", ValueArray{ValueMap{{"type", "video"}}}}});
  EXPECT_THROW(parse_images(ValueMap{{"messages", bad_type}}, 0), proto::ProtocolError);
  ValueArray no_text;
  no_text.push_back(ValueMap{{"role", "user"}, {"content", ValueArray{ValueMap{{"type", "text"}}}}});
  EXPECT_THROW(parse_images(ValueMap{{"messages", no_text}}, 0), proto::ProtocolError);
  // Image blobs with a text-only message list: they open the last user message.
  ValueArray plain;
  plain.push_back(ValueMap{{"role", "user"}, {"content", "Describe."}});
  const auto r = parse_images(ValueMap{{"messages", plain}, {"think", false}}, 1);
  EXPECT_NE(r.prompt_text.find("user\n<|vision_start|><|image_pad|><|vision_end|>Describe."), std::string::npos)
      << r.prompt_text;
}

// From a parsed command to the SUBMIT message: input blobs, chat files, envelope fields.
#include <gtest/gtest.h>

#include "cli/submit.hpp"
#include "fake_broker.hpp"

namespace mmgen::cli {
namespace {

using testing::TempDir;

Command parse(const std::vector<std::string>& args) {
  return parse_args(args, [](std::string_view) -> std::optional<std::string> { return std::nullopt; });
}

TEST(Submit, InputsBecomeBlobsWithGuessedMime) {
  TempDir dir;
  testing::write_all(dir.file("a.png"), "PNGDATA");
  testing::write_all(dir.file("b.JPG"), "JPEG");
  testing::write_all(dir.file("m.raw"), "");
  auto plan = build_submit(parse({"edit", dir.file("a.png"), dir.file("b.JPG"), "night", "--mask",
                                  dir.file("m.raw"), "--priority", "7", "--timeout", "1.5", "--key", "abc",
                                  "--model", "qwen-image-edit"}));
  const auto& s = plan.submit;
  EXPECT_EQ(s.service, "image");
  EXPECT_EQ(s.model, "qwen-image-edit");
  EXPECT_EQ(s.priority, 7);
  EXPECT_EQ(s.timeout_ms, 1500u);
  EXPECT_EQ(s.key, "abc");
  EXPECT_EQ(s.params.at("prompt"), Value("night"));
  const std::vector<proto::BlobMeta> want{{"image", "image/png", 7}, {"image", "image/jpeg", 4},
                                          {"mask", "application/octet-stream", 0}};
  EXPECT_EQ(s.inputs, want);
  ASSERT_EQ(plan.inputs.size(), 3u);
  EXPECT_EQ(testing::bytes_of(plan.inputs[0]), "PNGDATA");
  EXPECT_EQ(testing::bytes_of(plan.inputs[1]), "JPEG");
}

TEST(Submit, MissingInputIsAUsageError) {
  TempDir dir;
  EXPECT_THROW(build_submit(parse({"image", "x", "--init", dir.file("nope.png")})), UsageError);
  EXPECT_THROW(build_submit(parse({"image", "x", "--init", dir.path().string()})), UsageError);
  EXPECT_THROW(build_submit(parse({"image", "x", "-o", dir.file("no/such/dir/out.png")})), UsageError);
  EXPECT_NO_THROW(build_submit(parse({"image", "x", "-o", dir.file("out.png")})));
}

TEST(Submit, ChatFileBecomesMessages) {
  TempDir dir;
  testing::write_all(dir.file("c.json"),
                     R"([{"role":"system","content":"terse"},{"role":"user","content":"hi"}])");
  testing::write_all(dir.file("o.json"), R"({"messages":[{"role":"user","content":"hey"}]})");
  auto a = build_submit(parse({"text", "--chat", dir.file("c.json")})).submit;
  const auto& msgs = a.params.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].as_map().at("content"), Value("hi"));
  EXPECT_EQ(a.service, "text");
  auto b = build_submit(parse({"text", "--messages", dir.file("o.json"), "and more"})).submit;
  EXPECT_EQ(b.params.at("messages").as_array().size(), 1u);
  EXPECT_EQ(b.params.at("prompt"), Value("and more"));

  for (const char* bad : {"[1,2]", "{\"x\":1}", "[]", "[{\"content\":\"no role\"}]", "[{\"role\":\"user\"}]",
                          "not json"}) {
    testing::write_all(dir.file("bad.json"), bad);
    EXPECT_THROW(build_submit(parse({"text", "--chat", dir.file("bad.json")})), UsageError) << bad;
  }
}

TEST(Submit, ToolsFileIsSentAsItsJsonText) {
  TempDir dir;
  const std::string tools = R"([{"type":"function","function":{"name":"zeta","description":"d"}}])";
  testing::write_all(dir.file("t.json"), tools);
  auto s = build_submit(parse({"text", "weather?", "--tools", dir.file("t.json")})).submit;
  EXPECT_EQ(s.params.at("tools"), Value(tools)) << "the text itself, so the worker keeps the key order";
  for (const char* bad : {"{\"not\":\"an array\"}", "not json"}) {
    testing::write_all(dir.file("bad.json"), bad);
    EXPECT_THROW(build_submit(parse({"text", "x", "--tools", dir.file("bad.json")})), UsageError) << bad;
  }
  EXPECT_THROW(build_submit(parse({"text", "x", "--tools", dir.file("missing.json")})), UsageError);
}

TEST(Submit, DefaultsWithoutEnvelopeFlags) {
  auto s = build_submit(parse({"echo", "hi"})).submit;
  EXPECT_EQ(s.service, "echo");
  EXPECT_EQ(s.priority, proto::kDefaultPriority);
  EXPECT_EQ(s.timeout_ms, 0u);
  EXPECT_TRUE(s.key.empty());
  EXPECT_TRUE(s.inputs.empty());
}

}  // namespace
}  // namespace mmgen::cli

// Command-line parsing: verbs, flag -> param mapping, global flags anywhere,
// and every kind of bad input becoming a UsageError.
#include <gtest/gtest.h>

#include "cli/args.hpp"
#include "fake_broker.hpp"

namespace mmgen::cli {
namespace {

using testing::kJob;

GetEnv no_env() {
  return [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
}

Command parse(const std::vector<std::string>& args, GetEnv env = no_env()) { return parse_args(args, env); }

TEST(Args, TextFlagsMapToParams) {
  auto c = parse({"text", "Hello there", "--system", "be brief", "--max-tokens", "32", "--temperature", "0.7",
                  "--top-k", "20", "--top-p", "0.95", "--min-p", "0.05", "--seed", "-3", "--stop", "END",
                  "--stop=STOP", "--no-think", "--model", "qwen3-0.6b"});
  ASSERT_EQ(c.verb, Verb::text);
  EXPECT_EQ(service_of(*c.verb), "text");
  EXPECT_EQ(c.params.at("prompt"), Value("Hello there"));
  EXPECT_EQ(c.params.at("system"), Value("be brief"));
  EXPECT_EQ(c.params.at("max_tokens"), Value(32));
  EXPECT_EQ(c.params.at("temperature"), Value(0.7));
  EXPECT_EQ(c.params.at("top_k"), Value(20));
  EXPECT_EQ(c.params.at("top_p"), Value(0.95));
  EXPECT_EQ(c.params.at("min_p"), Value(0.05));
  EXPECT_EQ(c.params.at("seed"), Value(-3));
  EXPECT_EQ(c.params.at("stop"), Value(ValueArray{Value("END"), Value("STOP")}));
  EXPECT_EQ(c.params.at("think"), Value(false));
  EXPECT_EQ(c.model, "qwen3-0.6b");
  EXPECT_FALSE(c.params.contains("model"));
}

TEST(Args, ThinkAndChat) {
  auto c = parse({"text", "--think", "--chat", "conv.json"});
  EXPECT_EQ(c.params.at("think"), Value(true));
  EXPECT_EQ(c.chat_file, "conv.json");
  EXPECT_FALSE(c.params.contains("prompt"));
  EXPECT_EQ(parse({"text", "--messages", "m.json"}).chat_file, "m.json");
  EXPECT_THROW(parse({"text"}), UsageError);  // neither PROMPT nor --chat
}

TEST(Args, TextImagesAreRepeatableInputBlobs) {
  auto c = parse({"text", "what is in these?", "--image", "a.png", "--image", "b.jpg", "--max-tokens", "8"});
  const std::vector<InputFile> want{{"image", "a.png"}, {"image", "b.jpg"}};  // both kept, in order
  EXPECT_EQ(c.inputs, want);
  EXPECT_EQ(c.params.at("prompt"), Value("what is in these?"));
  EXPECT_TRUE(parse({"text", "p"}).inputs.empty());
  EXPECT_THROW(parse({"text", "p", "--image", ""}), UsageError);
}

TEST(Args, ImageFlags) {
  auto c = parse({"image", "a red fox", "-o", "fox.png", "--width", "512", "--height", "768", "--steps", "20",
                  "--cfg", "4", "--negative", "blurry", "--seed", "7", "--init", "in.jpg", "--strength", "0.6",
                  "--mask", "m.png", "--count", "2", "--previews", "prev", "--preview-every", "5"});
  EXPECT_EQ(service_of(*c.verb), "image");
  EXPECT_EQ(c.params.at("prompt"), Value("a red fox"));
  EXPECT_EQ(c.params.at("width"), Value(512));
  EXPECT_EQ(c.params.at("height"), Value(768));
  EXPECT_EQ(c.params.at("steps"), Value(20));
  EXPECT_EQ(c.params.at("cfg"), Value(4.0));
  EXPECT_EQ(c.params.at("negative_prompt"), Value("blurry"));
  EXPECT_EQ(c.params.at("seed"), Value(7));
  EXPECT_EQ(c.params.at("strength"), Value(0.6));
  EXPECT_EQ(c.params.at("count"), Value(2));
  EXPECT_EQ(c.params.at("preview_every"), Value(5));
  EXPECT_EQ(c.params.at("previews"), Value(true));
  EXPECT_EQ(c.output, "fox.png");
  EXPECT_EQ(c.previews_dir, "prev");
  const std::vector<InputFile> want{{"init", "in.jpg"}, {"mask", "m.png"}};
  EXPECT_EQ(c.inputs, want);
}

TEST(Args, EditTakesOneToThreeImagesThenPrompt) {
  auto c = parse({"edit", "a.png", "b.webp", "make it night", "--mask", "m.png", "-o", "out.png"});
  EXPECT_EQ(service_of(*c.verb), "image");
  EXPECT_EQ(c.params.at("prompt"), Value("make it night"));
  const std::vector<InputFile> want{{"image", "a.png"}, {"image", "b.webp"}, {"mask", "m.png"}};
  EXPECT_EQ(c.inputs, want);
  EXPECT_EQ(parse({"edit", "a.png", "b.png", "c.png", "p"}).inputs.size(), 3u);
  EXPECT_THROW(parse({"edit", "only-prompt"}), UsageError);
  EXPECT_THROW(parse({"edit", "a.png", "b.png", "c.png", "d.png", "p"}), UsageError);
}

TEST(Args, VideoFlags) {
  auto c = parse({"video", "waves", "-o", "v.mp4", "--image", "first.png", "--frames", "81", "--width", "832",
                  "--height", "480", "--steps", "40", "--cfg", "3", "--cfg2", "4", "--fps", "16", "--seed", "1",
                  "--negative", "static", "--model", "wan2.2-ti2v-5b", "--previews", "pv", "--save-frames", "fr"});
  EXPECT_EQ(service_of(*c.verb), "video");
  EXPECT_EQ(c.params.at("frames"), Value(81));
  EXPECT_EQ(c.params.at("cfg2"), Value(4.0));
  EXPECT_EQ(c.params.at("fps"), Value(16));
  EXPECT_EQ(c.params.at("negative_prompt"), Value("static"));
  EXPECT_EQ(c.params.at("save_frames"), Value(true));
  EXPECT_EQ(c.frames_dir, "fr");
  EXPECT_EQ(c.model, "wan2.2-ti2v-5b");
  const std::vector<InputFile> want{{"image", "first.png"}};
  EXPECT_EQ(c.inputs, want);
}

TEST(Args, EchoParams) {
  auto c = parse({"echo", "hello", "world", "--sleep-ms", "300", "--fail", "--partials", "3"});
  EXPECT_EQ(service_of(*c.verb), "echo");
  EXPECT_EQ(c.params.at("text"), Value("hello world"));
  EXPECT_EQ(c.params.at("sleep_ms"), Value(300));
  EXPECT_EQ(c.params.at("fail"), Value(true));
  EXPECT_EQ(c.params.at("partials"), Value(3));
  EXPECT_THROW(parse({"echo"}), UsageError);
  EXPECT_THROW(parse({"echo", "x", "--sleep-ms", "-1"}), UsageError);
}

TEST(Args, GlobalFlagsAnywhere) {
  auto before = parse({"--json", "--broker", "tcp://10.0.0.1:7000", "--priority", "9", "--timeout", "2.5", "--key",
                       "k1", "--detach", "--cancel-on-interrupt", "echo", "hi"});
  auto after = parse({"echo", "hi", "--json", "--broker=tcp://10.0.0.1:7000", "--priority=9", "--timeout", "2.5",
                      "--key", "k1", "--detach", "--cancel-on-interrupt"});
  for (const auto* c : {&before, &after}) {
    EXPECT_TRUE(c->json);
    EXPECT_TRUE(c->detach);
    EXPECT_TRUE(c->cancel_on_interrupt);
    EXPECT_EQ(c->broker, "tcp://10.0.0.1:7000");
    EXPECT_EQ(c->priority, 9);
    ASSERT_TRUE(c->timeout_s);
    EXPECT_DOUBLE_EQ(*c->timeout_s, 2.5);
    EXPECT_EQ(c->key, "k1");
    EXPECT_EQ(c->params.at("text"), Value("hi"));
  }
}

TEST(Args, BrokerFromEnvironmentAndDefault) {
  EXPECT_EQ(parse({"workers"}).broker, "tcp://127.0.0.1:5555");
  GetEnv env = [](std::string_view k) -> std::optional<std::string> {
    if (k == "MMGEN_BROKER") return std::string("tcp://broker:6000");
    return std::nullopt;
  };
  EXPECT_EQ(parse({"workers"}, env).broker, "tcp://broker:6000");
  EXPECT_EQ(parse({"workers", "--broker", "ipc:///tmp/b"}, env).broker, "ipc:///tmp/b");
  EXPECT_THROW(parse({"workers", "--broker", "localhost:5555"}), UsageError);
}

TEST(Args, JobVerbs) {
  for (const char* verb : {"status", "wait", "fetch", "cancel"}) {
    auto c = parse({verb, kJob});
    EXPECT_EQ(c.job, kJob) << verb;
    EXPECT_THROW(parse({verb}), UsageError) << verb;
    EXPECT_THROW(parse({verb, "not-an-id"}), UsageError) << verb;
    EXPECT_THROW(parse({verb, kJob, kJob}), UsageError) << verb;
  }
  EXPECT_EQ(parse({"fetch", kJob, "-o", "x.png"}).output, "x.png");
  auto jobs = parse({"jobs", "--service", "image", "--limit", "5"});
  EXPECT_EQ(jobs.list_service, "image");
  EXPECT_EQ(jobs.list_limit, 5u);
  EXPECT_EQ(parse({"jobs"}).list_limit, 50u);
  EXPECT_THROW(parse({"jobs", "--limit", "0"}), UsageError);
  EXPECT_THROW(parse({"workers", "extra"}), UsageError);
}

TEST(Args, BadInputIsAUsageError) {
  EXPECT_THROW(parse({}), UsageError);                                   // no verb
  EXPECT_THROW(parse({"paint", "x"}), UsageError);                       // unknown verb
  EXPECT_THROW(parse({"image", "x", "--bogus"}), UsageError);            // unknown flag
  EXPECT_THROW(parse({"image", "x", "--max-tokens", "3"}), UsageError);  // another verb's flag
  EXPECT_THROW(parse({"image", "x", "--steps"}), UsageError);            // missing value
  EXPECT_THROW(parse({"image", "x", "--steps", "many"}), UsageError);    // not an integer
  EXPECT_THROW(parse({"image", "x", "--steps", "0"}), UsageError);       // below range
  EXPECT_THROW(parse({"image", "x", "--cfg", "nan"}), UsageError);       // not finite
  EXPECT_THROW(parse({"image", "x", "--json=yes"}), UsageError);         // value on a switch
  EXPECT_THROW(parse({"image"}), UsageError);                            // missing PROMPT
  EXPECT_THROW(parse({"image", "a", "b"}), UsageError);                  // two prompts
  EXPECT_THROW(parse({"echo", "x", "--priority", "10"}), UsageError);
  EXPECT_THROW(parse({"echo", "x", "--timeout", "0"}), UsageError);
  EXPECT_THROW(parse({"echo", "x", "--key", ""}), UsageError);
  try {
    parse({"--max-tokens", "5", "text", "hi"});
    FAIL() << "a verb flag before the verb was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("after the verb"), std::string::npos) << e.what();
  }
}

TEST(Args, DoubleDashAndNegativeValues) {
  auto c = parse({"text", "--temperature", "-0.5", "--", "--not-a-flag"});
  EXPECT_EQ(c.params.at("prompt"), Value("--not-a-flag"));
  EXPECT_EQ(c.params.at("temperature"), Value(-0.5));
  EXPECT_EQ(parse({"echo", "-5"}).params.at("text"), Value("-5"));
}

TEST(Args, HelpAndVersion) {
  EXPECT_TRUE(parse({"--help"}).help);
  EXPECT_FALSE(parse({"--help"}).verb);
  auto h = parse({"image", "-h"});
  EXPECT_TRUE(h.help);
  EXPECT_EQ(h.verb, Verb::image);
  EXPECT_TRUE(parse({"--version"}).version);
}

}  // namespace
}  // namespace mmgen::cli

// The Qwen3.5 tokenizer and chat template against references recorded from
// Hugging Face by scripts/fixtures/make_qwen3_5_tokenizer_fixtures.py in
// tests/fixtures/text/qwen3_5_tokenizer (no Python at test time): ids on every
// corpus line and file, the special tokens at their real ids, and
// apply_chat_template renderings of the published Qwen3.5 template.
#include <gtest/gtest.h>

#include <map>

#include "mmgen/protocol.hpp"
#include "mmgen/text/chat.hpp"
#include "mmgen/text/tokenizer.hpp"
#include "mmgen/text/unicode.hpp"
#include "test_support.hpp"

namespace mmgen::text {
namespace {

using namespace testing;

const fs::path kFixture = MMGEN_QWEN35_TOKENIZER_FIXTURE_DIR;

std::string show_ids(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::vector<TokenId> ids_of(const Json& row) {
  std::vector<TokenId> ids;
  for (const Json& v : row.find("ids")->as_array()) ids.push_back(static_cast<TokenId>(v.as_int()));
  return ids;
}

bool has_mark(std::string_view text) {
  // Combining marks live in these blocks for the scripts of the corpus; a
  // rough count for the report only.
  std::size_t i = 0;
  while (i < text.size()) {
    auto b = static_cast<unsigned char>(text[i]);
    std::size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (std::size_t k = 1; k < len && i + k < text.size(); ++k)
      c = (c << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    i += len;
    if ((c >= 0x300 && c <= 0x36F) || (c >= 0x591 && c <= 0x5C7) || (c >= 0x610 && c <= 0x61A) ||
        (c >= 0x64B && c <= 0x65F) || (c >= 0x900 && c <= 0xDFF && c != 0x964 && c != 0x965) ||
        (c >= 0xE31 && c <= 0xE4E) || (c >= 0x1AB0 && c <= 0x1AFF) || (c >= 0x20D0 && c <= 0x20FF) ||
        (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xE0100 && c <= 0xE01EF))
      return true;
  }
  return false;
}

class Qwen35Fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kFixture / "tokenizer.json"))
      FAIL() << "no fixture at " << kFixture
             << " (run scripts/fixtures/make_qwen3_5_tokenizer_fixtures.py)";
  }
};

TEST_F(Qwen35Fixture, CorpusIdsMatchTheReference) {
  Tokenizer tok = Tokenizer::from_directory(kFixture);
  // The same tokenizer with Qwen2's split pattern: the corpus must contain
  // text where the two patterns disagree, or the test proves nothing.
  std::string json = read_file(kFixture / "tokenizer.json");
  const std::string qwen35 = R"([\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+)";
  const std::string qwen2 = R"(\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+)";
  auto at = json.find(qwen35);
  ASSERT_NE(at, std::string::npos) << "the Qwen3.5 split pattern is not in the fixture";
  json.replace(at, qwen35.size(), qwen2);
  Tokenizer qwen2_split = Tokenizer::from_json(json);

  std::vector<Json> rows = read_jsonl(kFixture / "reference_ids.jsonl");
  std::size_t lines = 0, bad = 0, tokens = 0, mark_lines = 0, split_matters = 0;
  std::map<std::string, std::vector<std::string>> corpus;
  for (const fs::path& f : corpus_files()) {
    std::string text = read_file(f);
    auto split = split_lines(text);
    split.push_back(text);  // line -1: the whole file
    corpus[f.filename().string()] = std::move(split);
  }
  std::map<std::string, std::size_t> rows_per_file;
  for (const Json& row : rows) {
    const std::string file = row.find("file")->as_string();
    const std::int64_t line = row.find("line")->as_int();
    const std::string& text = row.find("text")->as_string();
    ++rows_per_file[file];
    // The corpus must be the one the references were recorded on.
    auto it = corpus.find(file);
    ASSERT_NE(it, corpus.end()) << file << " is gone from the corpus: regenerate the fixture";
    const std::string& now = line < 0 ? it->second.back() : it->second.at(std::size_t(line));
    ASSERT_EQ(now, text) << file << ":" << line << " changed: regenerate the fixture";
    if (line >= 0) ++lines;
    if (line >= 0 && has_mark(text)) ++mark_lines;

    std::vector<TokenId> want = ids_of(row), got = tok.encode(text);
    tokens += want.size();
    bool same = got == want && tok.decode(got) == nfc(text);
    if (!same && bad < 5)
      ADD_FAILURE() << file << ":" << line << " differs: " << json_quote(text)
                    << "\n  reference: " << show_ids(want) << "\n  mmgen:     " << show_ids(got);
    bad += !same;
    if (line >= 0) split_matters += qwen2_split.encode(text) != want;
  }
  for (const auto& [file, lines_of_file] : corpus)
    EXPECT_EQ(rows_per_file[file], lines_of_file.size()) << file << ": regenerate the fixture";
  EXPECT_GE(lines, 2000u);
  EXPECT_EQ(bad, 0u) << bad << " of " << rows.size() << " cases differ";
  // Lines where Qwen3.5's pattern (letters with \p{M}) splits differently.
  EXPECT_GT(split_matters, 50u);
  std::printf("[ qwen3.5 ] %zu corpus lines (%zu with combining marks) + %zu files, %zu reference "
              "tokens, %zu differ; %zu lines tokenize differently with Qwen2's split pattern\n",
              lines, mark_lines, corpus.size(), tokens, bad, split_matters);
}

TEST_F(Qwen35Fixture, SpecialTokensAtTheirRealIds) {
  Tokenizer tok = Tokenizer::from_directory(kFixture);
  const std::vector<std::pair<std::string, TokenId>> expected = {
      {"<|endoftext|>", 248044}, {"<|im_start|>", 248045},   {"<|im_end|>", 248046},
      {"<|vision_start|>", 248053}, {"<|vision_end|>", 248054}, {"<|vision_pad|>", 248055},
      {"<|image_pad|>", 248056},  {"<|video_pad|>", 248057},  {"<tool_call>", 248058},
      {"</tool_call>", 248059},   {"<tool_response>", 248066}, {"</tool_response>", 248067},
      {"<think>", 248068},        {"</think>", 248069}};
  for (const auto& [content, id] : expected) {
    EXPECT_EQ(tok.token_to_id(content), id) << content;
    EXPECT_EQ(tok.encode(content), std::vector<TokenId>{id}) << content;
    EXPECT_EQ(tok.id_to_token(id), content);
  }
  EXPECT_TRUE(tok.is_special(248045));
  EXPECT_FALSE(tok.is_special(248068));  // <think> stays in decoded text
  EXPECT_EQ(tok.vocab_size(), 248070u);
  EXPECT_EQ(tok.decode(tok.encode("<|im_start|>user\nhi<|im_end|>"), true), "user\nhi");
}

ToolCall tool_call_from(const Json& j) {
  const Json* f = j.find("function") ? j.find("function") : &j;
  const Json* args = f->find("arguments");
  return ToolCall{f->find("name")->as_string(), args ? *args : Json(JsonObject{})};
}

ChatMessage message_from(const Json& j) {
  ChatMessage m;
  m.role = j.find("role")->as_string();
  if (const Json* c = j.find("content"); c && c->is_string()) m.content = c->as_string();
  if (const Json* r = j.find("reasoning_content"); r && r->is_string()) m.reasoning_content = r->as_string();
  if (const Json* calls = j.find("tool_calls"))
    for (const Json& c : calls->as_array()) m.tool_calls.push_back(tool_call_from(c));
  return m;
}

TEST_F(Qwen35Fixture, ChatRendersAsTransformersApplyChatTemplate) {
  ChatTemplate tmpl = ChatTemplate::from_model_dir(kFixture);
  ASSERT_EQ(tmpl.format, ChatFormat::qwen3_5);
  Tokenizer tok = Tokenizer::from_directory(kFixture);
  const JsonArray cases = parse_json(read_file(kFixture / "chat_reference.json")).as_array();
  ASSERT_GE(cases.size(), 20u);
  std::size_t rendered = 0, refused = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Json& c = cases[i];
    std::vector<ChatMessage> messages;
    for (const Json& m : c.find("messages")->as_array()) messages.push_back(message_from(m));
    ChatOptions opt;
    opt.add_generation_prompt = c.find("add_generation_prompt")->as_bool();
    if (const Json* t = c.find("enable_thinking")) opt.enable_thinking = t->as_bool();
    opt.tools = c.find("tools")->as_array();
    if (const Json* err = c.find("error")) {
      EXPECT_THROW(render_chat(tmpl, messages, opt), proto::ProtocolError)
          << "case " << i << ": the reference refuses it (" << err->as_string() << ")";
      ++refused;
      continue;
    }
    std::string got = render_chat(tmpl, messages, opt);
    EXPECT_EQ(got, c.find("rendered")->as_string()) << "case " << i;
    EXPECT_EQ(tok.encode(got), ids_of(c)) << "case " << i;
    ++rendered;
  }
  std::printf("[ qwen3.5 chat ] %zu renderings compared, %zu refusals checked\n", rendered, refused);
}

TEST(Qwen35Chat, DetectsThePublishedTemplateAndItsThinkingDefault) {
  ChatTemplate tmpl = ChatTemplate::detect(read_file(kFixture / "chat_template.jinja"));
  EXPECT_EQ(tmpl.format, ChatFormat::qwen3_5);
  ChatOptions opt;
  EXPECT_TRUE(generation_starts_in_reasoning(tmpl, opt));  // thinking is on by default
  std::vector<ChatMessage> chat = {{"user", "hi", std::nullopt, {}}};
  EXPECT_TRUE(render_chat(tmpl, chat, opt).ends_with("<|im_start|>assistant\n<think>\n"));
  opt.enable_thinking = false;
  EXPECT_FALSE(generation_starts_in_reasoning(tmpl, opt));
  EXPECT_TRUE(render_chat(tmpl, chat, opt).ends_with("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  opt.add_generation_prompt = false;
  opt.enable_thinking = true;
  EXPECT_FALSE(generation_starts_in_reasoning(tmpl, opt));
  // Qwen3's own template is still told apart.
  EXPECT_EQ(ChatTemplate::detect("<|im_start|>{% if enable_thinking %}<think>{% endif %}").format,
            ChatFormat::qwen3);
}

TEST(Qwen35Chat, ToolCallArguments) {
  ChatTemplate tmpl = ChatTemplate::qwen3_5();
  ChatMessage user{"user", "go", std::nullopt, {}};
  ChatMessage as_object{"assistant", "", std::nullopt,
                        {{"f", parse_json(R"({"a": "x", "b": [1, 2], "c": 2.5, "d": true, "e": null})")}}};
  ChatMessage as_string = as_object;
  as_string.tool_calls[0].arguments = Json(std::string(R"({"a": "x", "b": [1, 2], "c": 2.5, "d": true, "e": null})"));
  ChatOptions opt;
  opt.add_generation_prompt = false;
  std::vector<ChatMessage> a = {user, as_object}, b = {user, as_string};
  const std::string rendered = render_chat(tmpl, a, opt);
  EXPECT_NE(rendered.find("<tool_call>\n<function=f>\n<parameter=a>\nx\n</parameter>\n<parameter=b>\n"
                          "[1, 2]\n</parameter>\n<parameter=c>\n2.5\n</parameter>\n<parameter=d>\n"
                          "True\n</parameter>\n<parameter=e>\nNone\n</parameter>\n</function>\n</tool_call>"),
            std::string::npos)
      << rendered;
  // OpenAI-style string arguments holding an object render as that object.
  EXPECT_EQ(render_chat(tmpl, b, opt), rendered);
  b[1].tool_calls[0].arguments = Json(std::string("not json"));
  EXPECT_THROW(render_chat(tmpl, b, opt), proto::ProtocolError);
  b[1].tool_calls[0].arguments = parse_json("[1]");
  EXPECT_THROW(render_chat(tmpl, b, opt), proto::ProtocolError);
}

TEST(Qwen35Chat, ParsesXmlToolCallsFromReplies) {
  const std::string reply =
      "Let me look.\n</think>\n\nChecking.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\n"
      "Paris\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=opts>\n{\"unit\": \"c\"}\n"
      "</parameter>\n<parameter=note>\ntwo\nlines\n</parameter>\n</function>\n</tool_call>\n"
      "<tool_call>\n<function=get_time>\n</function>\n</tool_call>";
  ParsedReply p = parse_reply(reply, /*starts_in_reasoning=*/true);
  EXPECT_EQ(p.reasoning, "Let me look.");
  EXPECT_EQ(p.content, "Checking.");
  ASSERT_EQ(p.tool_calls.size(), 2u);
  EXPECT_EQ(p.tool_calls[0].name, "get_weather");
  EXPECT_EQ(dump_json(p.tool_calls[0].arguments),
            R"({"city": "Paris", "days": 3, "opts": {"unit": "c"}, "note": "two\nlines"})");
  EXPECT_EQ(p.tool_calls[1].name, "get_time");
  EXPECT_EQ(dump_json(p.tool_calls[1].arguments), "{}");
  EXPECT_TRUE(p.tool_call_errors.empty());

  // What the renderer writes for a call reads back as the same call.
  ChatMessage call{"assistant", "", std::nullopt, {p.tool_calls[0]}};
  ChatOptions opt;
  opt.add_generation_prompt = false;
  std::vector<ChatMessage> chat = {{"user", "q", std::nullopt, {}}, call};
  std::string prompt = render_chat(ChatTemplate::qwen3_5(), chat, opt);
  auto open = prompt.find("<tool_call>");
  ParsedReply back = parse_reply(prompt.substr(open, prompt.find("<|im_end|>", open) - open));
  ASSERT_EQ(back.tool_calls.size(), 1u);
  EXPECT_EQ(back.tool_calls[0], p.tool_calls[0]);

  // A broken block stays in the content and is reported.
  ParsedReply broken = parse_reply("<tool_call>\n<function=f>\n<parameter=x>\n1\n</function>\n</tool_call>");
  EXPECT_TRUE(broken.tool_calls.empty());
  ASSERT_EQ(broken.tool_call_errors.size(), 1u);
  EXPECT_NE(broken.content.find("<function=f>"), std::string::npos);
}

}  // namespace
}  // namespace mmgen::text

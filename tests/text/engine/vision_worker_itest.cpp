// mmgen-text serving image+text prompts through a real broker (integration):
// the worker loads the Qwen3.5 vision tower of tests/fixtures/text/qwen3_5_vision,
// decodes the job's "image" blobs (PNG), runs the processor and the tower,
// splices the image embeddings and M-RoPE positions into the prompt and the
// engine continues it: the greedy tokens must be transformers' (the fixture's
// `greedy`). Bad images and image-part / blob count mismatches are
// invalid_request errors naming the problem.
//
// The fixture has a 256-row vocabulary and no tokenizer, so the test writes
// one: the 256 byte symbols of the Qwen3 fixture tokenizer (no merges),
// permuted so that the ASCII letters a..o are the reference prompt's text ids,
// plus <|image_pad|> 250, <|vision_start|> 252, <|vision_end|> 253 as special
// tokens. The raw prompt
//   "abcde<|vision_start|><|image_pad|><|vision_end|>fghi<|vision_start|>..."
// then tokenizes to the reference prompt_ids exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mmgen/client.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/text/json.hpp"
#include "text_jobs.hpp"

using namespace mmgen;
using namespace mmgen::itest;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;
const fs::path kVision = kFixtures / "qwen3_5_vision";
constexpr const char* kPlaceholder = "<|vision_start|><|image_pad|><|vision_end|>";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::int64_t> to_vec(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

text::Json added(std::int64_t id, const std::string& content) {
  text::JsonObject o;
  o.emplace_back("id", text::Json(id));
  o.emplace_back("content", text::Json(content));
  o.emplace_back("single_word", text::Json(false));
  o.emplace_back("lstrip", text::Json(false));
  o.emplace_back("rstrip", text::Json(false));
  o.emplace_back("normalized", text::Json(false));
  o.emplace_back("special", text::Json(true));
  return text::Json(std::move(o));
}

// The byte tokenizer described above; `letter_ids[k]` is the id of 'a' + k.
std::string vision_tokenizer_json(const fs::path& from, const std::vector<std::int64_t>& letter_ids) {
  const text::Json src = text::parse_json(read_text(from));
  std::map<std::string, std::int64_t> vocab;  // symbol -> id, ids < 256
  for (const auto& [key, value] : src.as_object())
    if (key == "model")
      for (const auto& [mk, mv] : value.as_object())
        if (mk == "vocab")
          for (const auto& [tok, id] : mv.as_object())
            if (id.as_int() < 256) vocab[tok] = id.as_int();
  auto symbol_of = [&](std::int64_t id) {
    for (const auto& [s, i] : vocab)
      if (i == id) return s;
    ADD_FAILURE() << "no symbol with id " << id;
    return std::string();
  };
  for (std::size_t k = 0; k < letter_ids.size(); ++k) {  // swap ids: letter k takes letter_ids[k]
    const std::string letter(1, char('a' + k));
    const std::string other = symbol_of(letter_ids[k]);
    std::swap(vocab[letter], vocab[other]);
  }
  // The special tokens' ids: their byte symbols move beyond the model's rows.
  vocab[symbol_of(250)] = 256;
  vocab[symbol_of(252)] = 257;
  vocab[symbol_of(253)] = 258;
  text::JsonObject out;
  for (const auto& [key, value] : src.as_object()) {
    if (key == "model") {
      text::JsonObject model;
      for (const auto& [mk, mv] : value.as_object()) {
        if (mk == "vocab") {
          text::JsonObject v;
          for (const auto& [s, i] : vocab) v.emplace_back(s, text::Json(i));
          model.emplace_back(mk, text::Json(std::move(v)));
        } else if (mk == "merges") {
          model.emplace_back(mk, text::Json(text::JsonArray{}));
        } else {
          model.emplace_back(mk, mv);
        }
      }
      out.emplace_back(key, text::Json(std::move(model)));
    } else if (key == "added_tokens") {
      text::JsonArray a = value.as_array();  // <|im_start|> ... (ids >= 377) stay
      a.push_back(added(250, "<|image_pad|>"));
      a.push_back(added(252, "<|vision_start|>"));
      a.push_back(added(253, "<|vision_end|>"));
      out.emplace_back(key, text::Json(std::move(a)));
    } else {
      out.emplace_back(key, value);
    }
  }
  return text::dump_json(text::Json(std::move(out)));
}

std::string png_of(const at::Tensor& hwc) {  // uint8 [H, W, C]
  const at::Tensor c = hwc.contiguous();
  const auto bytes = media::encode_png(
      media::ImageView(c.data_ptr<std::uint8_t>(), int(c.size(1)), int(c.size(0)), int(c.size(2))));
  return std::string(bytes.begin(), bytes.end());
}

class VisionTextWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    ref_ = std::make_unique<io::Checkpoint>(io::Checkpoint::open(kVision / "reference.safetensors"));
    // The reference prompt: text runs of 5, 4 and 6 ids around two images.
    const auto ids = to_vec(ref_->tensor("prompt_ids"));
    std::vector<std::int64_t> letters;
    std::string prompt;
    for (std::int64_t id : ids) {
      if (id == 252) {
        prompt += kPlaceholder;
      } else if (id != 250 && id != 253) {
        prompt += char('a' + letters.size());
        letters.push_back(id);
      }
    }
    prompt_ = prompt;
    stack_ = std::make_unique<Stack>();
    stack_->start_broker();
    const fs::path dir = stack_->dir() / "qwen3_5_vision";
    fs::create_directories(dir);
    for (const char* f : {"config.json", "preprocessor_config.json"}) fs::copy_file(kVision / f, dir / f);
    fs::create_symlink(kVision / "model.safetensors", dir / "model.safetensors");
    std::ofstream(dir / "tokenizer.json")
        << vision_tokenizer_json(kFixtures / "qwen3_tied_gqa" / "tokenizer.json", letters);
    fs::copy_file(kFixtures / "qwen3_tied_gqa" / "tokenizer_config.json", dir / "tokenizer_config.json");
    worker_ = std::make_unique<Process>(
        std::vector<std::string>{(bin_dir() / "mmgen-text").string(), "--broker", stack_->workers_ep(), "--model",
                                 dir.string(), "--heartbeat-ms", "200", "--capacity", "4", "--threads", "1",
                                 "--kv-cache-memory", "4MiB", "--block-size", "4", "--max-num-batched-tokens", "8"},
        stack_->dir() / "text.log");
    stack_->wait_workers("text", 1, 60s);
    client_ = stack_->client();
  }
  std::string logs() const { return stack_->logs() + "\n--- mmgen-text ---\n" + worker_->log_text(); }

  // Submits a raw greedy job with the given image blobs; waits for its end.
  std::optional<client::Event> run(ValueMap params, const std::vector<std::string>& images) {
    proto::Submit s = text_job(std::move(params));
    proto::Frames frames;
    for (const auto& png : images) client::add_input(s, frames, "image", "image/png", png);
    auto acc = client_->submit_and_wait(s, std::move(frames), 10s);
    EXPECT_TRUE(acc && acc->kind == proto::EventCmd::Accepted) << logs();
    if (!acc || acc->kind != proto::EventCmd::Accepted) return acc;
    return client_->wait_terminal(acc->job, 60s);
  }
  ValueMap raw(int max_tokens) const {
    ValueMap p = greedy_params(prompt_, max_tokens);
    p["raw"] = true;
    return p;
  }
  void expect_invalid(const std::optional<client::Event>& end, const std::string& needle) {
    ASSERT_TRUE(end) << logs();
    ASSERT_EQ(end->kind, proto::EventCmd::Error) << logs();
    EXPECT_EQ(end->as<proto::Error>().code, proto::ErrorCode::invalid_request) << end->as<proto::Error>().message;
    EXPECT_NE(end->as<proto::Error>().message.find(needle), std::string::npos) << end->as<proto::Error>().message;
  }

  std::unique_ptr<io::Checkpoint> ref_;
  std::string prompt_;
  std::unique_ptr<Stack> stack_;
  std::unique_ptr<Process> worker_;
  std::unique_ptr<client::Client> client_;
};

}  // namespace

TEST_F(VisionTextWorker, ImagePromptGivesTransformersGreedyTokens) {
  const std::vector<std::string> images{png_of(ref_->tensor("image0")), png_of(ref_->tensor("image1"))};
  auto end = run(raw(4), images);
  ASSERT_TRUE(end) << logs();
  ASSERT_EQ(end->kind, proto::EventCmd::Result) << logs();
  const auto& data = end->as<proto::Result>().data;
  EXPECT_EQ(ints(data.at("tokens")), to_vec(ref_->tensor("greedy"))) << logs();
  EXPECT_EQ(data.at("prompt_tokens").as_int(), ref_->tensor("input_ids").numel()) << "placeholders expanded";
  EXPECT_NE(worker_->log_text().find("image input on"), std::string::npos);
}

TEST_F(VisionTextWorker, BadImageIsInvalidRequestNamingIt) {
  const std::string good = png_of(ref_->tensor("image0"));
  expect_invalid(run(raw(2), {good, "definitely not an image"}), "image 2 of 2");
}

TEST_F(VisionTextWorker, PlaceholderAndImageCountsMustAgree) {
  const std::string good = png_of(ref_->tensor("image0"));
  expect_invalid(run(raw(2), {good}), "2 image placeholder(s)");  // two placeholders, one image
  // Chat messages: two image parts, one blob.
  ValueMap p = greedy_params("", 2);
  p.erase("prompt");
  ValueArray parts;
  for (int i = 0; i < 2; ++i) parts.push_back(Value(ValueMap{{"type", "image"}}));
  ValueArray msgs;
  msgs.push_back(Value(ValueMap{{"role", "user"}, {"content", Value(std::move(parts))}}));
  p["messages"] = Value(std::move(msgs));
  expect_invalid(run(p, {good}), "2 image parts");
  // An input under another name.
  proto::Submit s = text_job(raw(2));
  proto::Frames frames;
  client::add_input(s, frames, "picture", "image/png", good);
  auto acc = client_->submit_and_wait(s, std::move(frames), 10s);
  ASSERT_TRUE(acc);
  if (acc->kind == proto::EventCmd::Accepted) {
    expect_invalid(client_->wait_terminal(acc->job, 60s), "unknown input 'picture'");
  } else {
    expect_invalid(std::move(acc), "unknown input 'picture'");
  }
}

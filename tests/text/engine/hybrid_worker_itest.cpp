// mmgen-text serving a hybrid Qwen3.5 checkpoint through a real broker
// (integration): the worker picks Qwen3_5ForCausalLM from config.json, and 8
// concurrent mixed-length greedy requests give the tokens each gives alone —
// each sequence's recurrent state really is its own — with chunked prefill,
// fewer state slots than requests, and cancellation freeing the slot.
//
// The tiny fixture (tests/fixtures/text/qwen3_5_dense) has a 256-row
// vocabulary and no tokenizer files, so the test assembles a model folder: the
// fixture's config.json and weights, plus a byte-level tokenizer whose
// vocabulary is the 256 byte symbols (the first 256 entries of the Qwen3
// fixture tokenizer, no merges): every byte of a raw prompt is one token < 256.
// (Its special tokens keep their ids >= 256, so a chat-templated prompt is
// refused: a check that out-of-vocabulary ids never reach the model.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mmgen/client.hpp"
#include "mmgen/text/json.hpp"
#include "text_jobs.hpp"

using namespace mmgen;
using namespace mmgen::itest;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = MMGEN_TEXT_FIXTURES;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// tokenizer.json of `from` with the vocabulary cut to ids < 256 and no merges.
// Its special tokens (<|im_start|> 378 ...) stay: beyond this model's rows.
std::string byte_tokenizer_json(const fs::path& from) {
  const text::Json src = text::parse_json(read_text(from));
  text::JsonObject out;
  for (const auto& [key, value] : src.as_object()) {
    if (key == "model") {
      text::JsonObject model;
      for (const auto& [mk, mv] : value.as_object()) {
        if (mk == "vocab") {
          text::JsonObject vocab;
          for (const auto& [tok, id] : mv.as_object())
            if (id.as_int() < 256) vocab.emplace_back(tok, id);
          model.emplace_back(mk, text::Json(std::move(vocab)));
        } else if (mk == "merges") {
          model.emplace_back(mk, text::Json(text::JsonArray{}));
        } else {
          model.emplace_back(mk, mv);
        }
      }
      out.emplace_back(key, text::Json(std::move(model)));
    } else {
      out.emplace_back(key, value);
    }
  }
  return text::dump_json(text::Json(std::move(out)));
}

fs::path make_model_dir(const fs::path& dir, const std::string& fixture) {
  const fs::path src = kFixtures / fixture;
  fs::create_directories(dir);
  fs::copy_file(src / "config.json", dir / "config.json");
  fs::create_symlink(src / "model.safetensors", dir / "model.safetensors");
  std::ofstream(dir / "tokenizer.json") << byte_tokenizer_json(kFixtures / "qwen3_tied_gqa" / "tokenizer.json");
  // The chat template (unused by raw prompts, but the worker loads one).
  fs::copy_file(kFixtures / "qwen3_tied_gqa" / "tokenizer_config.json", dir / "tokenizer_config.json");
  return dir;
}

ValueMap raw_greedy(const std::string& prompt, int max_tokens) {
  ValueMap p = greedy_params(prompt, max_tokens);
  p["raw"] = true;
  return p;
}

class HybridTextWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>();
    stack_->start_broker();
    const fs::path model = make_model_dir(stack_->dir() / "qwen3_5_dense", "qwen3_5_dense");
    // 6 state slots for 8 concurrent requests (some wait for a slot), small
    // blocks and a small step budget (long prompts are prefilled in chunks).
    worker_ = std::make_unique<Process>(
        std::vector<std::string>{(bin_dir() / "mmgen-text").string(), "--broker", stack_->workers_ep(), "--model",
                                 model.string(), "--heartbeat-ms", "200", "--capacity", "8", "--threads", "1",
                                 "--kv-cache-memory", "4MiB", "--block-size", "4", "--max-num-batched-tokens", "16",
                                 "--max-num-seqs", "6"},
        stack_->dir() / "text.log");
    stack_->wait_workers("text", 1, 60s);
    client_ = stack_->client();
  }
  std::string logs() const { return stack_->logs() + "\n--- mmgen-text ---\n" + worker_->log_text(); }

  std::unique_ptr<Stack> stack_;
  std::unique_ptr<Process> worker_;
  std::unique_ptr<client::Client> client_;
};

}  // namespace

TEST_F(HybridTextWorker, EightConcurrentRequestsGiveTheTokensOfEachAlone) {
  const std::vector<std::string> prompts = {
      "Hello", "Write a haiku about the sea.", "What is two plus two?",
      "Tell me a very long story about a dragon who lived under the mountain and counted gold",
      "a", "The quick brown fox jumps over the lazy dog.", "Numbers: 1 2 3 4 5 6 7 8 9 10 11 12", "Why?"};
  std::vector<ValueMap> params;
  for (std::size_t i = 0; i < prompts.size(); ++i) params.push_back(raw_greedy(prompts[i], 8 + 3 * int(i)));
  std::vector<JobRun> alone;
  for (const auto& p : params) alone.push_back(run_jobs(*client_, {p}, logs())[0]);
  auto together = run_jobs(*client_, params, logs());
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(together[i].tokens.size(), std::size_t(8 + 3 * i));
    EXPECT_EQ(together[i].partials, int(together[i].tokens.size())) << "one PARTIAL per token";
    const auto& data = together[i].result.data;
    EXPECT_EQ(data.at("prompt_tokens").as_int(), std::int64_t(prompts[i].size())) << "one token per byte";
    EXPECT_EQ(data.at("finish_reason").as_string(), "length");
    EXPECT_EQ(together[i].partial_text, data.at("text").as_string()) << "request " << i;
  }
  // The worker said which model class it runs and why prefix caching is off.
  const std::string log = worker_->log_text();
  EXPECT_NE(log.find("Qwen3_5ForConditionalGeneration"), std::string::npos) << log;
  EXPECT_NE(log.find("prefix caching is off for hybrid"), std::string::npos) << log;
}

TEST_F(HybridTextWorker, CancelFreesTheSlotAndTheWorkerKeepsServing) {
  const ValueMap alone_params = raw_greedy("After the cancel", 10);
  const auto before = run_jobs(*client_, {alone_params}, logs())[0].tokens;
  // Six long requests hold all six state slots; cancel them mid-stream.
  std::vector<std::string> jobs;
  for (int i = 0; i < 6; ++i) {
    auto acc = client_->submit_and_wait(text_job(raw_greedy("Tell me everything " + std::to_string(i), 300)), {},
                                        10s);
    ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
    jobs.push_back(acc->job);
  }
  for (const auto& job : jobs) {
    auto first = client_->wait_for(
        [&](const client::Event& e) { return e.job == job && e.kind == proto::EventCmd::Partial; }, 60s);
    ASSERT_TRUE(first) << "no token streamed; logs:\n" << logs();
  }
  for (const auto& job : jobs) client_->cancel(job);
  for (const auto& job : jobs) {
    auto end = client_->wait_terminal(job, 30s);
    ASSERT_TRUE(end) << logs();
    EXPECT_EQ(end->kind, proto::EventCmd::Cancelled);
  }
  // Every slot is back: a new request runs, from a clean state.
  auto after = run_jobs(*client_, {alone_params}, logs());
  EXPECT_EQ(after[0].tokens, before);
}

TEST_F(HybridTextWorker, PromptOutsideTheVocabularyIsInvalidRequest) {
  // The chat template adds <|im_start|> (id 378), outside this model's 256 rows.
  auto acc = client_->submit_and_wait(text_job(greedy_params("Hello", 4)), {}, 10s);
  ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
  auto end = client_->wait_terminal(acc->job, 30s);
  ASSERT_TRUE(end) << logs();
  ASSERT_EQ(end->kind, proto::EventCmd::Error);
  EXPECT_EQ(end->as<proto::Error>().code, proto::ErrorCode::invalid_request) << end->as<proto::Error>().message;
  EXPECT_NE(end->as<proto::Error>().message.find("vocabulary"), std::string::npos) << end->as<proto::Error>().message;
}

// mmgen-text through a real broker (integration): 8 concurrent greedy
// requests give the tokens each gives alone; one PARTIAL per token whose text
// deltas add up to the RESULT; cancellation; bad params.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mmgen/client.hpp"
#include "text_jobs.hpp"

using namespace mmgen;
using namespace mmgen::itest;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(MMGEN_TEXT_FIXTURES) / "qwen3_tied_gqa";

class TextWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    stack_ = std::make_unique<Stack>();
    stack_->start_broker();
    worker_ = std::make_unique<Process>(
        std::vector<std::string>{(bin_dir() / "mmgen-text").string(), "--broker", stack_->workers_ep(), "--model",
                                 kModel.string(), "--heartbeat-ms", "200", "--capacity", "8", "--threads", "1",
                                 "--kv-cache-memory", "4MiB", "--block-size", "4", "--max-num-batched-tokens", "32"},
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

TEST_F(TextWorker, EightConcurrentRequestsGiveTheTokensOfEachAlone) {
  const std::vector<std::string> prompts = {
      "Hello", "Write a haiku about the sea.", "What is two plus two?", "Tell me a very long story about a dragon",
      "a", "The quick brown fox jumps over the lazy dog.", "Numbers: 1 2 3 4 5 6 7 8 9 10 11 12", "Why?"};
  std::vector<ValueMap> params;
  for (std::size_t i = 0; i < prompts.size(); ++i) params.push_back(greedy_params(prompts[i], 8 + 3 * int(i)));
  std::vector<JobRun> alone;
  for (const auto& p : params) alone.push_back(run_jobs(*client_, {p}, logs())[0]);
  auto together = run_jobs(*client_, params, logs());
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(together[i].tokens, alone[i].tokens) << "request " << i;
    EXPECT_EQ(together[i].tokens.size(), std::size_t(8 + 3 * i));
    EXPECT_EQ(together[i].partials, int(together[i].tokens.size())) << "one PARTIAL per token";
    const auto& data = together[i].result.data;
    EXPECT_EQ(data.at("completion_tokens").as_int(), std::int64_t(together[i].tokens.size()));
    EXPECT_GT(data.at("prompt_tokens").as_int(), 0);
    EXPECT_EQ(data.at("finish_reason").as_string(), "length");
    // Streamed deltas add up to the final split of the reply.
    EXPECT_EQ(together[i].partial_text, data.at("text").as_string()) << "request " << i;
    EXPECT_EQ(together[i].partial_reasoning, data.at("reasoning").as_string()) << "request " << i;
  }
}

TEST_F(TextWorker, CancelStopsTheJobAndTheWorkerKeepsServing) {
  auto acc = client_->submit_and_wait(text_job(greedy_params("Tell me everything", 200)), {}, 10s);
  ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
  auto first = client_->wait_for(
      [&](const client::Event& e) { return e.job == acc->job && e.kind == proto::EventCmd::Partial; }, 60s);
  ASSERT_TRUE(first) << "no token streamed; logs:\n" << logs();
  client_->cancel(acc->job);
  auto end = client_->wait_terminal(acc->job, 30s);
  ASSERT_TRUE(end) << logs();
  EXPECT_EQ(end->kind, proto::EventCmd::Cancelled);
  auto again = run_jobs(*client_, {greedy_params("Hello", 4)}, logs());
  EXPECT_EQ(again[0].tokens.size(), 4u);
}

TEST_F(TextWorker, BadParamsAreInvalidRequest) {
  for (ValueMap p : {ValueMap{{"max_tokens", 4}},                                     // no prompt
                     ValueMap{{"prompt", "x"}, {"top_p", 3.0}},                        // out of range
                     ValueMap{{"prompt", "x"}, {"stop", 5}},                            // wrong type
                     ValueMap{{"messages", ValueArray{ValueMap{{"role", 1}}}}}}) {  // bad message
    auto acc = client_->submit_and_wait(text_job(p), {}, 10s);
    ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
    auto end = client_->wait_terminal(acc->job, 30s);
    ASSERT_TRUE(end) << logs();
    ASSERT_EQ(end->kind, proto::EventCmd::Error) << Value(p).to_json();
    EXPECT_EQ(end->as<proto::Error>().code, proto::ErrorCode::invalid_request) << end->as<proto::Error>().message;
  }
}

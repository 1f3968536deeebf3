// mmgen-echo's service through the real worker SDK and a scripted broker.
#include <gtest/gtest.h>

#include "echo_service.hpp"
#include "fake_broker.hpp"

namespace mmgen::worker_test {
namespace {

using proto::ErrorCode;
using proto::WorkerCmd;

class Echo : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = std::make_unique<RunningWorker>(svc_, test_options(broker_));
    auto ready = broker_.expect(WorkerCmd::Ready);
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->as<proto::Ready>().service, "echo");
    peer_ = ready->peer;
  }
  void TearDown() override { worker_.reset(); }

  void submit(const std::string& id, ValueMap params, std::vector<proto::BlobMeta> inputs = {},
              const std::vector<std::string>& blobs = {}) {
    auto job = make_job(id, "echo", std::move(params));
    job.inputs = std::move(inputs);
    broker_.send_job(peer_, job, blobs);
  }

  proto::Error error(const std::string& id, ErrorCode code) {
    auto m = broker_.expect(WorkerCmd::Error);
    if (!m) return {};
    auto e = m->as<proto::Error>();
    EXPECT_EQ(e.job, id);
    EXPECT_EQ(proto::to_string(e.code), proto::to_string(code)) << e.message;
    return e;
  }

  FakeBroker broker_;
  echo::EchoService svc_;
  std::unique_ptr<RunningWorker> worker_;
  std::string peer_;
};

TEST_F(Echo, ReturnsParamsTextAndEveryInputBlob) {
  const ValueMap params{{"text", "hello"}, {"n", 3}, {"nested", ValueMap{{"k", ValueArray{1, 2}}}}};
  submit("j1", params, {{"a.png", "image/png", 4}, {"b.bin", "application/octet-stream", 3}},
         {"\x89PNG", std::string("\0\1\2", 3)});
  auto m = broker_.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
  const auto r = m->as<proto::Result>();
  EXPECT_EQ(r.job, "j1");
  EXPECT_EQ(r.data.at("echo"), Value(params));
  EXPECT_EQ(r.data.at("text"), Value("hello"));
  EXPECT_EQ(r.outputs, (std::vector<proto::BlobMeta>{{"a.png", "image/png", 4},
                                                     {"b.bin", "application/octet-stream", 3}}));
  EXPECT_EQ(m->blobs, (std::vector<std::string>{"\x89PNG", std::string("\0\1\2", 3)}));
  EXPECT_EQ(r.metrics.at("input_bytes"), Value(7));
}

TEST_F(Echo, WithoutTextThereIsNoTextField) {
  submit("j1", {});
  auto m = broker_.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
  const auto r = m->as<proto::Result>();
  EXPECT_FALSE(r.data.contains("text"));
  EXPECT_EQ(r.data.at("echo"), Value(ValueMap{}));
}

TEST_F(Echo, SleepReportsProgressEveryTenPercent) {
  submit("j1", {{"sleep_ms", 100}});
  for (std::uint32_t step = 0; step <= 10; ++step) {
    auto m = broker_.expect(WorkerCmd::Progress);
    ASSERT_TRUE(m);
    const auto p = m->as<proto::Progress>();
    EXPECT_EQ(p.step, step);
    EXPECT_EQ(p.total, 10u);
    if (step > 0) {
      EXPECT_GE(p.eta_s, 0);
    }
  }
  auto m = broker_.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->as<proto::Result>().metrics.at("slept_ms"), Value(100));
}

TEST_F(Echo, CancelDuringSleepStopsIt) {
  submit("j1", {{"sleep_ms", 3'600'000}});
  ASSERT_TRUE(broker_.expect(WorkerCmd::Progress));  // step 0: it is sleeping
  broker_.send_cancel(peer_, "j1");
  error("j1", ErrorCode::cancelled);
}

TEST_F(Echo, SleepPastTheDeadlineIsATimeout) {
  auto job = make_job("j1", "echo", {{"sleep_ms", 3'600'000}});
  job.timeout_ms = 50;
  broker_.send_job(peer_, job);
  ASSERT_TRUE(broker_.expect(WorkerCmd::Progress));
  error("j1", ErrorCode::timeout);
}

TEST_F(Echo, PartialsStreamTheTextInOrder) {
  const std::string text = "héllo wörld, streamed";
  submit("j1", {{"text", text}, {"partials", 4}});
  std::string joined;
  for (std::int64_t i = 0; i < 4; ++i) {
    auto m = broker_.expect(WorkerCmd::Partial);
    ASSERT_TRUE(m);
    const auto p = m->as<proto::Partial>();
    EXPECT_EQ(p.seq, static_cast<std::uint64_t>(i));
    EXPECT_EQ(p.data.at("index"), Value(i));
    joined += p.data.at("text").as_string();
  }
  EXPECT_EQ(joined, text);
  auto m = broker_.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
}

TEST_F(Echo, FailGivesInternalOrTheChosenCode) {
  submit("j1", {{"fail", true}});
  EXPECT_EQ(error("j1", ErrorCode::internal).message, "echo asked to fail");
  submit("j2", {{"fail", true}, {"fail_code", "queue_full"}});
  error("j2", ErrorCode::queue_full);
  submit("j3", {{"fail_code", "unsupported"}});
  error("j3", ErrorCode::unsupported);
  submit("j4", {{"fail", false}});
  ASSERT_TRUE(broker_.expect(WorkerCmd::Result));
}

TEST_F(Echo, BadParamsAreInvalidRequestsNamingTheParam) {
  const std::vector<std::pair<std::string, ValueMap>> bad = {
      {"sleep_ms", {{"sleep_ms", "long"}}},
      {"sleep_ms", {{"sleep_ms", -1}}},
      {"sleep_ms", {{"sleep_ms", 3'600'001}}},
      {"partials", {{"partials", 10'001}}},
      {"fail", {{"fail", "yes"}}},
      {"fail_code", {{"fail_code", "no_such_code"}}},
      {"text", {{"text", 5}}},
  };
  int i = 0;
  for (const auto& [param, params] : bad) {
    const std::string id = "j" + std::to_string(i++);
    submit(id, params);
    const auto e = error(id, ErrorCode::invalid_request);
    EXPECT_NE(e.message.find(param), std::string::npos) << e.message;
  }
  submit("ok", {{"sleep_ms", 0}});
  ASSERT_TRUE(broker_.expect(WorkerCmd::Result));
}

}  // namespace
}  // namespace mmgen::worker_test

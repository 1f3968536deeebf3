// The --json lines: every event kind renders to valid JSON with "job" and
// "event" and the fields scripts rely on. Lines are read back with the CLI's
// own JSON reader (itself tested in json_parse_test.cpp).
#include <gtest/gtest.h>

#include "cli/json_events.hpp"
#include "cli/json_parse.hpp"
#include "fake_broker.hpp"

namespace mmgen::cli {
namespace {

using testing::kJob;

client::Event make(proto::EventCmd kind, client::EventBody body) {
  client::Event ev;
  ev.kind = kind;
  ev.job = kJob;
  ev.body = std::move(body);
  return ev;
}

ValueMap parsed(const std::string& line) {
  EXPECT_EQ(line.find('\n'), std::string::npos) << "a JSON event must be one line";
  Value v = parse_json(line);
  EXPECT_TRUE(v.is_map()) << line;
  return v.is_map() ? v.as_map() : ValueMap{};
}

TEST(JsonEvents, Accepted) {
  auto m = parsed(accepted_json(proto::Accepted{7, kJob, true}));
  EXPECT_EQ(m.at("job"), Value(kJob));
  EXPECT_EQ(m.at("event"), Value("accepted"));
  EXPECT_EQ(m.at("existing"), Value(true));
}

TEST(JsonEvents, QueuedStartedProgress) {
  auto q = parsed(event_json(make(proto::EventCmd::Queued, proto::Queued{kJob, 3, "no worker for model 'x'"})));
  EXPECT_EQ(q.at("event"), Value("queued"));
  EXPECT_EQ(q.at("position"), Value(3));
  EXPECT_EQ(q.at("waiting_for"), Value("no worker for model 'x'"));

  auto s = parsed(event_json(make(proto::EventCmd::Started, proto::Started{kJob, "w7", 2})));
  EXPECT_EQ(s.at("event"), Value("started"));
  EXPECT_EQ(s.at("worker"), Value("w7"));
  EXPECT_EQ(s.at("attempt"), Value(2));

  proto::Progress p{kJob, 4, 20, 1.5, "denoising \"fast\"", proto::BlobMeta{"preview.png", "image/png", 3}};
  auto pj = parsed(event_json(make(proto::EventCmd::Progress, p), {"prev/x.png"}));
  EXPECT_EQ(pj.at("job"), Value(kJob));
  EXPECT_EQ(pj.at("event"), Value("progress"));
  EXPECT_EQ(pj.at("step"), Value(4));
  EXPECT_EQ(pj.at("total"), Value(20));
  EXPECT_EQ(pj.at("eta_s"), Value(1.5));
  EXPECT_EQ(pj.at("message"), Value("denoising \"fast\""));
  EXPECT_EQ(pj.at("preview"), Value("prev/x.png"));

  p.eta_s = -1;  // unknown ETA is left out rather than printed as -1
  EXPECT_FALSE(parsed(event_json(make(proto::EventCmd::Progress, p))).contains("eta_s"));
}

TEST(JsonEvents, PartialResultErrorCancelled) {
  proto::Partial part{kJob, 5, ValueMap{{"text", Value("lo\n")}}};
  auto pj = parsed(event_json(make(proto::EventCmd::Partial, part)));
  EXPECT_EQ(pj.at("event"), Value("partial"));
  EXPECT_EQ(pj.at("seq"), Value(5));
  EXPECT_EQ(pj.at("data").as_map().at("text"), Value("lo\n"));

  proto::Result r;
  r.job = kJob;
  r.data = ValueMap{{"text", Value("Hello")}, {"tokens", Value(ValueArray{Value(9707), Value(13)})}};
  r.metrics = ValueMap{{"tokens_per_s", Value(41.5)}};
  auto rj = parsed(event_json(make(proto::EventCmd::Result, r), {"a.png", "b.png"}));
  EXPECT_EQ(rj.at("event"), Value("result"));
  EXPECT_EQ(rj.at("outputs"), Value(ValueArray{Value("a.png"), Value("b.png")}));
  EXPECT_EQ(rj.at("data").as_map().at("text"), Value("Hello"));
  EXPECT_EQ(rj.at("data").as_map().at("tokens"), Value(ValueArray{Value(9707), Value(13)}));
  EXPECT_EQ(rj.at("metrics").as_map().at("tokens_per_s"), Value(41.5));

  proto::Error e{0, kJob, proto::ErrorCode::worker_lost, "worker w3 died"};
  auto ej = parsed(event_json(make(proto::EventCmd::Error, e)));
  EXPECT_EQ(ej.at("event"), Value("error"));
  EXPECT_EQ(ej.at("code"), Value("worker_lost"));
  EXPECT_EQ(ej.at("message"), Value("worker w3 died"));

  auto cj = parsed(event_json(make(proto::EventCmd::Cancelled, proto::Cancelled{kJob})));
  EXPECT_EQ(cj.at("event"), Value("cancelled"));
  EXPECT_EQ(cj.at("job"), Value(kJob));
}

TEST(JsonEvents, ReplayOfAttachedJob) {
  proto::JobInfo info;
  info.job = kJob;
  info.state = proto::JobState::running;
  info.worker = "w2";
  info.attempts = 1;
  auto s = parsed(*replay_json(info));
  EXPECT_EQ(s.at("event"), Value("started"));
  EXPECT_EQ(s.at("worker"), Value("w2"));
  info.state = proto::JobState::queued;
  info.position = 4;
  EXPECT_EQ(parsed(*replay_json(info)).at("position"), Value(4));
  info.state = proto::JobState::succeeded;
  EXPECT_FALSE(replay_json(info));
}

TEST(JsonEvents, JobInfoAndService) {
  proto::JobInfo info;
  info.job = kJob;
  info.service = "image";
  info.state = proto::JobState::failed;
  info.error = proto::Error{0, kJob, proto::ErrorCode::timeout, "deadline passed"};
  auto m = parsed(jobinfo_json(info));
  EXPECT_EQ(m.at("event"), Value("jobinfo"));
  EXPECT_EQ(m.at("state"), Value("failed"));
  EXPECT_EQ(m.at("error").as_map().at("code"), Value("timeout"));

  auto s = parsed(service_json(proto::ServiceInfo{"text", 2, {"qwen3-0.6b", "qwen2.5-0.5b"}, 16, 3, 1}));
  EXPECT_EQ(s.at("service"), Value("text"));
  EXPECT_EQ(s.at("workers"), Value(2));
  EXPECT_EQ(s.at("models"), Value(ValueArray{Value("qwen3-0.6b"), Value("qwen2.5-0.5b")}));
  EXPECT_EQ(s.at("capacity"), Value(16));
  EXPECT_EQ(s.at("load"), Value(3));
  EXPECT_EQ(s.at("queued"), Value(1));
}

}  // namespace
}  // namespace mmgen::cli

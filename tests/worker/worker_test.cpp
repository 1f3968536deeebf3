// The worker SDK against a scripted broker on loopback: what goes on the wire
// for each rule of the worker half of the protocol.
#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <unistd.h>

#include <gtest/gtest.h>

#include "backoff.hpp"
#include "fake_broker.hpp"

namespace mmgen::worker_test {
namespace {

using proto::ErrorCode;
using proto::WorkerCmd;
using worker::JobContext;
using worker::Outcome;

// A service whose handler each test supplies.
class TestService : public worker::Service {
 public:
  using Handler = std::function<Outcome(JobContext&)>;
  explicit TestService(Handler h) : handler_(std::move(h)) {}
  std::string name() const override { return "test"; }
  std::vector<std::string> models() const override { return {"m1", "m2"}; }
  Outcome run(JobContext& ctx) override { return handler_(ctx); }

 private:
  Handler handler_;
};

Outcome nothing(JobContext&) { return {}; }

// Blocks until the job's token trips (bounded), then lets Cancelled escape.
Outcome run_until_cancelled(JobContext& ctx) {
  for (int i = 0; i < 2000 && ctx.sleep_for(10ms); ++i) {
  }
  ctx.check_cancelled();
  throw std::runtime_error("the job was never cancelled");
}

proto::Error expect_error(FakeBroker& b, const std::string& job, ErrorCode code) {
  auto m = b.expect(WorkerCmd::Error);
  if (!m) return {};
  const auto e = m->as<proto::Error>();
  EXPECT_EQ(e.job, job);
  EXPECT_EQ(proto::to_string(e.code), proto::to_string(code)) << e.message;
  return e;
}

proto::Result expect_result(FakeBroker& b, const std::string& job) {
  auto m = b.expect(WorkerCmd::Result);
  if (!m) return {};
  const auto r = m->as<proto::Result>();
  EXPECT_EQ(r.job, job);
  return r;
}

// ---- READY -------------------------------------------------------------------

TEST(Worker, ReadyAnnouncesServiceModelsCapacityDeviceVersionAndName) {
  FakeBroker b;
  TestService svc(nothing);
  auto o = test_options(b);
  o.capacity = 3;
  o.device = "cuda:1";
  o.version = "9.8.7";
  RunningWorker w(svc, o);

  auto m = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(m);
  const auto r = m->as<proto::Ready>();
  EXPECT_EQ(r.service, "test");
  EXPECT_EQ(r.models, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(r.capacity, 3u);
  EXPECT_EQ(r.device, "cuda:1");
  EXPECT_EQ(r.version, "9.8.7");
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(r.name, std::string(host) + ":" + std::to_string(getpid()));
}

// ---- heartbeats ----------------------------------------------------------------

TEST(Worker, HeartbeatsContinueWhileAJobComputes) {
  FakeBroker b;
  Gate release;
  Counter started;
  TestService svc([&](JobContext&) {
    started.add();
    if (!release.wait()) throw std::runtime_error("test never released the job");
    return Outcome{};
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1"));
  ASSERT_TRUE(b.pump_until([&] { return started.value() == 1; }, "the job to start"));

  // The handler is blocked on the gate: everything now comes from the I/O thread.
  EXPECT_TRUE(b.expect_heartbeats(ready->peer, 3));
  release.open();
  expect_result(b, "j1");
}

// ---- capacity ------------------------------------------------------------------

TEST(Worker, NeverRunsMoreJobsThanItsCapacity) {
  FakeBroker b;
  Gate release;
  Counter started;
  std::atomic<int> running{0}, most{0};
  TestService svc([&](JobContext&) {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    started.add();
    const bool released = release.wait();
    --running;
    if (!released) throw std::runtime_error("test never released the job");
    return Outcome{};
  });
  auto o = test_options(b);
  o.capacity = 2;
  RunningWorker w(svc, o);
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  for (const char* id : {"j1", "j2", "j3"}) b.send_job(ready->peer, make_job(id));
  // The worker answers this one on its I/O thread, after it has taken j1..j3.
  b.send_job(ready->peer, make_job("probe", "other-service"));
  expect_error(b, "probe", ErrorCode::unknown_service);
  ASSERT_TRUE(b.pump_until([&] { return started.value() >= 2; }, "two jobs to start"));
  EXPECT_EQ(started.value(), 2) << "a third job started while two were running";

  release.open();
  std::set<std::string> done;
  for (int i = 0; i < 3; ++i) {
    auto m = b.expect(WorkerCmd::Result);
    ASSERT_TRUE(m);
    done.insert(m->as<proto::Result>().job);
  }
  EXPECT_EQ(done, (std::set<std::string>{"j1", "j2", "j3"}));
  EXPECT_EQ(most.load(), 2);
}

// ---- cancel, timeout, errors ------------------------------------------------------

TEST(Worker, CancelStopsARunningJobWithErrorCancelled) {
  FakeBroker b;
  Counter started;
  TestService svc([&](JobContext& ctx) {
    started.add();
    return run_until_cancelled(ctx);
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1"));
  ASSERT_TRUE(b.pump_until([&] { return started.value() == 1; }, "the job to start"));
  b.send_cancel(ready->peer, "j1");
  expect_error(b, "j1", ErrorCode::cancelled);
}

TEST(Worker, DeadlineTripsTheTokenWithErrorTimeout) {
  FakeBroker b;
  TestService svc(run_until_cancelled);
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  auto job = make_job("j1");
  job.timeout_ms = 100;
  b.send_job(ready->peer, job);
  const auto e = expect_error(b, "j1", ErrorCode::timeout);
  EXPECT_NE(e.message.find("100 ms"), std::string::npos) << e.message;
}

TEST(Worker, HandlerExceptionsBecomeErrorsAndTheWorkerKeepsServing) {
  FakeBroker b;
  TestService svc([](JobContext& ctx) -> Outcome {
    const std::string mode = ctx.params().get_string("mode", "");
    if (mode == "std") throw std::runtime_error("boom");
    if (mode == "protocol") {
      throw proto::ProtocolError(ErrorCode::invalid_request, "steps: must be positive");
    }
    if (mode == "other") throw 42;
    if (mode == "param") ctx.params().get_int("steps", 1, 1, 10);
    Outcome out;
    out.data["ok"] = true;
    return out;
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  const std::string peer = ready->peer;

  b.send_job(peer, make_job("j1", "test", {{"mode", "std"}}));
  EXPECT_EQ(expect_error(b, "j1", ErrorCode::internal).message, "boom");
  b.send_job(peer, make_job("j2", "test", {{"mode", "protocol"}}));
  EXPECT_EQ(expect_error(b, "j2", ErrorCode::invalid_request).message, "steps: must be positive");
  b.send_job(peer, make_job("j3", "test", {{"mode", "other"}}));
  EXPECT_EQ(expect_error(b, "j3", ErrorCode::internal).message, "unknown exception");
  b.send_job(peer, make_job("j4", "test", {{"mode", "param"}, {"steps", 99}}));
  expect_error(b, "j4", ErrorCode::invalid_request);

  b.send_job(peer, make_job("j5"));
  const auto r = expect_result(b, "j5");
  EXPECT_EQ(r.data.at("ok"), Value(true));
  EXPECT_TRUE(r.metrics.contains("run_ms"));
}

TEST(Worker, JobsForAnotherServiceOrModelAreRejected) {
  FakeBroker b;
  TestService svc(nothing);
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1", "image"));
  expect_error(b, "j1", ErrorCode::unknown_service);
  auto job = make_job("j2");
  job.model = "m9";
  b.send_job(ready->peer, job);
  expect_error(b, "j2", ErrorCode::unsupported);
  job = make_job("j3");
  job.model = "m2";
  b.send_job(ready->peer, job);
  expect_result(b, "j3");
}

// ---- blobs and limits ---------------------------------------------------------------

TEST(Worker, InputBlobsReachTheHandlerAndOutputsComeBackAsFrames) {
  FakeBroker b;
  TestService svc([](JobContext& ctx) {
    Outcome out;
    for (const auto& in : ctx.inputs()) {
      out.outputs.push_back({in.name + ".out", in.mime, "<" + std::string(in.bytes()) + ">"});
    }
    return out;
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  auto job = make_job("j1");
  job.inputs = {{"a", "text/plain", 3}, {"b", "application/octet-stream", 0}};
  b.send_job(ready->peer, job, {"abc", ""});
  auto m = b.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
  const auto r = m->as<proto::Result>();
  EXPECT_EQ(r.outputs, (std::vector<proto::BlobMeta>{{"a.out", "text/plain", 5},
                                                     {"b.out", "application/octet-stream", 2}}));
  EXPECT_EQ(m->blobs, (std::vector<std::string>{"<abc>", "<>"}));
}

TEST(Worker, InputBlobsThatDoNotMatchTheirDescriptionAreRejected) {
  FakeBroker b;
  Counter ran;
  TestService svc([&](JobContext&) {
    ran.add();
    return Outcome{};
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  auto job = make_job("j1");
  job.inputs = {{"a", "text/plain", 10}};
  b.send_job(ready->peer, job, {"short"});
  const auto e = b.expect(WorkerCmd::Error);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->as<proto::Error>().job, "j1");
  EXPECT_EQ(e->as<proto::Error>().code, ErrorCode::invalid_request);
  EXPECT_EQ(ran.value(), 0);
}

TEST(Worker, ResultOverTheLimitBecomesTooLarge) {
  FakeBroker b;
  TestService svc([](JobContext& ctx) {
    Outcome out;
    const auto n = static_cast<std::size_t>(ctx.params().get_int("bytes", 0));
    out.outputs.push_back({"big", "application/octet-stream", std::string(n, 'x')});
    return out;
  });
  auto o = test_options(b);
  o.limits.max_result_bytes = 1024;
  RunningWorker w(svc, o);
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1", "test", {{"bytes", 2048}}));
  const auto e = expect_error(b, "j1", ErrorCode::too_large);
  EXPECT_NE(e.message.find("2048"), std::string::npos) << e.message;
  b.send_job(ready->peer, make_job("j2", "test", {{"bytes", 1024}}));
  auto m = b.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->blobs.size(), 1u);
  EXPECT_EQ(m->blobs[0].size(), 1024u);
}

TEST(Worker, OversizePreviewIsLeftOutAndOversizePartialFailsTheJob) {
  FakeBroker b;
  TestService svc([](JobContext& ctx) {
    ctx.progress(1, 2, "big preview", worker::Output{"p", "image/png", "12345"});
    ctx.partial({{"text", std::string(2000, 'x')}});
    return Outcome{};
  });
  auto o = test_options(b);
  o.limits.max_result_bytes = 4;
  o.limits.max_body_bytes = 1024;
  RunningWorker w(svc, o);
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1"));
  auto m = b.expect(WorkerCmd::Progress);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->as<proto::Progress>().preview);
  EXPECT_TRUE(m->blobs.empty());
  expect_error(b, "j1", ErrorCode::too_large);
}

// ---- progress and partials ------------------------------------------------------------

TEST(Worker, PartialsAreNumberedFromZeroInOrder) {
  FakeBroker b;
  TestService svc([](JobContext& ctx) {
    for (int i = 0; i < 5; ++i) ctx.partial({{"text", "t" + std::to_string(i)}});
    return Outcome{};
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  for (const char* id : {"j1", "j2"}) {
    b.send_job(ready->peer, make_job(id));
    for (std::uint64_t i = 0; i < 5; ++i) {
      auto m = b.expect(WorkerCmd::Partial);
      ASSERT_TRUE(m);
      const auto p = m->as<proto::Partial>();
      EXPECT_EQ(p.job, id);
      EXPECT_EQ(p.seq, i);
      EXPECT_EQ(p.data.at("text"), Value("t" + std::to_string(i)));
    }
    expect_result(b, id);
  }
}

// Compute threads send their jobs' messages themselves when the I/O thread
// is idle, and through it otherwise: with several jobs streaming at once both
// paths interleave, and each job's messages must still arrive in order, its
// RESULT last. Jobs sent meanwhile must not be missed either (a compute
// thread's socket calls can take the I/O thread's wake-up for them).
TEST(Worker, ConcurrentJobsKeepTheirOrderAndNewJobsAreNotMissed) {
  constexpr int kJobs = 8, kPartials = 150;
  FakeBroker b;
  TestService svc([](JobContext& ctx) {
    for (int i = 0; i < kPartials; ++i) ctx.partial({{"i", i}});
    return Outcome{};
  });
  auto o = test_options(b);
  o.capacity = 4;
  RunningWorker w(svc, o);
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);

  std::map<std::string, std::uint64_t> next_seq;
  std::set<std::string> done;
  auto take = [&](const WorkerMsg& m) {
    if (m.cmd == WorkerCmd::Partial) {
      const auto p = m.as<proto::Partial>();
      EXPECT_FALSE(done.contains(p.job)) << "a PARTIAL of " << p.job << " after its RESULT";
      EXPECT_EQ(p.seq, next_seq[p.job]++) << p.job;
    } else if (m.cmd == WorkerCmd::Result) {
      const auto r = m.as<proto::Result>();
      EXPECT_EQ(next_seq[r.job], std::uint64_t(kPartials)) << r.job << " ended early";
      done.insert(r.job);
    } else {
      ADD_FAILURE() << "unexpected " << name_of(m.cmd);
    }
  };
  // Half the jobs first; the rest while those stream.
  for (int j = 0; j < kJobs / 2; ++j) b.send_job(ready->peer, make_job("a" + std::to_string(j)));
  for (int n = 0; n < 20; ++n)
    if (auto m = b.next()) take(*m);
  for (int j = 0; j < kJobs / 2; ++j) b.send_job(ready->peer, make_job("b" + std::to_string(j)));
  while (done.size() < std::size_t(kJobs) && !::testing::Test::HasFailure())
    if (auto m = b.next()) take(*m);
  EXPECT_EQ(done.size(), std::size_t(kJobs));
}

TEST(Worker, ProgressCarriesStepsMessagesPreviewAndAnEta) {
  FakeBroker b;
  TestService svc([](JobContext& ctx) {
    ctx.progress(0, 4, "warming up");
    ctx.progress(2, 4, "half", worker::Output{"preview", "image/png", "PNG!"});
    ctx.progress(4, 4);
    ctx.progress(1, 0, "unknown total");
    return Outcome{};
  });
  RunningWorker w(svc, test_options(b));
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1"));

  auto m = b.expect(WorkerCmd::Progress);
  ASSERT_TRUE(m);
  auto p = m->as<proto::Progress>();
  EXPECT_EQ(p.job, "j1");
  EXPECT_EQ(p.step, 0u);
  EXPECT_EQ(p.total, 4u);
  EXPECT_EQ(p.message, "warming up");
  EXPECT_LT(p.eta_s, 0) << "no rate is known before any step";
  EXPECT_FALSE(p.preview);

  m = b.expect(WorkerCmd::Progress);
  ASSERT_TRUE(m);
  p = m->as<proto::Progress>();
  EXPECT_EQ(p.step, 2u);
  EXPECT_EQ(p.message, "half");
  EXPECT_GE(p.eta_s, 0) << "an ETA from the observed rate";
  ASSERT_TRUE(p.preview);
  EXPECT_EQ(*p.preview, (proto::BlobMeta{"preview", "image/png", 4}));
  EXPECT_EQ(m->blobs, (std::vector<std::string>{"PNG!"}));

  m = b.expect(WorkerCmd::Progress);
  ASSERT_TRUE(m);
  p = m->as<proto::Progress>();
  EXPECT_EQ(p.step, 4u);
  EXPECT_EQ(p.eta_s, 0);

  m = b.expect(WorkerCmd::Progress);
  ASSERT_TRUE(m);
  EXPECT_LT(m->as<proto::Progress>().eta_s, 0);
  expect_result(b, "j1");
}

// ---- connection loss --------------------------------------------------------------------

TEST(Worker, DisconnectFromTheBrokerMeansANewSessionAndTheOldJobIsDropped) {
  FakeBroker b;
  Counter started, cancelled_seen;
  TestService svc([&](JobContext& ctx) -> Outcome {
    if (ctx.job().job == "old") {
      started.add();
      try {
        return run_until_cancelled(ctx);
      } catch (const worker::Cancelled&) {
        cancelled_seen.add();
        throw;
      }
    }
    return Outcome{};
  });
  RunningWorker w(svc, test_options(b));  // capacity 1: "new" runs after "old" returned
  auto first = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(first);
  b.send_job(first->peer, make_job("old"));
  ASSERT_TRUE(b.pump_until([&] { return started.value() == 1; }, "the old job to start"));
  b.send(first->peer, WorkerCmd::Disconnect, proto::encode(proto::Disconnect{"who are you?"}));

  auto second = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(second);
  EXPECT_NE(second->peer, first->peer) << "a new session needs a new socket";
  ASSERT_TRUE(b.pump_until([&] { return cancelled_seen.value() == 1; },
                           "the old job to see its cancellation"));
  // On the single compute thread "new" runs after "old" has returned, so its
  // RESULT is queued after anything "old" produced: nothing may come before it.
  b.send_job(second->peer, make_job("new"));
  auto m = b.next();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->cmd, WorkerCmd::Result) << name_of(m->cmd);
  EXPECT_EQ(m->as<proto::Result>().job, "new");
}

TEST(Worker, ABrokerThatKeepsRefusingIsAskedAgainEachTime) {
  FakeBroker b;
  TestService svc(nothing);
  RunningWorker w(svc, test_options(b));
  std::set<std::string> peers;
  for (int i = 0; i < 4; ++i) {
    auto ready = b.expect(WorkerCmd::Ready);
    ASSERT_TRUE(ready) << "READY #" << i + 1;
    EXPECT_TRUE(peers.insert(ready->peer).second) << "each session has a new socket";
    b.send(ready->peer, WorkerCmd::Disconnect, proto::encode(proto::Disconnect{"unknown worker"}));
  }
}

TEST(Worker, SilentBrokerMeansReconnectAndReadyAgain) {
  FakeBroker b;
  b.keepalive(false);
  TestService svc(nothing);
  auto o = test_options(b);
  o.liveness = 3;
  RunningWorker w(svc, o);
  auto first = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(first);
  auto second = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(second);
  EXPECT_NE(second->peer, first->peer) << "a new session needs a new socket";
}

// ---- graceful stop ------------------------------------------------------------------------

TEST(Worker, StopLetsTheRunningJobFinishThenDisconnects) {
  FakeBroker b;
  Gate release;
  Counter started;
  TestService svc([&](JobContext& ctx) {
    started.add();
    if (!release.wait()) throw std::runtime_error("test never released the job");
    Outcome out;
    out.data["job"] = ctx.job().job;
    return out;
  });
  auto o = test_options(b);
  o.capacity = 2;
  RunningWorker w(svc, o);
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1"));
  ASSERT_TRUE(b.pump_until([&] { return started.value() == 1; }, "the job to start"));

  w.worker().stop();
  // Arrives after stop(): handed back by the DISCONNECT, never started.
  b.send_job(ready->peer, make_job("j2"));
  release.open();
  const auto r = expect_result(b, "j1");
  EXPECT_EQ(r.data.at("job"), Value("j1"));
  EXPECT_TRUE(b.expect(WorkerCmd::Disconnect));
  EXPECT_TRUE(w.wait_returned());
  EXPECT_EQ(started.value(), 1);
}

TEST(Worker, StopAfterTheGracePeriodHandsTheJobBackWithoutAnError) {
  FakeBroker b;
  Counter started, cancelled_seen;
  TestService svc([&](JobContext& ctx) -> Outcome {
    started.add();
    try {
      return run_until_cancelled(ctx);
    } catch (const worker::Cancelled&) {
      cancelled_seen.add();
      throw;
    }
  });
  auto o = test_options(b);
  o.grace_ms = 50;
  RunningWorker w(svc, o);
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  b.send_job(ready->peer, make_job("j1"));
  ASSERT_TRUE(b.pump_until([&] { return started.value() == 1; }, "the job to start"));
  w.worker().stop();
  auto m = b.next();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->cmd, WorkerCmd::Disconnect) << "got " << name_of(m->cmd);
  EXPECT_TRUE(w.wait_returned());
  EXPECT_EQ(cancelled_seen.value(), 1) << "the handler saw its token trip";
}

TEST(Worker, StopWhileIdleDisconnectsAtOnce) {
  FakeBroker b;
  TestService svc(nothing);
  RunningWorker w(svc, test_options(b));
  ASSERT_TRUE(b.expect(WorkerCmd::Ready));
  w.worker().stop();
  const auto m = b.expect(WorkerCmd::Disconnect);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->as<proto::Disconnect>().reason.empty());
  EXPECT_TRUE(w.wait_returned());
}

// ---- backoff ------------------------------------------------------------------------------

TEST(Backoff, DoublesFromMinimumToMaximumAndResets) {
  worker::detail::Backoff b(1000, 32000);
  std::vector<int> seen;
  for (int i = 0; i < 8; ++i) seen.push_back(b.next());
  EXPECT_EQ(seen, (std::vector<int>{1000, 2000, 4000, 8000, 16000, 32000, 32000, 32000}));
  b.reset();
  EXPECT_EQ(b.next(), 1000);
  EXPECT_EQ(b.next(), 2000);
}

}  // namespace
}  // namespace mmgen::worker_test

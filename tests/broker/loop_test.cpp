// The broker's socket loop in-process over loopback: real ROUTER sockets, a
// real journal on a temp dir, DEALER peers speaking MMGP as clients and
// workers. Waits are bounded polls; nothing sleeps.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "loop.hpp"
#include "mmgen/codec.hpp"
#include "mmgen/zmq_util.hpp"
#include "temp_dir.hpp"

namespace mmgen::broker::testing {
namespace {

using namespace std::chrono_literals;
using proto::ClientCmd;
using proto::ErrorCode;
using proto::EventCmd;
using proto::WorkerCmd;
using Frames = std::vector<zmq::message_t>;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 10s;  // generous: only a broken broker ever hits it

zmq::message_t blob(const std::string& s) { return zmq::message_t(s.data(), s.size()); }
std::string text(const zmq::message_t& m) { return zmqu::str(m); }

// A DEALER peer: a client (MMGC01) or a worker (MMGW01).
class Peer {
 public:
  Peer(zmq::context_t& ctx, const std::string& endpoint, std::string_view protocol)
      : s_(ctx, zmq::socket_type::dealer), protocol_(protocol) {
    zmqu::configure_dealer(s_, 1ll << 30);
    s_.connect(endpoint);
  }

  template <class T>
  void send(std::uint8_t cmd, const T& body, Frames blobs = {}) {
    send_raw(proto::make_message(protocol_, cmd, proto::encode(body), std::move(blobs)));
  }
  void send_raw(Frames frames) { ASSERT_TRUE(zmqu::send_multipart(s_, std::move(frames), false)); }

  // The next message whose command is `cmd`, skipping others (e.g. HEARTBEAT)
  // and calling `idle` between polls. Fails the test if none comes in time.
  proto::Envelope expect(std::uint8_t cmd, const std::function<void()>& idle = {}) {
    const auto deadline = Clock::now() + kWait;
    while (Clock::now() < deadline) {
      if (idle) idle();
      zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(idle ? 20 : 200));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      auto frames = zmqu::recv_multipart(s_);
      if (!frames) continue;
      auto env = proto::parse_envelope(std::move(*frames), protocol_, proto::Limits{});
      if (env.command == cmd) return env;
      skipped.push_back(env.command);
    }
    ADD_FAILURE() << "no message with command " << int(cmd) << " within the wait";
    return {};
  }

  // The very next message (no skipping).
  proto::Envelope next() {
    zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::duration_cast<std::chrono::milliseconds>(kWait));
    auto frames = zmqu::recv_multipart(s_, zmq::recv_flags::dontwait);
    if (!frames) {
      ADD_FAILURE() << "no message within the wait";
      return {};
    }
    return proto::parse_envelope(std::move(*frames), protocol_, proto::Limits{});
  }

  std::vector<std::uint8_t> skipped;

 private:
  zmq::socket_t s_;
  std::string protocol_;
};

template <class T>
T body_of(const proto::Envelope& e) {
  return proto::decode_as<T>(e.body_view());
}

std::uint8_t c(ClientCmd x) { return std::uint8_t(x); }
std::uint8_t c(EventCmd x) { return std::uint8_t(x); }
std::uint8_t c(WorkerCmd x) { return std::uint8_t(x); }

// A Loop serving on its own thread until destroyed.
class Broker {
 public:
  Broker(zmq::context_t& ctx, const std::filesystem::path& data,
         std::function<void(LoopConfig&)> tweak = {}) {
    LoopConfig cfg;
    cfg.clients_endpoint = "tcp://127.0.0.1:*";
    cfg.workers_endpoint = "tcp://127.0.0.1:*";
    cfg.data_dir = data;
    cfg.publish_metrics = [this](MetricsSnapshot m) {
      std::lock_guard lock(mu_);
      metrics_ = std::move(m);
    };
    if (tweak) tweak(cfg);
    loop_ = std::make_unique<Loop>(std::move(cfg), ctx);
    clients = loop_->clients_endpoint();
    workers = loop_->workers_endpoint();
    thread_ = std::thread([this] { loop_->run(stop_); });
  }
  ~Broker() {
    stop_ = true;
    thread_.join();
  }
  MetricsSnapshot metrics() {
    std::lock_guard lock(mu_);
    return metrics_;
  }

  std::string clients, workers;

 private:
  std::unique_ptr<Loop> loop_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  MetricsSnapshot metrics_;
};

// Registers a worker and waits until WORKERS lists it, so later SUBMITs
// find it (the two sockets are not ordered with each other).
void register_worker(Peer& worker, Peer& client, const std::string& service, std::uint32_t capacity,
                     std::uint32_t expect_workers = 1) {
  proto::Ready r;
  r.service = service;
  r.capacity = capacity;
  r.name = "test";
  worker.send(c(WorkerCmd::Ready), r);
  const auto deadline = Clock::now() + kWait;
  while (Clock::now() < deadline) {
    client.send(c(ClientCmd::Workers), proto::WorkersReq{77});
    auto list = body_of<proto::WorkerList>(client.expect(c(EventCmd::WorkerList)));
    for (const auto& s : list.services)
      if (s.service == service && s.workers >= expect_workers) return;
  }
  FAIL() << "worker never showed up in WORKERS";
}

proto::Submit echo_submit(std::uint64_t req, std::vector<proto::BlobMeta> inputs = {}) {
  proto::Submit s;
  s.req = req;
  s.service = "echo";
  s.params = ValueMap{{"sleep_ms", 0}};
  s.inputs = std::move(inputs);
  return s;
}

// ---- the happy path -------------------------------------------------------------------

TEST(BrokerLoop, JobRunsOnAWorkerAndItsResultCanBeFetched) {
  TempDir dir;
  zmq::context_t ctx;
  Broker broker(ctx, dir.path());
  Peer client(ctx, broker.clients, proto::kClientProtocol);
  Peer worker(ctx, broker.workers, proto::kWorkerProtocol);
  register_worker(worker, client, "echo", 1);

  const std::string big_in(200 * 1024, 'i');   // a file in the blob store
  const std::string small_out = "HELLO";       // a row in the journal
  Frames in;
  in.push_back(blob(big_in));
  in.push_back(zmq::message_t());
  client.send(c(ClientCmd::Submit),
              echo_submit(1, {{"big", "application/octet-stream", big_in.size()}, {"empty", "", 0}}),
              std::move(in));
  auto accepted = body_of<proto::Accepted>(client.expect(c(EventCmd::Accepted)));
  EXPECT_EQ(accepted.req, 1u);
  EXPECT_FALSE(accepted.existing);
  const std::string job = accepted.job;

  auto job_msg = worker.expect(c(WorkerCmd::Job));
  auto assign = body_of<proto::JobAssign>(job_msg);
  EXPECT_EQ(assign.job, job);
  EXPECT_EQ(assign.attempt, 1u);
  EXPECT_EQ(assign.params, (ValueMap{{"sleep_ms", 0}}));
  ASSERT_EQ(job_msg.blobs.size(), 2u);
  EXPECT_EQ(text(job_msg.blobs[0]), big_in);
  EXPECT_EQ(job_msg.blobs[1].size(), 0u);

  auto started = body_of<proto::Started>(client.expect(c(EventCmd::Started)));
  EXPECT_EQ(started.job, job);

  proto::Progress p;
  p.job = job;
  p.step = 1;
  p.total = 2;
  worker.send(c(WorkerCmd::Progress), p);
  proto::Result r;
  r.job = job;
  r.outputs = {{"out", "text/plain", small_out.size()}};
  r.data = ValueMap{{"text", "hi"}};
  Frames out;
  out.push_back(blob(small_out));
  worker.send(c(WorkerCmd::Result), r, std::move(out));

  EXPECT_EQ(body_of<proto::Progress>(client.expect(c(EventCmd::Progress))).step, 1u);
  auto result = client.expect(c(EventCmd::Result));
  EXPECT_EQ(body_of<proto::Result>(result), r) << "the worker's RESULT is relayed as is";
  ASSERT_EQ(result.blobs.size(), 1u);
  EXPECT_EQ(text(result.blobs[0]), small_out);

  // FETCH reads it back from the journal and the blob store.
  client.send(c(ClientCmd::Fetch), proto::JobRef{2, job});
  auto fetched = client.expect(c(EventCmd::Result));
  EXPECT_EQ(body_of<proto::Result>(fetched), r);
  ASSERT_EQ(fetched.blobs.size(), 1u);
  EXPECT_EQ(text(fetched.blobs[0]), small_out);

  client.send(c(ClientCmd::Status), proto::JobRef{3, job});
  auto info = body_of<proto::JobInfo>(client.expect(c(EventCmd::JobInfo)));
  EXPECT_EQ(info.req, 3u);
  EXPECT_EQ(info.state, proto::JobState::succeeded);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "blobs" / job / "in"))
      << "a finished job's inputs are dropped";

  // Metrics reach the publisher (about twice a second).
  auto published = [&] {
    for (const auto& s : broker.metrics().services)
      if (s.service == "echo" && s.succeeded == 1 && s.submitted == 1) return true;
    return false;
  };
  const auto deadline = Clock::now() + kWait;
  while (!published() && Clock::now() < deadline) {
    // A request round trip paces the wait without sleeping.
    client.send(c(ClientCmd::Workers), proto::WorkersReq{9});
    client.expect(c(EventCmd::WorkerList));
  }
  EXPECT_TRUE(published()) << "published metrics never showed the finished job";
}

// ---- bad input --------------------------------------------------------------------------

TEST(BrokerLoop, MalformedClientMessagesGetTypedErrors) {
  TempDir dir;
  zmq::context_t ctx;
  Broker broker(ctx, dir.path(), [](LoopConfig& c) { c.max_input_bytes = 1000; });
  Peer client(ctx, broker.clients, proto::kClientProtocol);

  auto error_for = [&](Frames frames) {
    client.send_raw(std::move(frames));
    return body_of<proto::Error>(client.expect(c(EventCmd::Error)));
  };

  Frames garbage;
  garbage.push_back(blob("not a protocol"));
  EXPECT_EQ(error_for(std::move(garbage)).code, ErrorCode::invalid_request);

  auto e = error_for(proto::make_message(proto::kClientProtocol, 0x7f,
                                         proto::encode(proto::WorkersReq{42})));
  EXPECT_EQ(e.code, ErrorCode::invalid_request);
  EXPECT_EQ(e.req, 42u) << "req is echoed when readable";

  // Blob metadata that does not match the frames.
  Frames one;
  one.push_back(blob("abc"));
  e = error_for(proto::make_message(proto::kClientProtocol, c(ClientCmd::Submit),
                                    proto::encode(echo_submit(5, {{"x", "", 4}})), std::move(one)));
  EXPECT_EQ(e.code, ErrorCode::invalid_request);
  EXPECT_EQ(e.req, 5u);

  Frames big;
  big.push_back(blob(std::string(2000, 'b')));
  e = error_for(proto::make_message(proto::kClientProtocol, c(ClientCmd::Submit),
                                    proto::encode(echo_submit(6, {{"x", "", 2000}})), std::move(big)));
  EXPECT_EQ(e.code, ErrorCode::too_large);
  EXPECT_EQ(e.req, 6u);

  proto::Submit unknown = echo_submit(7);
  unknown.service = "teleport";
  client.send(c(ClientCmd::Submit), unknown);
  e = body_of<proto::Error>(client.expect(c(EventCmd::Error)));
  EXPECT_EQ(e.code, ErrorCode::unknown_service);
  EXPECT_EQ(e.job, "");

  // Still serving.
  client.send(c(ClientCmd::Submit), echo_submit(8));
  EXPECT_EQ(body_of<proto::Accepted>(client.expect(c(EventCmd::Accepted))).req, 8u);
}

TEST(BrokerLoop, UnknownWorkerIsToldToReconnect) {
  TempDir dir;
  zmq::context_t ctx;
  Broker broker(ctx, dir.path());
  Peer stranger(ctx, broker.workers, proto::kWorkerProtocol);
  stranger.send(c(WorkerCmd::Heartbeat), proto::Heartbeat{});
  auto d = body_of<proto::Disconnect>(stranger.expect(c(WorkerCmd::Disconnect)));
  EXPECT_FALSE(d.reason.empty());
}

// ---- failures and recovery ----------------------------------------------------------------

TEST(BrokerLoop, DeadWorkersJobMovesOnAndItsLateResultIsDropped) {
  TempDir dir;
  zmq::context_t ctx;
  Broker broker(ctx, dir.path(), [](LoopConfig& c) {
    c.dispatcher.heartbeat_ms = 50;
    c.dispatcher.liveness = 2;
  });
  Peer client(ctx, broker.clients, proto::kClientProtocol);
  Peer doomed(ctx, broker.workers, proto::kWorkerProtocol);
  register_worker(doomed, client, "echo", 1);

  client.send(c(ClientCmd::Submit), echo_submit(1));
  const std::string job = body_of<proto::Accepted>(client.expect(c(EventCmd::Accepted))).job;
  EXPECT_EQ(body_of<proto::JobAssign>(doomed.expect(c(WorkerCmd::Job))).job, job);

  // `doomed` falls silent; a healthy worker (heartbeating) gets the job again.
  Peer healthy(ctx, broker.workers, proto::kWorkerProtocol);
  proto::Ready ready;
  ready.service = "echo";
  healthy.send(c(WorkerCmd::Ready), ready);
  auto beat = [&] { healthy.send(c(WorkerCmd::Heartbeat), proto::Heartbeat{}); };
  auto again = body_of<proto::JobAssign>(healthy.expect(c(WorkerCmd::Job), beat));
  EXPECT_EQ(again.job, job);
  EXPECT_EQ(again.attempt, 2u);
  EXPECT_EQ(body_of<proto::Queued>(client.expect(c(EventCmd::Queued))).job, job);

  proto::Result r;
  r.job = job;
  r.data = ValueMap{{"from", "healthy"}};
  healthy.send(c(WorkerCmd::Result), r);
  EXPECT_EQ(body_of<proto::Result>(client.expect(c(EventCmd::Result))).data, r.data);

  // The dead worker's late answer: DISCONNECT for it, nothing for the client.
  proto::Result late;
  late.job = job;
  late.data = ValueMap{{"from", "doomed"}};
  doomed.send(c(WorkerCmd::Result), late);
  doomed.expect(c(WorkerCmd::Disconnect));
  client.send(c(ClientCmd::Status), proto::JobRef{2, job});
  auto next = client.next();
  ASSERT_EQ(next.command, c(EventCmd::JobInfo)) << "no second RESULT may come first";
  EXPECT_EQ(body_of<proto::JobInfo>(next).state, proto::JobState::succeeded);
}

TEST(BrokerLoop, RestartKeepsQueuedJobsAndFinishedResults) {
  TempDir dir;
  zmq::context_t ctx;
  std::string waiting, done;
  {
    Broker broker(ctx, dir.path());
    Peer client(ctx, broker.clients, proto::kClientProtocol);
    Peer worker(ctx, broker.workers, proto::kWorkerProtocol);
    register_worker(worker, client, "echo", 1);

    client.send(c(ClientCmd::Submit), echo_submit(1));
    done = body_of<proto::Accepted>(client.expect(c(EventCmd::Accepted))).job;
    worker.expect(c(WorkerCmd::Job));
    proto::Result r;
    r.job = done;
    r.outputs = {{"out", "", 100000}};
    Frames out;
    out.push_back(blob(std::string(100000, 'o')));
    worker.send(c(WorkerCmd::Result), r, std::move(out));
    client.expect(c(EventCmd::Result));

    proto::Submit s = echo_submit(2);
    s.model = "not-yet";  // nobody serves it: stays queued
    s.key = "restart-key";
    client.send(c(ClientCmd::Submit), s);
    waiting = body_of<proto::Accepted>(client.expect(c(EventCmd::Accepted))).job;
    auto q = body_of<proto::Queued>(client.expect(c(EventCmd::Queued)));
    EXPECT_EQ(q.waiting_for, "no worker advertises model 'not-yet'");
  }

  Broker broker(ctx, dir.path());
  Peer client(ctx, broker.clients, proto::kClientProtocol);
  client.send(c(ClientCmd::Attach), proto::JobRef{3, waiting});
  auto info = body_of<proto::JobInfo>(client.expect(c(EventCmd::JobInfo)));
  EXPECT_EQ(info.state, proto::JobState::queued);

  client.send(c(ClientCmd::Fetch), proto::JobRef{4, done});
  auto fetched = client.expect(c(EventCmd::Result));
  ASSERT_EQ(fetched.blobs.size(), 1u);
  EXPECT_EQ(text(fetched.blobs[0]), std::string(100000, 'o'));

  // The same idempotency key still names the same job.
  proto::Submit s = echo_submit(5);
  s.key = "restart-key";
  client.send(c(ClientCmd::Submit), s);
  auto acc = body_of<proto::Accepted>(client.expect(c(EventCmd::Accepted)));
  EXPECT_TRUE(acc.existing);
  EXPECT_EQ(acc.job, waiting);

  Peer worker(ctx, broker.workers, proto::kWorkerProtocol);
  proto::Ready ready;
  ready.service = "echo";
  ready.models = {"not-yet"};
  worker.send(c(WorkerCmd::Ready), ready);
  EXPECT_EQ(body_of<proto::JobAssign>(worker.expect(c(WorkerCmd::Job))).job, waiting);
  EXPECT_EQ(body_of<proto::Started>(client.expect(c(EventCmd::Started))).job, waiting)
      << "the attached client gets the live events";
}

}  // namespace
}  // namespace mmgen::broker::testing

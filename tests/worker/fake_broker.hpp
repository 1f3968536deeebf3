// Test doubles for the worker SDK tests: a scripted broker (a real ROUTER on
// an ephemeral loopback port, driven by the test), a gate a handler can block
// on, and a counter tests wait on. Every wait is bounded and says what it
// waited for when it gives up.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "mmgen/codec.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/worker.hpp"

namespace mmgen::worker_test {

using namespace std::chrono_literals;

// One message from a worker as the broker sees it.
struct WorkerMsg {
  std::string peer;  // routing id
  proto::WorkerCmd cmd{};
  std::string body;
  std::vector<std::string> blobs;

  template <class T>
  T as() const { return proto::decode_as<T>(body); }
};

std::string_view name_of(proto::WorkerCmd c);

class FakeBroker {
 public:
  FakeBroker();

  const std::string& endpoint() const { return endpoint_; }

  // While the broker waits for a message it sends HEARTBEAT every
  // `interval` to the last peer that sent READY (as a live broker does), so
  // the worker does not declare it dead. Off: the broker stays silent.
  void keepalive(bool on, std::chrono::milliseconds interval = 50ms) {
    keepalive_ = on;
    keepalive_interval_ = interval;
  }

  // The next message within `timeout`, heartbeats included; nullopt on timeout.
  std::optional<WorkerMsg> recv(std::chrono::milliseconds timeout);
  // Keeps the broker side alive (receiving, keepalives) until `done()` holds;
  // messages other than heartbeats are kept for recv()/next(). Returns false
  // (and fails the test, naming `what`) on timeout.
  bool pump_until(const std::function<bool()>& done, std::string_view what,
                  std::chrono::milliseconds timeout = 10s);
  // The next message that is not a HEARTBEAT; a test failure (and nullopt)
  // on timeout.
  std::optional<WorkerMsg> next(std::chrono::milliseconds timeout = 10s);
  // next(), which must carry command `cmd` (a test failure otherwise).
  std::optional<WorkerMsg> expect(proto::WorkerCmd cmd, std::chrono::milliseconds timeout = 10s);

  // Waits for `n` HEARTBEATs from `peer`; fails the test on any other
  // message or on timeout. Returns whether it saw them.
  bool expect_heartbeats(const std::string& peer, int n, std::chrono::milliseconds timeout = 10s);

  void send(const std::string& peer, proto::WorkerCmd cmd, const std::string& body,
            const std::vector<std::string>& blobs = {});
  void send_job(const std::string& peer, const proto::JobAssign& job,
                const std::vector<std::string>& blobs = {});
  void send_cancel(const std::string& peer, const std::string& job);

  const std::string& last_ready_peer() const { return ready_peer_; }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::string endpoint_;
  bool keepalive_ = true;
  std::chrono::milliseconds keepalive_interval_ = 50ms;
  std::chrono::steady_clock::time_point next_keepalive_{};
  std::string ready_peer_;
  std::deque<WorkerMsg> backlog_;

  std::optional<WorkerMsg> recv_socket(std::chrono::milliseconds timeout);
};

// A job as the broker would assign it.
proto::JobAssign make_job(const std::string& id, const std::string& service = "test",
                          ValueMap params = {});

// A one-shot gate: wait() blocks until open() (bounded).
class Gate {
 public:
  void open();
  bool wait(std::chrono::milliseconds timeout = 20s);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A counter tests wait on (bounded).
class Counter {
 public:
  void add(int n = 1);
  int value();

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int v_ = 0;
};

// A Worker serving on its own thread; stop()s and joins on destruction.
class RunningWorker {
 public:
  RunningWorker(worker::Service& service, worker::WorkerOptions options);
  ~RunningWorker();
  worker::Worker& worker() { return worker_; }
  // Waits until run() has returned.
  bool wait_returned(std::chrono::milliseconds timeout = 10s);

 private:
  worker::Worker worker_;
  std::mutex m_;
  std::condition_variable cv_;
  bool returned_ = false;
  std::thread thread_;
};

// Options for a test worker against `broker`: fast heartbeats and
// reconnects, no signal handlers.
worker::WorkerOptions test_options(const FakeBroker& broker);

}  // namespace mmgen::worker_test

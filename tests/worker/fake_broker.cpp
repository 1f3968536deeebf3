#include "fake_broker.hpp"

#include <gtest/gtest.h>

#include "mmgen/zmq_util.hpp"

namespace mmgen::worker_test {

std::string_view name_of(proto::WorkerCmd c) { return proto::to_string(c); }

FakeBroker::FakeBroker() : sock_(ctx_, zmq::socket_type::router) {
  sock_.set(zmq::sockopt::linger, 0);
  sock_.set(zmq::sockopt::router_mandatory, 1);
  sock_.bind("tcp://127.0.0.1:*");
  endpoint_ = sock_.get(zmq::sockopt::last_endpoint);
}

std::optional<WorkerMsg> FakeBroker::recv(std::chrono::milliseconds timeout) {
  if (!backlog_.empty()) {
    WorkerMsg m = std::move(backlog_.front());
    backlog_.pop_front();
    return m;
  }
  return recv_socket(timeout);
}

bool FakeBroker::pump_until(const std::function<bool()>& done, std::string_view what,
                            std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "timed out after " << timeout.count() << " ms waiting for " << what;
      return false;
    }
    if (auto m = recv_socket(5ms); m && m->cmd != proto::WorkerCmd::Heartbeat) {
      backlog_.push_back(std::move(*m));
    }
  }
  return true;
}

std::optional<WorkerMsg> FakeBroker::recv_socket(std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    auto now = clock::now();
    if (keepalive_ && !ready_peer_.empty() && now >= next_keepalive_) {
      send(ready_peer_, proto::WorkerCmd::Heartbeat, proto::encode(proto::Heartbeat{}));
      next_keepalive_ = now + keepalive_interval_;
    }
    if (now >= deadline) return std::nullopt;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    if (keepalive_ && !ready_peer_.empty()) {
      wait = std::min(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                next_keepalive_ - now));
    }
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::max(wait, 0ms));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    auto frames = zmqu::recv_multipart(sock_, zmq::recv_flags::dontwait);
    if (!frames) continue;
    if (frames->size() < 4) {
      ADD_FAILURE() << "worker sent a message of " << frames->size() << " frames";
      continue;
    }
    WorkerMsg m;
    m.peer = zmqu::str((*frames)[0]);
    EXPECT_EQ(zmqu::str((*frames)[1]), proto::kWorkerProtocol);
    EXPECT_EQ((*frames)[2].size(), 1u);
    m.cmd = static_cast<proto::WorkerCmd>(*static_cast<const std::uint8_t*>((*frames)[2].data()));
    m.body = zmqu::str((*frames)[3]);
    for (std::size_t i = 4; i < frames->size(); ++i) m.blobs.push_back(zmqu::str((*frames)[i]));
    if (m.cmd == proto::WorkerCmd::Ready) ready_peer_ = m.peer;
    return m;
  }
}

std::optional<WorkerMsg> FakeBroker::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto m = recv(std::max(left, 0ms));
    if (!m) {
      ADD_FAILURE() << "no message from the worker within " << timeout.count() << " ms";
      return std::nullopt;
    }
    if (m->cmd != proto::WorkerCmd::Heartbeat) return m;
  }
}

std::optional<WorkerMsg> FakeBroker::expect(proto::WorkerCmd cmd, std::chrono::milliseconds timeout) {
  auto m = next(timeout);
  if (!m) {
    ADD_FAILURE() << "expected " << name_of(cmd) << " from the worker";
    return std::nullopt;
  }
  if (m->cmd != cmd) {
    std::string detail;
    if (m->cmd == proto::WorkerCmd::Error) {
      const auto e = m->as<proto::Error>();
      detail = " (" + std::string(proto::to_string(e.code)) + ": " + e.message + ")";
    }
    ADD_FAILURE() << "expected " << name_of(cmd) << ", got " << name_of(m->cmd) << detail;
    return std::nullopt;
  }
  return m;
}

bool FakeBroker::expect_heartbeats(const std::string& peer, int n, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int seen = 0;
  while (seen < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto m = recv(std::max(left, 0ms));
    if (!m) {
      ADD_FAILURE() << "saw " << seen << " of " << n << " heartbeats within " << timeout.count()
                    << " ms";
      return false;
    }
    if (m->cmd != proto::WorkerCmd::Heartbeat || m->peer != peer) {
      ADD_FAILURE() << "expected HEARTBEAT, got " << name_of(m->cmd);
      return false;
    }
    ++seen;
  }
  return true;
}

void FakeBroker::send(const std::string& peer, proto::WorkerCmd cmd, const std::string& body,
                      const std::vector<std::string>& blobs) {
  proto::Frames blob_frames;
  for (const auto& b : blobs) blob_frames.push_back(zmqu::msg(b));
  proto::Frames frames = proto::make_message(proto::kWorkerProtocol, static_cast<std::uint8_t>(cmd),
                                             body, std::move(blob_frames));
  frames.insert(frames.begin(), zmqu::msg(peer));
  // A peer that is gone (a closed session) is unroutable: that is not a test
  // failure here, the worker's own messages tell the story.
  (void)zmqu::send_multipart(sock_, std::move(frames));
}

void FakeBroker::send_job(const std::string& peer, const proto::JobAssign& job,
                          const std::vector<std::string>& blobs) {
  send(peer, proto::WorkerCmd::Job, proto::encode(job), blobs);
}

void FakeBroker::send_cancel(const std::string& peer, const std::string& job) {
  send(peer, proto::WorkerCmd::Cancel, proto::encode(proto::CancelJob{job}));
}

proto::JobAssign make_job(const std::string& id, const std::string& service, ValueMap params) {
  proto::JobAssign j;
  j.job = id;
  j.service = service;
  j.params = std::move(params);
  return j;
}

void Gate::open() {
  {
    std::lock_guard<std::mutex> g(m_);
    open_ = true;
  }
  cv_.notify_all();
}

bool Gate::wait(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(m_);
  return cv_.wait_for(lk, timeout, [this] { return open_; });
}

void Counter::add(int n) {
  {
    std::lock_guard<std::mutex> g(m_);
    v_ += n;
  }
  cv_.notify_all();
}

int Counter::value() {
  std::lock_guard<std::mutex> g(m_);
  return v_;
}


RunningWorker::RunningWorker(worker::Service& service, worker::WorkerOptions options)
    : worker_(service, std::move(options)), thread_([this] {
        try {
          worker_.run();
        } catch (const std::exception& e) {
          ADD_FAILURE() << "Worker::run threw: " << e.what();
        }
        {
          std::lock_guard<std::mutex> g(m_);
          returned_ = true;
        }
        cv_.notify_all();
      }) {}

RunningWorker::~RunningWorker() {
  worker_.stop();
  thread_.join();
}

bool RunningWorker::wait_returned(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lk(m_);
  return cv_.wait_for(lk, timeout, [this] { return returned_; });
}

worker::WorkerOptions test_options(const FakeBroker& broker) {
  worker::WorkerOptions o;
  o.broker = broker.endpoint();
  o.heartbeat_ms = 50;
  o.liveness = 40;  // 2 s: tests about silence set their own
  o.reconnect_min_ms = 20;
  o.reconnect_max_ms = 100;
  o.grace_ms = 10000;
  o.handle_signals = false;
  return o;
}

}  // namespace mmgen::worker_test

// The loop: set-up and recovery, the iteration, housekeeping, sending.
#include "loop.hpp"
#include "loop_incoming.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "mmgen/codec.hpp"
#include "mmgen/log.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::broker {

using proto::ErrorCode;
using proto::ProtocolError;
using Frames = std::vector<zmq::message_t>;

namespace {

constexpr std::int64_t kMaxPollMs = 100;            // bounds how late a stop request is seen
constexpr std::int64_t kPublishEveryMs = 500;
constexpr std::int64_t kCollectEveryMs = 60'000;
constexpr std::size_t kCollectBatch = 1000;
constexpr std::uint64_t kOutboxFlushBytes = 64ull << 20;  // flush early rather than hold more
constexpr std::uint64_t kFrameSlack = 1ull << 20;  // frames a bit over a limit get a typed error

DispatcherConfig with_wall_clock(DispatcherConfig c, const Clock& clock) {
  c.unix_at_clock_zero = unix_seconds() - double(clock.now_ms()) / 1000.0;
  return c;
}

}  // namespace

// ---- set-up -------------------------------------------------------------------------

Loop::Loop(LoopConfig cfg, zmq::context_t& ctx)
    : cfg_(std::move(cfg)),
      journal_(cfg_.data_dir),
      blobs_(cfg_.data_dir / "blobs", journal_),
      dispatcher_(with_wall_clock(cfg_.dispatcher, clock_), clock_, journal_),
      clients_(ctx, zmq::socket_type::router),
      workers_(ctx, zmq::socket_type::router) {
  client_limits_.max_input_bytes = cfg_.max_input_bytes;
  worker_limits_.max_result_bytes = cfg_.max_result_bytes;
  started_ms_ = clock_.now_ms();

  // Recover before binding, so nobody talks to a broker that lacks its state.
  dispatcher_.restore(journal_.load_unfinished());
  drain(nullptr);
  journal_.commit();
  sweep_orphan_blobs();
  housekeeping();
  journal_.commit();
  for (auto& f : after_commit_) f();
  after_commit_.clear();
  to_clients_.clear();  // restored jobs have no subscribers yet; nothing to send

  const auto cap = [](std::uint64_t limit, std::uint64_t body) {
    return std::int64_t(std::max(limit, body) + kFrameSlack);
  };
  zmqu::configure_router(clients_, cap(cfg_.max_input_bytes, client_limits_.max_body_bytes));
  zmqu::configure_router(workers_, cap(cfg_.max_result_bytes, worker_limits_.max_body_bytes));
  clients_.bind(cfg_.clients_endpoint);
  workers_.bind(cfg_.workers_endpoint);
}

Loop::~Loop() = default;

std::string Loop::clients_endpoint() const { return clients_.get(zmq::sockopt::last_endpoint); }
std::string Loop::workers_endpoint() const { return workers_.get(zmq::sockopt::last_endpoint); }

// Input files written for a SUBMIT whose transaction never committed (crash)
// belong to no job.
void Loop::sweep_orphan_blobs() {
  std::size_t removed = 0;
  for (const auto& job : blobs_.job_folders()) {
    if (journal_.find(job)) continue;
    blobs_.remove_files(job);
    ++removed;
  }
  if (removed) log::info("orphan_blobs_removed", {{"jobs", removed}});
}

// ---- the loop -----------------------------------------------------------------------

void Loop::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    const std::int64_t now = clock_.now_ms();
    const std::int64_t wake = std::min({dispatcher_.next_wakeup_ms(), next_publish_ms_, next_collect_ms_});
    const std::int64_t timeout = std::clamp<std::int64_t>(wake - now, 0, kMaxPollMs);
    zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                               {workers_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(timeout));
      // Alternate sockets so neither starves; workers first (answers free
      // slots). A socket is read until it is empty (poll said which have
      // something); what came meanwhile on the other waits for the next poll,
      // which returns at once.
      bool from_workers = items[1].revents & ZMQ_POLLIN;
      bool from_clients = items[0].revents & ZMQ_POLLIN;
      early_flush_ = true;
      for (std::size_t n = 0; n < cfg_.batch && (from_workers || from_clients); ++n) {
        if (from_workers) {
          if (auto m = zmqu::recv_multipart(workers_, zmq::recv_flags::dontwait))
            handle_worker(std::move(*m));
          else
            from_workers = false;
        }
        if (from_clients) {
          if (auto m = zmqu::recv_multipart(clients_, zmq::recv_flags::dontwait))
            handle_client(std::move(*m));
          else
            from_clients = false;
        }
        if (outbox_bytes_ > kOutboxFlushBytes) break;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal: fall through to commit and flush
    }
    for (const auto& routing : unreachable_workers_) {
      dispatcher_.worker_lost(routing);
      drain(nullptr);
    }
    unreachable_workers_.clear();
    if (clock_.now_ms() >= dispatcher_.next_wakeup_ms()) {
      dispatcher_.tick();
      drain(nullptr);
    }
    housekeeping();
    flush(to_workers_, true);
    journal_.commit();
    for (auto& f : after_commit_) f();
    after_commit_.clear();
    flush(to_clients_, false);
  }
  flush(to_workers_, true);
  journal_.commit();
  flush(to_clients_, false);
  log::info("stopped", {{"jobs_in_memory", dispatcher_.jobs_in_memory()}});
}

void Loop::housekeeping() {
  const std::int64_t now = clock_.now_ms();
  if (now >= next_collect_ms_) {
    auto ids = journal_.collect_expired(unix_seconds() - cfg_.result_ttl_s, kCollectBatch);
    for (const auto& id : ids) {
      dispatcher_.forget(id);
      after_commit_.push_back([this, id] { blobs_.remove_files(id); });
    }
    if (!ids.empty()) log::info("results_collected", {{"jobs", ids.size()}});
    next_collect_ms_ = now + (ids.size() == kCollectBatch ? 1000 : kCollectEveryMs);
  }
  if (now >= next_publish_ms_) {
    next_publish_ms_ = now + kPublishEveryMs;
    if (cfg_.publish_metrics) cfg_.publish_metrics(metrics());
  }
}

MetricsSnapshot Loop::metrics() const {
  MetricsSnapshot m = dispatcher_.metrics();
  m.client_messages = client_messages_;
  m.worker_messages = worker_messages_;
  m.malformed_messages = malformed_;
  m.send_failures = send_failures_;
  m.uptime_s = double(clock_.now_ms() - started_ms_) / 1000.0;
  return m;
}

void Loop::note_malformed(const char* from, const ProtocolError& e) {
  ++malformed_;
  const std::int64_t now = clock_.now_ms();
  if (now < next_malformed_log_ms_) return;  // at most one line a second under a flood
  next_malformed_log_ms_ = now + 1000;
  log::warn("malformed_message", {{"from", from}, {"code", proto::to_string(e.code())},
                                  {"error", e.what()}, {"total", malformed_}});
}

// ---- sending --------------------------------------------------------------------------

void Loop::queue(bool to_worker, const std::string& routing, std::uint8_t cmd, zmq::message_t body,
                 Frames blobs) {
  const std::string_view protocol = to_worker ? proto::kWorkerProtocol : proto::kClientProtocol;
  Frames frames;
  frames.reserve(4 + blobs.size());
  frames.emplace_back(routing.data(), routing.size());
  frames.emplace_back(protocol.data(), protocol.size());
  frames.emplace_back(&cmd, 1);
  outbox_bytes_ += body.size();
  frames.push_back(std::move(body));
  for (auto& b : blobs) {
    outbox_bytes_ += b.size();
    frames.push_back(std::move(b));
  }
  (to_worker ? to_workers_ : to_clients_).push_back(std::move(frames));
}

void Loop::flush(Outbox& box, bool to_worker) {
  for (auto& frames : box) {
    std::string routing = to_worker ? zmqu::str(frames.front()) : std::string();
    if (zmqu::send_multipart(to_worker ? workers_ : clients_, std::move(frames), true)) continue;
    // The peer is gone or not reading. A client's loss is its own (it can
    // ATTACH again); a worker's jobs must move on, next iteration.
    if (to_worker) unreachable_workers_.push_back(std::move(routing));
    ++send_failures_;
    const std::int64_t now = clock_.now_ms();
    if (now >= next_send_failure_log_ms_) {
      next_send_failure_log_ms_ = now + 1000;
      log::warn("send_failed", {{"to", to_worker ? "worker" : "client"}, {"total", send_failures_}});
    }
  }
  box.clear();
  if (!to_worker) outbox_bytes_ = 0;
}

}  // namespace mmgen::broker

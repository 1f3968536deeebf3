// The broker's socket loop: two ROUTER sockets, the journal, the blob store
// and the dispatcher, glued thinly. One iteration:
//   poll (timeout = next dispatcher deadline) -> read a batch of messages,
//   each decoded and handed to the dispatcher, its actions executed at once:
//   messages to workers first (the first message's sent right away), then
//   journal writes (into one open transaction) and client events (into an
//   outbox) -> tick -> send to workers -> commit the journal -> send to clients.
// So ACCEPTED and every other client event leave only after their journal
// rows are committed, with one commit per batch instead of one per job
// (group commit). Worker-bound messages need no such wait (a JOB sent just
// before a crash is at worst run again or dropped, and no client heard of
// it), so a worker gets its JOB before the broker even writes the job's row,
// and runs it while the broker writes and commits.
//
// loop.cpp: set-up, the iteration, sending; loop_receive.cpp: decoding and
// the dispatcher calls; loop_actions.cpp: executing the dispatcher's actions.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "blob_store.hpp"
#include "dispatcher.hpp"
#include "journal.hpp"
#include "metrics.hpp"
#include "mmgen/clock.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::broker {

struct LoopConfig {
  std::string clients_endpoint = "tcp://127.0.0.1:5555";
  std::string workers_endpoint = "tcp://127.0.0.1:5556";
  std::filesystem::path data_dir = "./data/broker";
  std::uint64_t max_input_bytes = 64ull << 20;
  std::uint64_t max_result_bytes = 256ull << 20;
  double result_ttl_s = 24 * 3600;
  DispatcherConfig dispatcher;
  std::size_t batch = 256;  // messages per socket per iteration
  // Called with a fresh snapshot about twice a second (from the loop thread).
  std::function<void(MetricsSnapshot)> publish_metrics;
};

class Loop {
 public:
  // Opens the journal and blob store, restores unfinished jobs, binds both
  // sockets. Throws (JournalError, BlobError, zmq::error_t) if any step fails.
  Loop(LoopConfig cfg, zmq::context_t& ctx);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Serves until `stop` becomes true (checked at least every 100 ms and after
  // every interrupted poll).
  void run(const std::atomic<bool>& stop);

  // Bound endpoints (a "*" port resolved), for logs and tests.
  std::string clients_endpoint() const;
  std::string workers_endpoint() const;
  MetricsSnapshot metrics() const;

 private:
  struct Incoming;  // the message being handled
  using Outbox = std::vector<std::vector<zmq::message_t>>;  // messages, routing id first

  void handle_client(std::vector<zmq::message_t>&& frames);
  void handle_worker(std::vector<zmq::message_t>&& frames);
  void handle_worker_body(const std::string& routing, Incoming& in, std::uint8_t command);
  void drain(Incoming* in);
  void store_pending_result(Incoming& in);
  // Each returns false when the rest of the current action batch is void.
  bool exec(PersistJob& a, Incoming* in);
  bool exec(StoreInputs& a, Incoming* in);
  bool exec(SendJob& a, Incoming* in);
  bool exec(SendCancel& a, Incoming* in);
  bool exec(SendHeartbeat& a, Incoming* in);
  bool exec(SendDisconnect& a, Incoming* in);
  bool exec(Notify& a, Incoming* in);
  void note_malformed(const char* from, const proto::ProtocolError& e);
  void housekeeping();
  void flush(Outbox& box, bool to_worker);
  void sweep_orphan_blobs();
  // Queues [routing][protocol][command][body][blobs...] for sending after the commit.
  void queue(bool to_worker, const std::string& routing, std::uint8_t cmd, zmq::message_t body,
             std::vector<zmq::message_t> blobs = {});
  void queue(bool to_worker, const std::string& routing, std::uint8_t cmd, const std::string& body) {
    queue(to_worker, routing, cmd, zmq::message_t(body.data(), body.size()));
  }

  LoopConfig cfg_;
  SteadyClock clock_;
  Journal journal_;
  BlobStore blobs_;
  Dispatcher dispatcher_;
  zmq::socket_t clients_;
  zmq::socket_t workers_;
  proto::Limits client_limits_, worker_limits_;
  std::vector<Action> pending_;
  Outbox to_workers_, to_clients_;
  std::vector<std::function<void()>> after_commit_;  // file removals
  std::vector<std::string> unreachable_workers_;     // sends failed: gone
  std::uint64_t outbox_bytes_ = 0;
  // The first worker-bound messages of an iteration leave before the journal
  // writes (drain); later ones with the rest, before the commit, so a burst
  // wakes the socket's I/O thread once rather than per message.
  bool early_flush_ = false;
  std::int64_t started_ms_ = 0;
  std::int64_t next_publish_ms_ = 0;
  std::int64_t next_collect_ms_ = 0;
  std::int64_t next_malformed_log_ms_ = 0;
  std::int64_t next_send_failure_log_ms_ = 0;
  std::uint64_t client_messages_ = 0, worker_messages_ = 0, malformed_ = 0, send_failures_ = 0;
};

}  // namespace mmgen::broker

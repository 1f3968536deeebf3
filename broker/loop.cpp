#include "loop.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "mmgen/codec.hpp"
#include "mmgen/log.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::broker {

using proto::ClientCmd;
using proto::ErrorCode;
using proto::EventCmd;
using proto::ProtocolError;
using proto::WorkerCmd;
using Frames = std::vector<zmq::message_t>;

namespace {

constexpr std::int64_t kMaxPollMs = 100;            // bounds how late a stop request is seen
constexpr std::int64_t kPublishEveryMs = 500;
constexpr std::int64_t kCollectEveryMs = 60'000;
constexpr std::size_t kCollectBatch = 1000;
constexpr std::uint64_t kOutboxFlushBytes = 64ull << 20;  // flush early rather than hold more
constexpr std::uint64_t kFrameSlack = 1ull << 20;  // frames a bit over a limit get a typed error

std::string hex(std::uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

std::string_view view(const zmq::message_t& m) {
  return {static_cast<const char*>(m.data()), m.size()};
}

// Reads `req` from a body that failed to decode as a whole, for the error reply.
std::uint64_t peek_req(std::string_view body) {
  try {
    return proto::decode_as<proto::WorkersReq>(body).req;
  } catch (...) {
    return 0;
  }
}

// Reads `job` from a worker body that failed to decode as a whole.
std::string peek_job(std::string_view body) {
  try {
    return proto::decode_as<proto::CancelJob>(body).job;
  } catch (...) {
    return {};
  }
}

void expect_no_blobs(const Frames& blobs) {
  if (!blobs.empty())
    throw ProtocolError(ErrorCode::invalid_request,
                        "unexpected blob frames (" + std::to_string(blobs.size()) + ")");
}

template <class T> constexpr EventCmd event_cmd();
template <> constexpr EventCmd event_cmd<proto::Accepted>() { return EventCmd::Accepted; }
template <> constexpr EventCmd event_cmd<proto::Queued>() { return EventCmd::Queued; }
template <> constexpr EventCmd event_cmd<proto::Started>() { return EventCmd::Started; }
template <> constexpr EventCmd event_cmd<proto::Error>() { return EventCmd::Error; }
template <> constexpr EventCmd event_cmd<proto::Cancelled>() { return EventCmd::Cancelled; }
template <> constexpr EventCmd event_cmd<proto::JobInfo>() { return EventCmd::JobInfo; }
template <> constexpr EventCmd event_cmd<proto::JobList>() { return EventCmd::JobList; }
template <> constexpr EventCmd event_cmd<proto::WorkerList>() { return EventCmd::WorkerList; }

DispatcherConfig with_wall_clock(DispatcherConfig c, const Clock& clock) {
  c.unix_at_clock_zero = unix_seconds() - double(clock.now_ms()) / 1000.0;
  return c;
}

}  // namespace

// The message being handled; actions that say "the frames in hand" use it.
struct Loop::Incoming {
  std::string routing;
  std::uint64_t req = 0;
  zmq::message_t body;
  Frames blobs;
  std::string inputs_of;     // the job whose stored inputs `blobs` are
  std::string inline_inputs;  // their small blobs, packed, for the job's row
  bool blobs_taken = false;  // moved on to a JOB or a relay
  bool body_taken = false;
};

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
  outbox_.clear();  // restored jobs have no subscribers yet; nothing to send

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
      // Alternate sockets so neither starves; workers first (answers free slots).
      for (std::size_t n = 0; n < cfg_.batch; ++n) {
        bool any = false;
        if (auto m = zmqu::recv_multipart(workers_, zmq::recv_flags::dontwait)) {
          handle_worker(std::move(*m));
          any = true;
        }
        if (auto m = zmqu::recv_multipart(clients_, zmq::recv_flags::dontwait)) {
          handle_client(std::move(*m));
          any = true;
        }
        if (!any || outbox_bytes_ > kOutboxFlushBytes) break;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal: fall through to commit and flush
    }
    if (clock_.now_ms() >= dispatcher_.next_wakeup_ms()) {
      dispatcher_.tick();
      drain(nullptr);
    }
    housekeeping();
    journal_.commit();
    for (auto& f : after_commit_) f();
    after_commit_.clear();
    flush();
  }
  journal_.commit();
  flush();
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

// ---- clients ------------------------------------------------------------------------

void Loop::handle_client(Frames&& frames) {
  ++client_messages_;
  if (frames.size() < 2) return;  // a bare routing frame: nothing to answer
  Incoming in;
  in.routing = zmqu::str(frames.front());
  frames.erase(frames.begin());

  auto reject = [&](std::uint64_t req, const ProtocolError& e) {
    note_malformed("client", e);
    queue(false, in.routing, std::uint8_t(EventCmd::Error),
          proto::encode(proto::Error{req, "", e.code(), e.what()}));
  };

  proto::Envelope env;
  try {
    env = proto::parse_envelope(std::move(frames), proto::kClientProtocol, client_limits_);
  } catch (const ProtocolError& e) {
    return reject(0, e);
  }
  const std::string_view body = env.body_view();
  try {
    switch (static_cast<ClientCmd>(env.command)) {
      case ClientCmd::Submit: {
        auto s = proto::decode_as<proto::Submit>(body, client_limits_);
        in.req = s.req;
        proto::check_blobs(s.inputs, env.blobs, client_limits_.max_input_bytes);
        in.blobs = std::move(env.blobs);
        dispatcher_.submit(in.routing, std::move(s));
        break;
      }
      case ClientCmd::Cancel:
      case ClientCmd::Status:
      case ClientCmd::Attach:
      case ClientCmd::Fetch: {
        auto r = proto::decode_as<proto::JobRef>(body, client_limits_);
        in.req = r.req;
        expect_no_blobs(env.blobs);
        switch (static_cast<ClientCmd>(env.command)) {
          case ClientCmd::Cancel: dispatcher_.cancel(in.routing, r); break;
          case ClientCmd::Status: dispatcher_.status(in.routing, r); break;
          case ClientCmd::Attach: dispatcher_.attach(in.routing, r); break;
          default: dispatcher_.fetch(in.routing, r); break;
        }
        break;
      }
      case ClientCmd::List: {
        auto r = proto::decode_as<proto::ListReq>(body, client_limits_);
        in.req = r.req;
        expect_no_blobs(env.blobs);
        dispatcher_.list(in.routing, r);
        break;
      }
      case ClientCmd::Workers: {
        auto r = proto::decode_as<proto::WorkersReq>(body, client_limits_);
        in.req = r.req;
        expect_no_blobs(env.blobs);
        dispatcher_.workers(in.routing, r);
        break;
      }
      default:
        throw ProtocolError(ErrorCode::invalid_request, "unknown command " + hex(env.command));
    }
  } catch (const ProtocolError& e) {
    return reject(in.req ? in.req : peek_req(body), e);
  }
  drain(&in);
}

// ---- workers ------------------------------------------------------------------------

void Loop::handle_worker(Frames&& frames) {
  ++worker_messages_;
  if (frames.size() < 2) return;
  Incoming in;
  in.routing = zmqu::str(frames.front());
  frames.erase(frames.begin());

  proto::Envelope env;
  try {
    env = proto::parse_envelope(std::move(frames), proto::kWorkerProtocol, worker_limits_);
  } catch (const ProtocolError& e) {
    note_malformed("worker", e);
    dispatcher_.worker_seen(in.routing);  // alive if known; told to log in if not
    return drain(nullptr);
  }
  const std::uint8_t command = env.command;
  in.body = std::move(env.body);
  in.blobs = std::move(env.blobs);
  try {
    handle_worker_body(in.routing, in, command);
  } catch (const ProtocolError& e) {
    note_malformed("worker", e);
    dispatcher_.worker_seen(in.routing);
    // A broken answer would leave its job running forever: fail it instead.
    const auto cmd = static_cast<WorkerCmd>(command);
    if (cmd == WorkerCmd::Result || cmd == WorkerCmd::Error) {
      const std::string job = peek_job(view(in.body));
      if (!job.empty() && dispatcher_.holds_lease(in.routing, job))
        dispatcher_.abort(job, e.code(),
                          "worker sent a malformed " + std::string(proto::to_string(cmd)) + ": " +
                              e.what());
    }
  }
  drain(&in);
}

void Loop::handle_worker_body(const std::string& routing, Incoming& in, std::uint8_t command) {
  const std::string_view body = view(in.body);
  auto dropped = [&](Verdict v, std::string_view what, const std::string& job) {
    if (v != Verdict::accepted)
      log::info("worker_message_dropped",
                {{"what", what}, {"job", job}, {"reason", to_string(v)}});
  };
  switch (static_cast<WorkerCmd>(command)) {
    case WorkerCmd::Ready: {
      auto r = proto::decode_as<proto::Ready>(body, worker_limits_);
      expect_no_blobs(in.blobs);
      dispatcher_.worker_ready(routing, std::move(r));
      return;
    }
    case WorkerCmd::Heartbeat:
      dispatcher_.worker_seen(routing);
      return;
    case WorkerCmd::Progress: {
      auto p = proto::decode_as<proto::Progress>(body, worker_limits_);
      std::vector<proto::BlobMeta> meta;
      if (p.preview) meta.push_back(*p.preview);
      proto::check_blobs(meta, in.blobs, worker_limits_.max_result_bytes);
      Verdict v = dispatcher_.worker_progress(routing, p.job);
      if (v != Verdict::accepted)
        log::debug("worker_message_dropped", {{"what", "PROGRESS"}, {"job", p.job}, {"reason", to_string(v)}});
      return;
    }
    case WorkerCmd::Partial: {
      auto p = proto::decode_as<proto::Partial>(body, worker_limits_);
      expect_no_blobs(in.blobs);
      Verdict v = dispatcher_.worker_partial(routing, p.job);
      if (v != Verdict::accepted)
        log::debug("worker_message_dropped", {{"what", "PARTIAL"}, {"job", p.job}, {"reason", to_string(v)}});
      return;
    }
    case WorkerCmd::Result: {
      auto r = proto::decode_as<proto::Result>(body, worker_limits_);
      proto::check_blobs(r.outputs, in.blobs, worker_limits_.max_result_bytes);
      if (dispatcher_.wants_result(routing, r.job)) {
        // Stored before the job is marked succeeded, in the same transaction.
        std::string packed;
        try {
          packed = blobs_.put(r.job, BlobDir::out, in.blobs);
        } catch (const BlobError& e) {
          log::error("result_not_stored", {{"job", r.job}, {"error", e.what()}});
          blobs_.remove_files(r.job, BlobDir::out);
          dispatcher_.worker_seen(routing);
          dispatcher_.abort(r.job, ErrorCode::internal,
                            std::string("broker could not store the result: ") + e.what());
          return;
        }
        journal_.store_result(r.job, body, packed);
      }
      dropped(dispatcher_.worker_result(routing, r.job), "RESULT", r.job);
      return;
    }
    case WorkerCmd::Error: {
      auto e = proto::decode_as<proto::Error>(body, worker_limits_);
      expect_no_blobs(in.blobs);
      dropped(dispatcher_.worker_error(routing, e), "ERROR", e.job);
      return;
    }
    case WorkerCmd::Disconnect:
      dispatcher_.worker_disconnect(routing);
      return;
    default:
      throw ProtocolError(ErrorCode::invalid_request,
                          "unexpected command " + hex(command) + " from a worker");
  }
}

// ---- actions ------------------------------------------------------------------------

void Loop::drain(Incoming* in) {
  while (!dispatcher_.actions().empty()) {
    pending_.clear();
    pending_.swap(dispatcher_.actions());
    for (auto& a : pending_)
      if (!std::visit([&](auto& x) { return exec(x, in); }, a)) break;
  }
  pending_.clear();
}

bool Loop::exec(PersistJob& a, Incoming* in) {
  const std::string& id = a.spec->id;
  if (a.is_new)
    journal_.insert(*a.spec, a.status, in && in->inputs_of == id ? in->inline_inputs : "");
  else
    journal_.update(id, a.status);  // a final status drops the row's inline inputs
  // A final job's inputs will never be sent again; files go once that is committed.
  if (proto::is_final(a.status.state) && blobs_.has_files(a.spec->inputs))
    after_commit_.push_back([this, id] { blobs_.remove_files(id, BlobDir::in); });
  return true;
}

bool Loop::exec(StoreInputs& a, Incoming* in) {
  if (!in) return true;
  try {
    in->inline_inputs = blobs_.put(a.job, BlobDir::in, in->blobs);
    in->inputs_of = a.job;
    return true;
  } catch (const BlobError& e) {
    // Nothing of this SUBMIT has been executed yet: undo it and say so.
    log::error("inputs_not_stored", {{"job", a.job}, {"error", e.what()}});
    blobs_.remove_files(a.job);
    dispatcher_.retract(a.job);
    queue(false, in->routing, std::uint8_t(EventCmd::Error),
          proto::encode(proto::Error{in->req, "", ErrorCode::internal,
                                     std::string("broker could not store the inputs: ") + e.what()}));
    return false;
  }
}

bool Loop::exec(SendJob& a, Incoming* in) {
  const JobSpec& spec = *a.spec;
  proto::JobAssign job;
  job.job = spec.id;
  job.service = spec.service;
  job.model = spec.model;
  job.params = spec.params;
  job.inputs = spec.inputs;
  job.attempt = a.attempt;
  job.timeout_ms = a.timeout_ms;

  Frames blobs;
  if (in && !in->blobs_taken && in->inputs_of == spec.id) {
    blobs = std::move(in->blobs);  // just stored: send the frames in hand
    in->blobs_taken = true;
  } else if (spec.has_input_bytes()) {
    try {
      blobs = blobs_.get(spec.id, BlobDir::in, spec.inputs);
    } catch (const BlobError& e) {
      log::error("inputs_unreadable", {{"job", spec.id}, {"error", e.what()}});
      dispatcher_.abort(spec.id, ErrorCode::internal,
                        std::string("broker could not read the inputs: ") + e.what());
      return true;
    }
  } else {
    blobs.resize(spec.inputs.size());  // all empty
  }
  const std::string body = proto::encode(job);
  queue(true, a.routing, std::uint8_t(WorkerCmd::Job), zmq::message_t(body.data(), body.size()),
        std::move(blobs));
  return true;
}

bool Loop::exec(SendCancel& a, Incoming*) {
  queue(true, a.routing, std::uint8_t(WorkerCmd::Cancel), proto::encode(proto::CancelJob{a.job}));
  return true;
}

bool Loop::exec(SendHeartbeat& a, Incoming*) {
  static const std::string body = proto::encode(proto::Heartbeat{});
  queue(true, a.routing, std::uint8_t(WorkerCmd::Heartbeat), body);
  return true;
}

bool Loop::exec(SendDisconnect& a, Incoming*) {
  queue(true, a.routing, std::uint8_t(WorkerCmd::Disconnect),
        proto::encode(proto::Disconnect{a.reason}));
  return true;
}

bool Loop::exec(Notify& n, Incoming* in) {
  std::visit(
      [&](auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Relay>) {
          // The worker's message, forwarded as it came.
          if (!in || in->body_taken) {
            log::error("relay_without_message", {{"client_bytes", n.client.size()}});
            return;
          }
          in->body_taken = in->blobs_taken = true;
          queue(false, n.client, std::uint8_t(e.cmd), std::move(in->body), std::move(in->blobs));
        } else if constexpr (std::is_same_v<T, StoredResult>) {
          auto fail = [&](const std::string& why) {
            log::error("stored_result_unreadable", {{"job", e.job}, {"error", why}});
            queue(false, n.client, std::uint8_t(EventCmd::Error),
                  proto::encode(proto::Error{e.req, e.job, ErrorCode::internal,
                                             "stored result unreadable: " + why}));
          };
          auto body = journal_.load_result(e.job);
          if (!body) return fail("no result body in the journal");
          try {
            auto r = proto::decode_as<proto::Result>(*body, worker_limits_);
            Frames blobs = blobs_.get(e.job, BlobDir::out, r.outputs);
            queue(false, n.client, std::uint8_t(EventCmd::Result),
                  zmq::message_t(body->data(), body->size()), std::move(blobs));
          } catch (const std::exception& ex) {
            fail(ex.what());
          }
        } else {
          queue(false, n.client, std::uint8_t(event_cmd<T>()), proto::encode(e));
        }
      },
      n.event);
  return true;
}

// ---- sending --------------------------------------------------------------------------

void Loop::queue(bool to_worker, const std::string& routing, std::uint8_t cmd, zmq::message_t body,
                 Frames blobs) {
  const std::string_view protocol = to_worker ? proto::kWorkerProtocol : proto::kClientProtocol;
  Outgoing o{to_worker, {}};
  o.frames.reserve(4 + blobs.size());
  o.frames.emplace_back(routing.data(), routing.size());
  o.frames.emplace_back(protocol.data(), protocol.size());
  o.frames.emplace_back(&cmd, 1);
  outbox_bytes_ += body.size();
  o.frames.push_back(std::move(body));
  for (auto& b : blobs) {
    outbox_bytes_ += b.size();
    o.frames.push_back(std::move(b));
  }
  outbox_.push_back(std::move(o));
}

void Loop::flush() {
  for (auto& o : outbox_) {
    if (zmqu::send_multipart(o.to_worker ? workers_ : clients_, std::move(o.frames), true)) continue;
    // The peer is gone or not reading; its loss, not the broker's.
    ++send_failures_;
    const std::int64_t now = clock_.now_ms();
    if (now >= next_send_failure_log_ms_) {
      next_send_failure_log_ms_ = now + 1000;
      log::warn("send_failed", {{"to", o.to_worker ? "worker" : "client"}, {"total", send_failures_}});
    }
  }
  outbox_.clear();
  outbox_bytes_ = 0;
}

}  // namespace mmgen::broker

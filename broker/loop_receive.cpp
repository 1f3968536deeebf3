// The loop: decoding what arrives on the two sockets and handing it to the
// dispatcher. Bad client messages get ERROR replies; bad worker messages are
// logged and dropped (DISCONNECT for strangers).
#include <cstdio>

#include "loop.hpp"
#include "loop_incoming.hpp"
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

std::string hex(std::uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
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

}  // namespace

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
  store_pending_result(in);
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
        // Blob files now; body and small outputs go into the job's row in the
        // same transaction as its final status (exec(PersistJob)).
        try {
          in.outputs_packed = blobs_.put(r.job, BlobDir::out, in.blobs);
        } catch (const BlobError& e) {
          log::error("result_not_stored", {{"job", r.job}, {"error", e.what()}});
          blobs_.remove_files(r.job, BlobDir::out);
          dispatcher_.worker_seen(routing);
          dispatcher_.abort(r.job, ErrorCode::internal,
                            std::string("broker could not store the result: ") + e.what());
          return;
        }
        in.result_of = r.job;
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

}  // namespace mmgen::broker

// The loop: carrying out the dispatcher's actions in order. Journal writes
// go into the open transaction; sends are queued (to workers: sent before the
// commit; to clients: after it).
#include "loop.hpp"
#include "loop_incoming.hpp"
#include "mmgen/codec.hpp"
#include "mmgen/log.hpp"

namespace mmgen::broker {

using proto::ErrorCode;
using proto::EventCmd;
using proto::WorkerCmd;
using Frames = std::vector<zmq::message_t>;

namespace {

template <class T> constexpr EventCmd event_cmd();
template <> constexpr EventCmd event_cmd<proto::Accepted>() { return EventCmd::Accepted; }
template <> constexpr EventCmd event_cmd<proto::Queued>() { return EventCmd::Queued; }
template <> constexpr EventCmd event_cmd<proto::Started>() { return EventCmd::Started; }
template <> constexpr EventCmd event_cmd<proto::Error>() { return EventCmd::Error; }
template <> constexpr EventCmd event_cmd<proto::Cancelled>() { return EventCmd::Cancelled; }
template <> constexpr EventCmd event_cmd<proto::JobInfo>() { return EventCmd::JobInfo; }
template <> constexpr EventCmd event_cmd<proto::JobList>() { return EventCmd::JobList; }
template <> constexpr EventCmd event_cmd<proto::WorkerList>() { return EventCmd::WorkerList; }

}  // namespace

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

}  // namespace mmgen::broker

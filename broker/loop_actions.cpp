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

// For a message in hand, in two passes: first what goes to workers (and the
// inputs a JOB may carry), which for the iteration's first such message then
// leaves at once, then the journal writes and client events (which wait for
// the commit anyway). A worker starts its JOB while the broker writes the
// job's row; the order on disk and towards the client is unchanged, and the
// commit still precedes every client event.
void Loop::drain(Incoming* in) {
  while (!dispatcher_.actions().empty()) {
    pending_.clear();
    pending_.swap(dispatcher_.actions());
    coalesce_journal_writes(pending_);
    auto worker_side = [](const Action& a) {
      return !std::holds_alternative<PersistJob>(a) && !std::holds_alternative<Notify>(a);
    };
    auto run = [&](Action& a) { return std::visit([&](auto& x) { return exec(x, in); }, a); };
    std::size_t end = pending_.size();  // actions from a failed one on are void
    if (in) {
      for (std::size_t i = 0; i < end; ++i)
        if (worker_side(pending_[i]) && !run(pending_[i])) end = i;
      if (early_flush_ && !to_workers_.empty()) {
        flush(to_workers_, true);
        early_flush_ = false;
      }
    }
    for (std::size_t i = 0; i < end; ++i) {
      if (in && worker_side(pending_[i])) continue;  // done above
      if (!run(pending_[i])) break;
    }
  }
  pending_.clear();
}

// A SUBMIT that is dispatched at once records its job twice (queued, then
// running); both land in the same transaction, so one INSERT with the later
// status leaves the same row on disk after the commit. Nothing in between
// reads the status (the dispatcher reads the journal only for jobs it no
// longer holds; a JOB's inputs read back are the same either way). Only
// non-final later statuses are merged: a final one has side effects of its
// own in exec(PersistJob).
void coalesce_journal_writes(std::vector<Action>& actions) {
  for (std::size_t i = 0; i < actions.size(); ++i) {
    auto* first = std::get_if<PersistJob>(&actions[i]);
    if (!first || !first->is_new) continue;
    std::vector<std::size_t> later;
    bool mergeable = true;
    for (std::size_t k = i + 1; k < actions.size() && mergeable; ++k) {
      const auto* p = std::get_if<PersistJob>(&actions[k]);
      if (!p || p->spec != first->spec) continue;
      mergeable = !p->is_new && !proto::is_final(p->status.state);
      later.push_back(k);
    }
    if (!mergeable || later.empty()) continue;
    first->status = std::get<PersistJob>(actions[later.back()]).status;
    for (auto k = later.rbegin(); k != later.rend(); ++k)
      actions.erase(actions.begin() + std::ptrdiff_t(*k));
  }
}

// The RESULT in hand was not journaled with a final status (the job was
// cancelled meanwhile, or its lease ended): it is stored as it always was.
void Loop::store_pending_result(Incoming& in) {
  if (in.result_of.empty()) return;
  if (!in.body_taken) journal_.store_result(in.result_of, view(in.body), in.outputs_packed);
  in.result_of.clear();
}

bool Loop::exec(PersistJob& a, Incoming* in) {
  const std::string& id = a.spec->id;
  if (a.is_new)
    journal_.insert(*a.spec, a.status, in && in->inputs_of == id ? in->inline_inputs : "");
  else if (in && in->result_of == id && !in->body_taken &&
           a.status.state == proto::JobState::succeeded) {
    journal_.update(id, a.status, view(in->body), in->outputs_packed);
    in->result_of.clear();
  } else
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
          store_pending_result(*in);  // the body leaves now: journal it first
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

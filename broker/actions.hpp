// What the dispatcher asks the I/O loop to do. The dispatcher appends these in
// order; the loop executes them in that order, except that messages to
// workers (and StoreInputs, which a JOB may need) go first: they need no
// commit. Journal writes (PersistJob, StoreInputs) take effect in the current
// journal transaction, and the loop commits that transaction before it sends
// anything to clients, so a client never sees ACCEPTED (or any later event)
// for a state the journal lacks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "job.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::broker {

// ---- journal and blob store ------------------------------------------------------
// Write the job's row: insert the spec and status when is_new, else update the
// status. (A final job's inputs are no longer needed; the loop drops them here.)
struct PersistJob {
  std::shared_ptr<const JobSpec> spec;
  JobStatus status;
  bool is_new = false;
};
// Write the input blobs of the SUBMIT being handled (only emitted when some
// input has bytes). It comes first among that SUBMIT's actions: if it fails,
// the loop drops them all and calls Dispatcher::retract.
struct StoreInputs {
  std::string job;
};

// ---- worker socket ---------------------------------------------------------------
// JOB: the loop reads the inputs back from the blob store (or uses the SUBMIT
// frames in hand) and attaches them.
struct SendJob {
  std::string routing;
  std::shared_ptr<const JobSpec> spec;
  std::uint32_t attempt = 1;
  std::uint64_t timeout_ms = 0;  // remaining time to the deadline; 0: none
};
struct SendCancel {
  std::string routing;
  std::string job;
};
struct SendHeartbeat {
  std::string routing;
};
struct SendDisconnect {
  std::string routing;
  std::string reason;
};

// ---- client socket ---------------------------------------------------------------
// Forward the worker message being handled (PROGRESS, PARTIAL, RESULT) to the
// client unchanged: body and blob frames are moved, not re-encoded.
struct Relay {
  proto::EventCmd cmd;
};
// RESULT of a finished job, read back from the journal and the blob store
// (or ERROR{req, job, internal} if it can no longer be read).
struct StoredResult {
  std::string job;
  std::uint64_t req = 0;
};
using ClientEvent = std::variant<proto::Accepted, proto::Queued, proto::Started, proto::Error,
                                 proto::Cancelled, proto::JobInfo, proto::JobList,
                                 proto::WorkerList, Relay, StoredResult>;
struct Notify {
  std::string client;  // the client's routing id
  ClientEvent event;
};

using Action = std::variant<PersistJob, StoreInputs, SendJob, SendCancel, SendHeartbeat,
                            SendDisconnect, Notify>;

// Merges the journal writes of one batch of actions where the row on disk
// after the commit is the same: a new job's row is inserted with the last
// non-final status the batch gives it (a SUBMIT dispatched at once: queued,
// then running), and those later writes are dropped. The loop calls it on
// every batch, before executing it; nothing reads a row's status in between.
void coalesce_journal_writes(std::vector<Action>& actions);

}  // namespace mmgen::broker

// String forms of the protocol enums; they are the wire strings of PROTOCOL.md.
#include "mmgen/protocol.hpp"

namespace mmgen::proto {

std::string_view to_string(ClientCmd c) {
  switch (c) {
    case ClientCmd::Submit: return "SUBMIT";
    case ClientCmd::Cancel: return "CANCEL";
    case ClientCmd::Status: return "STATUS";
    case ClientCmd::Attach: return "ATTACH";
    case ClientCmd::Fetch: return "FETCH";
    case ClientCmd::List: return "LIST";
    case ClientCmd::Workers: return "WORKERS";
  }
  return "?";
}

std::string_view to_string(EventCmd c) {
  switch (c) {
    case EventCmd::Accepted: return "ACCEPTED";
    case EventCmd::Queued: return "QUEUED";
    case EventCmd::Started: return "STARTED";
    case EventCmd::Progress: return "PROGRESS";
    case EventCmd::Partial: return "PARTIAL";
    case EventCmd::Result: return "RESULT";
    case EventCmd::Error: return "ERROR";
    case EventCmd::Cancelled: return "CANCELLED";
    case EventCmd::JobInfo: return "JOBINFO";
    case EventCmd::JobList: return "JOBLIST";
    case EventCmd::WorkerList: return "WORKERLIST";
  }
  return "?";
}

std::string_view to_string(WorkerCmd c) {
  switch (c) {
    case WorkerCmd::Ready: return "READY";
    case WorkerCmd::Job: return "JOB";
    case WorkerCmd::Heartbeat: return "HEARTBEAT";
    case WorkerCmd::Progress: return "PROGRESS";
    case WorkerCmd::Partial: return "PARTIAL";
    case WorkerCmd::Result: return "RESULT";
    case WorkerCmd::Error: return "ERROR";
    case WorkerCmd::Cancel: return "CANCEL";
    case WorkerCmd::Disconnect: return "DISCONNECT";
  }
  return "?";
}

namespace {
constexpr std::string_view kErrorNames[] = {
    "invalid_request", "unknown_service", "unsupported", "queue_full", "too_large", "timeout",
    "cancelled",       "worker_lost",     "internal",    "not_found",  "not_finished",
};
constexpr std::string_view kStateNames[] = {"queued", "running", "succeeded", "failed", "cancelled"};
}  // namespace

std::string_view to_string(ErrorCode c) {
  auto i = static_cast<std::size_t>(c);
  return i < std::size(kErrorNames) ? kErrorNames[i] : "internal";
}

ErrorCode error_code_from_string(std::string_view s) {
  for (std::size_t i = 0; i < std::size(kErrorNames); ++i)
    if (kErrorNames[i] == s) return static_cast<ErrorCode>(i);
  return ErrorCode::internal;
}

std::string_view to_string(JobState s) {
  auto i = static_cast<std::size_t>(s);
  return i < std::size(kStateNames) ? kStateNames[i] : "queued";
}

std::optional<JobState> job_state_from_string(std::string_view s) {
  for (std::size_t i = 0; i < std::size(kStateNames); ++i)
    if (kStateNames[i] == s) return static_cast<JobState>(i);
  return std::nullopt;
}

}  // namespace mmgen::proto

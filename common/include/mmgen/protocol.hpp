// MMGP/1 — the mmgen job protocol. This header mirrors common/PROTOCOL.md:
// the command tables, error codes and message bodies are defined there, and
// every constant here carries the same name and value as in the spec.
//
// A message is a ZeroMQ multipart message (after the ROUTER's routing frame):
//   frame 0  protocol: "MMGC01" (client <-> broker) or "MMGW01" (worker <-> broker)
//   frame 1  command: one byte
//   frame 2  body: a msgpack map (fields below; unknown keys are ignored)
//   frame 3+ blobs: raw bytes, described in order by the body's blob lists
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/value.hpp"

namespace mmgen::proto {

inline constexpr std::string_view kClientProtocol = "MMGC01";
inline constexpr std::string_view kWorkerProtocol = "MMGW01";

// ---- commands ----------------------------------------------------------------
// Client -> broker requests.
enum class ClientCmd : std::uint8_t {
  Submit = 0x01,
  Cancel = 0x02,
  Status = 0x03,
  Attach = 0x04,
  Fetch = 0x05,
  List = 0x06,
  Workers = 0x07,
};
// Broker -> client events and replies.
enum class EventCmd : std::uint8_t {
  Accepted = 0x11,
  Queued = 0x12,
  Started = 0x13,
  Progress = 0x14,
  Partial = 0x15,
  Result = 0x16,
  Error = 0x17,
  Cancelled = 0x18,
  JobInfo = 0x19,    // reply to STATUS
  JobList = 0x1A,    // reply to LIST
  WorkerList = 0x1B, // reply to WORKERS
};
// Worker <-> broker.
enum class WorkerCmd : std::uint8_t {
  Ready = 0x21,      // W->B
  Job = 0x22,        // B->W
  Heartbeat = 0x23,  // both ways
  Progress = 0x24,   // W->B
  Partial = 0x25,    // W->B
  Result = 0x26,     // W->B
  Error = 0x27,      // W->B (code "cancelled" acknowledges a CANCEL)
  Cancel = 0x28,     // B->W
  Disconnect = 0x29, // both ways; B->W means "log in again"
};

std::string_view to_string(ClientCmd c);
std::string_view to_string(EventCmd c);
std::string_view to_string(WorkerCmd c);

// ---- errors --------------------------------------------------------------------
enum class ErrorCode : std::uint8_t {
  invalid_request,
  unknown_service,
  unsupported,
  queue_full,
  too_large,
  timeout,
  cancelled,
  worker_lost,
  internal,
  not_found,     // no job with that id
  not_finished,  // FETCH of a job that has no final state yet
};
std::string_view to_string(ErrorCode c);
// Unknown strings map to `internal` so a newer peer never breaks an older one.
ErrorCode error_code_from_string(std::string_view s);

// Thrown by decoders and by service handlers; becomes an ERROR reply.
class ProtocolError : public std::runtime_error {
 public:
  ProtocolError(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// ---- limits ------------------------------------------------------------------
struct Limits {
  std::uint64_t max_body_bytes = 4u << 20;         // frame 2
  std::uint64_t max_input_bytes = 64ull << 20;     // sum of blobs on SUBMIT
  std::uint64_t max_result_bytes = 256ull << 20;   // sum of blobs on RESULT
  std::uint32_t max_blobs = 1024;  // a video result: the MP4 plus one PNG per frame
  std::uint32_t max_container = 65536;  // msgpack array/map element count
  std::uint32_t max_depth = 16;
};

// ---- bodies ------------------------------------------------------------------
// A blob frame's description; the i-th entry describes blob frame 3+i.
struct BlobMeta {
  std::string name;
  std::string mime;
  std::uint64_t size = 0;
  bool operator==(const BlobMeta&) const = default;
};

inline constexpr int kMinPriority = 0;
inline constexpr int kMaxPriority = 9;
inline constexpr int kDefaultPriority = 5;  // higher runs first

struct Submit {
  std::uint64_t req = 0;  // client's tag, echoed in the direct reply
  std::string service;
  std::string model;      // empty: any worker of the service
  ValueMap params;
  std::vector<BlobMeta> inputs;
  int priority = kDefaultPriority;
  std::uint64_t timeout_ms = 0;  // 0: no deadline
  std::string key;               // idempotency key; empty: none
  bool operator==(const Submit&) const = default;
};

// CANCEL, STATUS, ATTACH, FETCH all carry a job id.
struct JobRef {
  std::uint64_t req = 0;
  std::string job;
  bool operator==(const JobRef&) const = default;
};

struct ListReq {
  std::uint64_t req = 0;
  std::string service;  // empty: all
  std::uint32_t limit = 50;
  bool operator==(const ListReq&) const = default;
};

struct WorkersReq {
  std::uint64_t req = 0;
  bool operator==(const WorkersReq&) const = default;
};

struct Accepted {
  std::uint64_t req = 0;
  std::string job;
  bool existing = false;  // idempotency key matched an earlier job
  bool operator==(const Accepted&) const = default;
};

struct Queued {
  std::string job;
  std::uint32_t position = 0;  // 0 = next to run
  std::string waiting_for;     // e.g. "no worker advertises model 'x'"
  bool operator==(const Queued&) const = default;
};

struct Started {
  std::string job;
  std::string worker;
  std::uint32_t attempt = 1;
  bool operator==(const Started&) const = default;
};

struct Progress {
  std::string job;
  std::uint32_t step = 0;
  std::uint32_t total = 0;
  double eta_s = -1;        // < 0: unknown
  std::string message;
  std::optional<BlobMeta> preview;  // if set, the first blob frame
  bool operator==(const Progress&) const = default;
};

struct Partial {
  std::string job;
  std::uint64_t seq = 0;  // per job, from 0
  ValueMap data;          // e.g. {"text": "...", "tokens": [..]}
  bool operator==(const Partial&) const = default;
};

struct Result {
  std::string job;
  std::vector<BlobMeta> outputs;
  ValueMap data;     // small inline outputs (e.g. generated text)
  ValueMap metrics;
  bool operator==(const Result&) const = default;
};

struct Error {
  std::uint64_t req = 0;
  std::string job;  // empty when the error is about a request, not a job
  ErrorCode code = ErrorCode::internal;
  std::string message;
  bool operator==(const Error&) const = default;
};

struct Cancelled {
  std::string job;
  bool operator==(const Cancelled&) const = default;
};

// Job states as strings on the wire.
enum class JobState : std::uint8_t { queued, running, succeeded, failed, cancelled };
std::string_view to_string(JobState s);
std::optional<JobState> job_state_from_string(std::string_view s);
inline bool is_final(JobState s) { return s >= JobState::succeeded; }

struct JobInfo {
  std::uint64_t req = 0;
  std::string job;
  std::string service;
  std::string model;
  JobState state = JobState::queued;
  int priority = kDefaultPriority;
  std::uint32_t attempts = 0;
  std::uint32_t position = 0;      // when queued
  std::string waiting_for;         // when queued and no eligible worker
  std::string worker;              // when running
  double created_s = 0;            // unix seconds
  double updated_s = 0;
  std::optional<Error> error;      // when failed
  bool operator==(const JobInfo&) const = default;
};

struct JobList {
  std::uint64_t req = 0;
  std::vector<JobInfo> jobs;
  bool operator==(const JobList&) const = default;
};

struct ServiceInfo {
  std::string service;
  std::uint32_t workers = 0;
  std::vector<std::string> models;
  std::uint32_t capacity = 0;  // sum of worker capacities
  std::uint32_t load = 0;      // jobs running
  std::uint32_t queued = 0;
  bool operator==(const ServiceInfo&) const = default;
};

struct WorkerList {
  std::uint64_t req = 0;
  std::vector<ServiceInfo> services;
  bool operator==(const WorkerList&) const = default;
};

// Worker side.
struct Ready {
  std::string service;
  std::vector<std::string> models;
  std::uint32_t capacity = 1;
  std::string device;   // "cpu", "cuda:0"
  std::string version;
  std::string name;     // human-readable, e.g. host:pid; not an identity
  bool operator==(const Ready&) const = default;
};

struct JobAssign {
  std::string job;
  std::string service;
  std::string model;
  ValueMap params;
  std::vector<BlobMeta> inputs;
  std::uint32_t attempt = 1;
  std::uint64_t timeout_ms = 0;  // remaining time to the deadline; 0: none
  bool operator==(const JobAssign&) const = default;
};

struct Heartbeat {
  bool operator==(const Heartbeat&) const = default;
};

struct CancelJob {
  std::string job;
  bool operator==(const CancelJob&) const = default;
};

struct Disconnect {
  std::string reason;
  bool operator==(const Disconnect&) const = default;
};

}  // namespace mmgen::proto

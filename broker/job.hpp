// The broker's record of one job, split by how it changes: the spec is fixed
// at SUBMIT and shared (never copied) between the job table, journal writes
// and dispatches; the status is small and changes with every transition.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/protocol.hpp"
#include "mmgen/value.hpp"

namespace mmgen::broker {

struct JobSpec {
  std::string id;
  std::string service;
  std::string model;  // empty: any worker of the service
  std::string key;    // idempotency key; empty: none
  ValueMap params;
  std::vector<proto::BlobMeta> inputs;
  int priority = proto::kDefaultPriority;
  std::uint64_t timeout_ms = 0;  // 0: no deadline
  double created_s = 0;          // unix seconds; the deadline is created_s + timeout

  double deadline_s() const { return timeout_ms ? created_s + double(timeout_ms) / 1000.0 : 0; }
  bool has_input_bytes() const {
    for (const auto& b : inputs)
      if (b.size) return true;
    return false;
  }
};

struct Failure {
  proto::ErrorCode code = proto::ErrorCode::internal;
  std::string message;
  bool operator==(const Failure&) const = default;
};

struct JobStatus {
  proto::JobState state = proto::JobState::queued;
  std::uint32_t attempts = 0;  // started attempts that count towards max_attempts
  std::string worker;          // broker-side id ("w3") of the current or last attempt
  double updated_s = 0;        // unix seconds
  bool cancel_requested = false;
  std::optional<Failure> failure;  // set when state == failed
  bool operator==(const JobStatus&) const = default;
};

struct JobRecord {
  std::shared_ptr<const JobSpec> spec;
  JobStatus status;
};

// Final jobs that have left the dispatcher's memory live only in the journal;
// the dispatcher reads them through this interface (the journal implements
// it; tests use a map).
class JobArchive {
 public:
  virtual ~JobArchive() = default;
  virtual std::optional<JobRecord> find(std::string_view id) = 0;
  virtual std::optional<std::string> find_id_by_key(std::string_view key) = 0;
  // Most recent first; an empty service means all.
  virtual std::vector<JobRecord> recent(std::string_view service, std::uint32_t limit) = 0;
};

}  // namespace mmgen::broker

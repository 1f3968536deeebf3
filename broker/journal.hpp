// The broker's journal: one SQLite database (DIR/journal.db) in WAL mode that
// holds every job: spec, status, result body, and its small blobs packed into
// the job's own row (see BlobStore).
//
// Durability: WAL with synchronous=NORMAL. A committed transaction is in the
// WAL file before commit() returns, so it survives a crash of the broker
// process (SIGKILL included); only an OS crash or power loss can lose the last
// transactions, and the database stays consistent even then. No fsync per job
// (checkpoints, every ~40 MB of WAL, are the only fsyncs).
//
// Writes join one open transaction (begun by the first write); the loop calls
// commit() once per iteration, before it sends anything to clients.
//
// Cost per job is what bounds the broker's rate, so the schema is lean: each
// commit writes one WAL frame per page it touched, and a job touches the
// table, its id index and (once final) the TTL index — nothing else.
//
// The connection holds an exclusive lock, so a second broker on the same data
// directory fails at start instead of corrupting the first one's state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "job.hpp"

namespace mmgen::broker {

class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class BlobDir : std::uint8_t { in = 0, out = 1 };

class Journal final : public JobArchive {
 public:
  // Opens or creates DIR/journal.db (creating DIR). Throws JournalError.
  explicit Journal(const std::filesystem::path& dir);
  ~Journal() override;
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // ---- writes (in the open transaction) ----------------------------------------
  // The whole row (an upsert); inline_inputs: the packed small input blobs.
  void insert(const JobSpec& spec, const JobStatus& status, std::string_view inline_inputs = {});
  // A final status also drops the row's inline inputs (never sent again).
  void update(const std::string& id, const JobStatus& status);
  // The RESULT body and the packed small output blobs.
  void store_result(const std::string& id, std::string_view result_body,
                    std::string_view inline_outputs = {});
  // update() and store_result() in one statement: the common end of a job.
  void update(const std::string& id, const JobStatus& status, std::string_view result_body,
              std::string_view inline_outputs);
  void commit();
  bool in_transaction() const;

  // ---- reads ---------------------------------------------------------------------
  // Unfinished jobs (queued or running) in submission order, as recorded;
  // Dispatcher::restore requeues the running ones (their worker is gone after
  // a restart) with their attempts kept, and journals that. A full scan: it
  // runs once, at start.
  std::vector<JobRecord> load_unfinished();
  std::optional<std::string> load_result(const std::string& id);
  // The packed small blobs of one direction ("" if none).
  std::string load_inline(const std::string& id, BlobDir dir);

  // JobArchive
  std::optional<JobRecord> find(std::string_view id) override;
  std::optional<std::string> find_id_by_key(std::string_view key) override;
  std::vector<JobRecord> recent(std::string_view service, std::uint32_t limit) override;

  // ---- retention -------------------------------------------------------------------
  // Deletes up to `max` final jobs that finished before cutoff_s (unix
  // seconds), rows and inline blobs; returns their ids so the caller removes
  // their blob files and forgets them.
  std::vector<std::string> collect_expired(double cutoff_s, std::size_t max);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmgen::broker

// The broker's policy as a pure state machine: jobs, per-service queues,
// workers, leases, deadlines. No sockets, threads or files; time comes from an
// injected Clock. Every input is one method call; every effect is an Action
// appended to actions(), which the I/O loop executes in order and then clears.
//
// Each public method maps to one rule of the protocol (common/PROTOCOL.md);
// the shared steps (start a job, finish a job, requeue, pump a service) are
// private helpers, so no method grows a branch per feature.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actions.hpp"
#include "job.hpp"
#include "job_queue.hpp"
#include "metrics.hpp"
#include "mmgen/clock.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::broker {

struct DispatcherConfig {
  std::vector<std::string> services{"echo"};  // known without a worker
  std::int64_t heartbeat_ms = 1000;
  std::uint32_t liveness = 3;      // heartbeat intervals of silence before a worker is dead
  std::uint32_t max_attempts = 3;  // worker losses a job survives before worker_lost
  std::size_t queue_limit = 1000;  // queued jobs per service
  std::size_t final_jobs_in_memory = 10000;  // older final jobs live only in the journal
  std::uint32_t max_capacity = 4096;         // a READY's capacity is clamped to this
  double unix_at_clock_zero = 0;  // wall time = this + clock ms / 1000 (for created/updated)
  std::function<std::string()> new_job_id;  // default: mmgen::new_job_id
};

// What became of a worker's message about a job.
enum class Verdict {
  accepted,        // applied (and forwarded to the job's subscriber)
  unknown_worker,  // sender never sent READY or was declared dead: DISCONNECT emitted, dropped
  not_leased,      // the job is not running on that worker: dropped
  released,        // an answer to a job that had already ended (timeout/cancel): slot freed, dropped
};
std::string_view to_string(Verdict v);

class Dispatcher {
 public:
  Dispatcher(DispatcherConfig config, const Clock& clock, JobArchive& archive);

  // ---- client requests (client = the client's routing id) ------------------------
  void submit(const std::string& client, proto::Submit&& s);
  void cancel(const std::string& client, const proto::JobRef& r);
  void status(const std::string& client, const proto::JobRef& r);
  void attach(const std::string& client, const proto::JobRef& r);
  void fetch(const std::string& client, const proto::JobRef& r);
  void list(const std::string& client, const proto::ListReq& r);
  void workers(const std::string& client, const proto::WorkersReq& r);

  // ---- worker messages (routing = the worker connection's routing id) ------------
  void worker_ready(const std::string& routing, proto::Ready&& r);
  // HEARTBEAT, or any message whose body could not be read: renews liveness.
  Verdict worker_seen(const std::string& routing);
  Verdict worker_progress(const std::string& routing, const std::string& job);
  Verdict worker_partial(const std::string& routing, const std::string& job);
  // Whether `job` is running on the worker at `routing` right now.
  bool holds_lease(const std::string& routing, const std::string& job) const;
  // Whether a RESULT from `routing` for `job` would be kept: the loop stores
  // its body and blobs first (journal + blob store), then calls worker_result.
  bool wants_result(const std::string& routing, const std::string& job) const;
  Verdict worker_result(const std::string& routing, const std::string& job);
  Verdict worker_error(const std::string& routing, const proto::Error& e);
  void worker_disconnect(const std::string& routing);
  // The loop could not deliver to this worker (its connection is gone): the
  // same as missing its heartbeats, without waiting for them.
  void worker_lost(const std::string& routing);

  // ---- time and recovery -------------------------------------------------------
  // Heartbeats due, dead workers, job deadlines. Call at next_wakeup_ms() or later.
  void tick();
  std::int64_t next_wakeup_ms() const;
  // Unfinished jobs from the journal after a restart; running ones are requeued
  // with their attempt count kept. Call before any other input.
  void restore(std::vector<JobRecord> jobs);
  // A final job whose result was collected (TTL): forget it.
  void forget(const std::string& job);

  // ---- the loop could not carry out an action ------------------------------------
  // Undoes a SUBMIT whose actions were discarded unexecuted (its inputs could
  // not be stored): the job is gone as if never submitted.
  void retract(const std::string& job);
  // Fails a job with `code` because the broker could not go on with it (inputs
  // unreadable for a JOB, result not storable, a malformed answer from its
  // worker); frees its worker slot. A job the client asked to cancel ends
  // CANCELLED instead.
  void abort(const std::string& job, proto::ErrorCode code, std::string message);

  // ---- output and inspection -------------------------------------------------------
  std::vector<Action>& actions() { return actions_; }
  MetricsSnapshot metrics() const;
  std::size_t jobs_in_memory() const { return jobs_.size(); }
  std::size_t workers_alive() const { return workers_.size(); }

 private:
  struct Worker;
  struct Job {
    std::shared_ptr<const JobSpec> spec;
    JobStatus st;
    std::string subscriber;          // client routing id; empty: nobody listens
    std::int64_t deadline_ms = 0;    // on the injected clock; 0: none
    std::int64_t queued_at_ms = 0;   // for dispatch latency
    JobQueue::Slot slot;             // valid while queued
    Worker* lease = nullptr;         // the worker running it (a live lease), else null
  };
  struct Worker {
    std::string id;  // broker-side, "w7"
    std::string routing;
    std::string service;
    std::vector<std::string> models;
    std::uint32_t capacity = 1;
    std::string device, version, name;
    // Jobs holding one of its slots: live leases, plus jobs that ended on the
    // broker's side (timeout, cancel) until the worker acknowledges them, so
    // the worker never holds more than its capacity.
    std::unordered_set<std::string> slots;
    std::int64_t last_seen_ms = 0;
  };
  struct Service {
    std::string name;
    JobQueue queue;
    std::vector<Worker*> workers;                 // alive, in registration order
    std::map<std::string, std::uint32_t> models;  // model -> alive workers advertising it
    std::uint64_t free_slots = 0;
    std::uint64_t running = 0;                    // jobs in state running
    std::size_t next_worker = 0;                  // round-robin start
    ServiceMetrics m;                             // counters; gauges are filled in metrics()
  };

  // Shared steps.
  Service& service(const std::string& name);
  Job* find_job(std::string_view id);
  Worker* find_worker(const std::string& routing);
  std::uint32_t enqueue(Job& j, bool front);  // returns its position
  std::size_t pump(Service& s);               // returns jobs started
  void start(Service& s, Worker& w, Job& j);
  void finish(Job& j, proto::JobState state, std::optional<Failure> failure = std::nullopt);
  void fail(Job& j, proto::ErrorCode code, std::string message);  // finish + ERROR event
  void cancelled(Job& j);                                         // finish + CANCELLED event
  void release_slot(Worker& w, const std::string& job);
  void requeue_or_fail(Job& j, bool count_attempt);
  void remove_worker(Worker& w, bool graceful);
  void expire_deadline(Job& j);
  void evict_old_final_jobs();
  Verdict check_lease(const std::string& routing, const std::string& job, Worker*& w, Job*& j);

  // Events.
  void persist(const Job& j, bool is_new = false);
  void notify(const Job& j, ClientEvent e);
  void reply(const std::string& client, ClientEvent e) { actions_.push_back(Notify{client, std::move(e)}); }
  void send_terminal(const std::string& client, std::uint64_t req, const std::string& job,
                     const JobStatus& st);
  void attach_to(const std::string& client, std::uint64_t req, const std::string& job);
  void send_queued(const Job& j, std::uint32_t position);
  proto::JobInfo info(std::uint64_t req, const Job& j) const;
  proto::JobInfo info(std::uint64_t req, const JobRecord& r) const;
  std::string waiting_for(const Job& j) const;
  double wall_now() const;

  DispatcherConfig cfg_;
  const Clock& clock_;
  JobArchive& archive_;
  std::vector<Action> actions_;

  std::unordered_map<std::string, Job> jobs_;            // live + recent final
  std::unordered_map<std::string, std::string> keys_;    // idempotency key -> job id (in memory)
  std::deque<std::string> final_order_;                  // final jobs, oldest first
  std::set<std::pair<std::int64_t, std::string>> deadlines_;  // (deadline_ms, job) of live jobs
  std::map<std::string, Service, std::less<>> services_;  // known services
  std::unordered_map<std::string, std::unique_ptr<Worker>> workers_;  // by routing id
  std::uint64_t next_worker_id_ = 1;
  std::int64_t next_heartbeat_ms_ = 0;
  std::uint64_t workers_lost_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace mmgen::broker

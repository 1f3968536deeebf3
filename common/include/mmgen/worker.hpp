// The worker SDK: everything a service process needs to serve jobs from the
// broker (see the worker half of common/PROTOCOL.md). A service implements
// Service::run(JobContext&); Worker does the rest: it logs in with READY, keeps
// heartbeats going from its own I/O thread while jobs compute on a pool of
// `capacity` compute threads, reconnects with backoff, maps exceptions to
// ERROR replies, and leaves gracefully on SIGTERM/SIGINT.
//
// Threads: the thread that calls Worker::run() owns the ZeroMQ socket; a
// compute thread borrows it, under a lock, only to send its job's messages
// while the I/O thread is idle. Service::run() is called on compute threads,
// up to `capacity` at once, so a service with capacity > 1 must be thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <zmq.hpp>

#include "mmgen/protocol.hpp"
#include "mmgen/value.hpp"

namespace mmgen::worker {

// ---- job data ------------------------------------------------------------------
// An input blob as it arrived (no copy of the frame).
struct Input {
  std::string name;
  std::string mime;
  zmq::message_t data;
  std::string_view bytes() const {
    return {static_cast<const char*>(data.data()), data.size()};
  }
  std::span<const std::uint8_t> octets() const {
    return {static_cast<const std::uint8_t*>(data.data()), data.size()};
  }
};

// The input blob called `name`, or nullptr; two of that name are a client
// error (ProtocolError invalid_request), not a choice to make silently.
const Input* find_input(const std::vector<Input>& inputs, std::string_view name);

// An output blob; sent as one frame of RESULT (or a PROGRESS preview).
struct Output {
  std::string name;
  std::string mime;
  std::string data;
};

// What a successful handler returns: RESULT{outputs, data, metrics}.
struct Outcome {
  std::vector<Output> outputs;
  ValueMap data;     // small inline outputs (generated text, ...)
  ValueMap metrics;  // the SDK adds "run_ms" unless the service set it
};

// Thrown by JobContext::check_cancelled(). The SDK turns it into
// ERROR{cancelled}, or ERROR{timeout} when the job's deadline tripped it.
class Cancelled : public std::exception {
 public:
  const char* what() const noexcept override { return "job cancelled"; }
};

namespace detail {
struct JobState;
}

// Handed to Service::run(); valid for the duration of that call. Thread-safe:
// the handler may call it from helper threads of its own.
class JobContext {
 public:
  const proto::JobAssign& job() const;
  const Params& params() const;
  const std::vector<Input>& inputs() const;

  // True once the broker cancelled the job, its deadline passed, or the
  // worker lost the job (connection lost, shutdown grace expired).
  bool cancelled() const;
  void check_cancelled() const;  // throws Cancelled if cancelled()
  // Sleeps up to `d`, waking early on cancellation. Returns !cancelled().
  bool sleep_for(std::chrono::milliseconds d) const;

  // PROGRESS{step, total, eta_s, message, preview}. eta_s comes from the
  // step rate observed since the job started (or since the last report of a
  // step that did not advance, so set-up time does not skew it); -1 when it
  // cannot be estimated yet. A preview over the result limit is left out
  // (logged), not an error.
  void progress(std::uint32_t step, std::uint32_t total, std::string message = {},
                std::optional<Output> preview = {});
  // PARTIAL{seq, data}; seq counts from 0 per job. Throws
  // ProtocolError(too_large) if the encoded body exceeds the body limit.
  void partial(ValueMap data);

  std::int64_t elapsed_ms() const;  // since the job started on this worker

  explicit JobContext(std::shared_ptr<detail::JobState> state);  // made by the SDK
  ~JobContext();
  JobContext(const JobContext&) = delete;
  JobContext& operator=(const JobContext&) = delete;

 private:
  std::shared_ptr<detail::JobState> s_;
};

// ---- service -----------------------------------------------------------------
class Service {
 public:
  virtual ~Service() = default;
  virtual std::string name() const = 0;                          // READY.service
  virtual std::vector<std::string> models() const { return {}; } // READY.models
  // Runs one job. Throw ProtocolError for a typed failure (e.g.
  // invalid_request naming the bad param); any other exception becomes
  // ERROR{internal, what()}. Poll ctx.check_cancelled() between steps.
  virtual Outcome run(JobContext& ctx) = 0;
};

// ---- worker ------------------------------------------------------------------
struct WorkerOptions {
  std::string broker = "tcp://127.0.0.1:5556";
  std::uint32_t capacity = 1;  // concurrent jobs = compute threads
  std::string device = "cpu";
  std::string version;
  std::string name;  // READY.name; empty: host:pid
  int heartbeat_ms = 1000;
  int liveness = 3;  // broker declared dead after this many silent intervals
  int reconnect_min_ms = 1000;
  int reconnect_max_ms = 32000;
  int grace_ms = 10000;  // on stop: how long running jobs may take to finish
  bool handle_signals = true;  // SIGTERM/SIGINT call stop() while run() runs
  proto::Limits limits;
};

// Must outlive its run() call (stop() it and join the thread first).
class Worker {
 public:
  Worker(Service& service, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until stop(): then takes no new job, lets running jobs finish
  // within grace_ms and sends their results, sends DISCONNECT (the broker
  // requeues, without counting an attempt, any job it still holds for this
  // worker) and returns. Call once.
  void run();
  // Thread-safe and async-signal-safe (an atomic store and a pipe write).
  void stop() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- command line ------------------------------------------------------------
// The flags every worker binary shares (README "Command-line contract").
struct WorkerFlags {
  std::string broker = "tcp://127.0.0.1:5556";  // --broker; env MMGEN_WORKER_BROKER
  std::string model;                            // --model DIR
  std::string device = "cpu";                   // --device cpu|cuda|cuda:N
  std::string dtype = "float32";                // --dtype float32|bfloat16|float16
  std::uint32_t threads = 0;                    // --threads N; 0: library default
  std::uint32_t capacity = 1;                   // --capacity N
  int heartbeat_ms = 1000;                      // --heartbeat-ms N
  int grace_ms = 10000;                         // --grace-ms N
  bool help = false;                            // --help / -h

  WorkerOptions options(std::string version) const;
};

// A service's own flag: --NAME VALUE or --NAME=VALUE; a bool flag also as a
// bare --NAME. Integers are checked against [min, max].
struct ExtraFlag {
  std::string name;  // without the leading "--"
  std::string help;
  std::variant<std::string*, std::int64_t*, double*, bool*> target;
  std::int64_t min = INT64_MIN;
  std::int64_t max = INT64_MAX;
};

class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses argv[1..]. `defaults` gives the service's defaults (e.g. capacity);
// its broker is replaced by MMGEN_WORKER_BROKER when that is set, and a flag
// overrides both. Throws FlagError on an unknown flag, a missing or bad value
// or a positional argument.
WorkerFlags parse_worker_flags(int argc, const char* const* argv, std::string_view service,
                               const std::vector<ExtraFlag>& extra = {},
                               WorkerFlags defaults = {});
std::string worker_usage(std::string_view service, const std::vector<ExtraFlag>& extra = {},
                         const WorkerFlags& defaults = {});

// A complete main(): parses flags (exit 2 on a usage error, 0 after --help),
// builds the service with `make` (exit 1 if it throws), serves until
// SIGTERM/SIGINT and returns 0.
using ServiceFactory = std::function<std::unique_ptr<Service>(const WorkerFlags&)>;
int worker_main(int argc, const char* const* argv, std::string_view service,
                const ServiceFactory& make, std::string version,
                const std::vector<ExtraFlag>& extra = {}, WorkerFlags defaults = {});

}  // namespace mmgen::worker

// The worker's I/O thread: one DEALER session at a time with the broker.
//
// A session is: new socket -> READY -> serve (JOB, CANCEL, HEARTBEAT both
// ways, results from the outbox) until the broker says DISCONNECT, falls
// silent for `liveness` heartbeat intervals, or we stop. Jobs leased in a
// session live in `jobs_`; when the session ends without a graceful stop they
// are cancelled and their output dropped, because the broker has requeued them
// and a late RESULT could not be delivered to the new session anyway.
//
// The I/O thread holds `io_m` whenever it is not waiting in poll(2). A compute
// thread that queues a message takes the lock only if it is free (the I/O
// thread is idle) and then sends the queue itself, without waiting for the
// I/O thread to wake up: that hand-off would cost every job a thread switch.
// Since ZeroMQ sockets may move between threads across a full memory barrier
// (the mutex), this is safe; the I/O thread therefore waits on the socket's
// ZMQ_FD with poll(2) (zmq_poll would touch the socket without the lock), and
// a compute thread that used the socket wakes it if a message came in meanwhile
// (its socket calls may have consumed the ZMQ_FD signal).
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "backoff.hpp"
#include "compute_pool.hpp"
#include "job_state.hpp"
#include "mmgen/codec.hpp"
#include "mmgen/log.hpp"
#include "mmgen/worker.hpp"
#include "mmgen/zmq_util.hpp"
#include "signals.hpp"
#include "wakeup.hpp"

namespace mmgen::worker {

using detail::ComputePool;
using detail::JobState;
using detail::steady_ms;
using detail::StopReason;

namespace {

// stop() runs in signal handlers: the flag it sets must not take a lock.
static_assert(std::atomic<bool>::is_always_lock_free);

std::uint8_t cmd(proto::WorkerCmd c) { return static_cast<std::uint8_t>(c); }

proto::Frames message(proto::WorkerCmd c, const std::string& body, proto::Frames blobs = {}) {
  return proto::make_message(proto::kWorkerProtocol, cmd(c), body, std::move(blobs));
}

std::string default_name() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host[0] ? host : "localhost") + ":" + std::to_string(::getpid());
}

}  // namespace

struct Worker::Impl {
  enum class End { stopped, disconnected, silent, send_failed };

  Impl(Worker& owner, Service& service, WorkerOptions options)
      : owner(owner),
        service(service),
        opt(std::move(options)),
        backoff(opt.reconnect_min_ms, opt.reconnect_max_ms) {
    opt.capacity = std::max<std::uint32_t>(1, opt.capacity);
    opt.heartbeat_ms = std::max(1, opt.heartbeat_ms);
    opt.liveness = std::max(1, opt.liveness);
    opt.grace_ms = std::max(0, opt.grace_ms);
    if (opt.name.empty()) opt.name = default_name();
    outbox.set_courier([this] { return deliver_now(); });
  }

  void run();
  End serve_session();
  bool open_session();  // false if READY could not be sent
  void close_session(End end);
  void begin_drain();
  // Sends the outbox, dropping output of jobs no longer leased to this
  // session. blocking=false (compute threads): stops at the first send that
  // would block and puts the rest back. False if a send failed.
  bool flush_outbox(bool blocking = true);
  bool send(proto::Frames&& frames, bool blocking = true);
  bool deliver_now();  // the Outbox courier; on compute threads
  // Waits (lock released) until the socket or the wake-up pipe has something
  // or `timeout_ms` passes; true if the socket has a message to read.
  bool wait_for_input(std::int64_t timeout_ms);
  // Returns false when the broker told us to reconnect.
  bool handle(proto::Frames&& frames);
  void on_job(proto::Envelope& env);
  void reject(const std::string& job, proto::ErrorCode code, const std::string& message);
  void trip_deadlines(std::int64_t now);
  std::int64_t next_deadline() const;
  void wait_before_reconnect(int ms);
  void abandon_jobs(std::string_view why);

  Worker& owner;
  Service& service;
  WorkerOptions opt;
  std::string service_name;
  std::vector<std::string> models;
  detail::Wakeup wake;
  detail::Outbox outbox{wake};
  // Guards `sock` and `jobs`; held by the I/O thread except while it waits.
  std::mutex io_m;
  std::unique_lock<std::mutex> io_lock{io_m, std::defer_lock};  // the I/O thread's
  int sock_fd = -1;  // ZMQ_FD of the current session's socket
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> ran{false};
  detail::Backoff backoff;

  zmq::context_t ctx{1};
  std::unique_ptr<zmq::socket_t> sock;
  std::unique_ptr<ComputePool> pool;
  // Jobs leased to this worker in the current session, by id. Touched with
  // io_m held (the I/O thread, or a compute thread delivering output).
  std::unordered_map<std::string, std::shared_ptr<JobState>> jobs;
  bool draining = false;
  std::int64_t grace_deadline = 0;
  int disconnects_in_a_row = 0;  // reset by any other message from the broker
};

// ---- lifecycle -----------------------------------------------------------------

void Worker::Impl::run() {
  if (ran.exchange(true)) throw std::logic_error("Worker::run() may be called only once");
  service_name = service.name();
  models = service.models();
  io_lock.lock();
  struct Unlock {
    std::unique_lock<std::mutex>& l;
    ~Unlock() {
      if (l.owns_lock()) l.unlock();
    }
  } unlock_on_return{io_lock};
  std::optional<detail::SignalGuard> signals;
  if (opt.handle_signals) signals.emplace(owner);
  pool = std::make_unique<ComputePool>(
      opt.capacity, [this](const std::shared_ptr<JobState>& j) { detail::execute_job(service, j); });
  log::info("worker_starting", {{"service", service_name}, {"broker", opt.broker},
                                {"capacity", opt.capacity}, {"device", opt.device},
                                {"name", opt.name}});

  try {
    while (!stop_requested.load()) {
      const End end = open_session() ? serve_session() : End::send_failed;
      close_session(end);
      if (end == End::stopped) break;
      // The broker asked us to log in again: at once, unless it keeps
      // refusing us without a word in between (then back off, not spin).
      if (end == End::disconnected && ++disconnects_in_a_row == 1) continue;
      const int delay = backoff.next();
      log::info("reconnecting", {{"broker", opt.broker}, {"in_ms", delay}});
      wait_before_reconnect(delay);
    }
  } catch (const std::exception& e) {
    // Only a socket-level failure gets here (e.g. a malformed endpoint).
    log::error("worker_failed", {{"error", e.what()}});
    sock.reset();
    abandon_jobs("worker failed");
    pool->shutdown();
    throw;
  }

  // Handlers of abandoned jobs see their token tripped; wait for them so no
  // compute thread outlives run().
  abandon_jobs("worker stopping");
  pool->shutdown();
  outbox.take_all();
  log::info("worker_stopped", {{"service", service_name}});
}

bool Worker::Impl::open_session() {
  sock = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
  const auto max_frame = static_cast<std::int64_t>(
      std::max(opt.limits.max_body_bytes, opt.limits.max_input_bytes));
  zmqu::configure_dealer(*sock, max_frame);
  // A send that cannot go out within the liveness window means the broker is
  // gone: blocking that long (heartbeats could not go out either) is the same
  // as the silence rule, and it never drops a message on a short HWM burst.
  sock->set(zmq::sockopt::sndtimeo, opt.heartbeat_ms * opt.liveness);
  sock->connect(opt.broker);
  sock_fd = sock->get(zmq::sockopt::fd);
  draining = false;

  proto::Ready ready;
  ready.service = service_name;
  ready.models = models;
  ready.capacity = opt.capacity;
  ready.device = opt.device;
  ready.version = opt.version;
  ready.name = opt.name;
  if (!send(message(proto::WorkerCmd::Ready, proto::encode(ready)))) return false;
  log::info("ready_sent", {{"broker", opt.broker}, {"service", service_name}});
  return true;
}

void Worker::Impl::close_session(End end) {
  if (end == End::stopped) {
    // LINGER is 0 by default; give the last results and DISCONNECT a moment
    // to leave (it only waits if they cannot be delivered).
    sock->set(zmq::sockopt::linger, 1000);
  }
  sock->close();
  sock.reset();
  sock_fd = -1;
  switch (end) {
    case End::stopped: abandon_jobs("grace period over"); break;
    case End::disconnected: abandon_jobs("broker sent DISCONNECT"); break;
    case End::silent: abandon_jobs("broker silent"); break;
    case End::send_failed: abandon_jobs("send to broker failed"); break;
  }
}

void Worker::Impl::abandon_jobs(std::string_view why) {
  for (auto& j : pool->take_pending()) j->trip(StopReason::lost);
  for (auto& [id, j] : jobs) {
    j->trip(StopReason::lost);
    log::warn("job_abandoned", {{"job", id}, {"reason", why}});
  }
  jobs.clear();
}

void Worker::Impl::wait_before_reconnect(int ms) {
  const std::int64_t until = steady_ms() + ms;
  while (!stop_requested.load()) {
    const std::int64_t left = until - steady_ms();
    if (left <= 0) return;
    zmq::pollitem_t item{nullptr, wake.fd(), ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(left));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    wake.drain();
    flush_outbox();  // no session: everything in it belongs to abandoned jobs
  }
}

// ---- one session ---------------------------------------------------------------

Worker::Impl::End Worker::Impl::serve_session() {
  const std::int64_t hb = opt.heartbeat_ms;
  const std::int64_t silence = hb * opt.liveness;
  std::int64_t last_recv = steady_ms();
  std::int64_t next_hb = last_recv + hb;

  for (;;) {
    try {
      if (stop_requested.load() && !draining) begin_drain();
      if (!flush_outbox()) return End::send_failed;
      std::int64_t now = steady_ms();
      if (draining) {
        if (jobs.empty() || now >= grace_deadline) {
          if (!jobs.empty()) {
            log::warn("grace_expired", {{"running", jobs.size()}, {"grace_ms", opt.grace_ms}});
          }
          proto::Disconnect d{"worker shutting down"};
          send(message(proto::WorkerCmd::Disconnect, proto::encode(d)));
          return End::stopped;
        }
      }
      if (now >= next_hb) {
        if (!send(message(proto::WorkerCmd::Heartbeat, proto::encode(proto::Heartbeat{})))) {
          return End::send_failed;
        }
        next_hb = now + hb;
      }
      if (now - last_recv >= silence) {
        log::warn("broker_silent", {{"broker", opt.broker}, {"silent_ms", now - last_recv}});
        return End::silent;
      }
      trip_deadlines(now);

      std::int64_t wake_at = std::min(next_hb, last_recv + silence);
      if (const std::int64_t d = next_deadline(); d > 0) wake_at = std::min(wake_at, d);
      if (draining) wake_at = std::min(wake_at, grace_deadline);
      if (wait_for_input(wake_at - now)) {
        while (auto frames = zmqu::recv_multipart(*sock, zmq::recv_flags::dontwait)) {
          last_recv = steady_ms();
          if (!handle(std::move(*frames))) return End::disconnected;
          backoff.reset();  // a successful exchange
          disconnects_in_a_row = 0;
        }
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal: loop round and look at stop_requested
    }
  }
}

void Worker::Impl::begin_drain() {
  draining = true;
  grace_deadline = steady_ms() + opt.grace_ms;
  // Jobs no thread has started are handed back: the DISCONNECT at the end
  // makes the broker requeue them without counting an attempt.
  for (auto& j : pool->take_pending()) {
    jobs.erase(j->assign.job);
    j->trip(StopReason::lost);
    log::info("job_handed_back", {{"job", j->assign.job}});
  }
  log::info("worker_draining", {{"running", jobs.size()}, {"grace_ms", opt.grace_ms}});
}

bool Worker::Impl::flush_outbox(bool blocking) {
  auto items = outbox.take_all();
  for (; !items.empty(); items.pop_front()) {
    detail::OutItem& item = items.front();
    const std::string& id = item.job->assign.job;
    auto it = jobs.find(id);
    if (it == jobs.end() || it->second != item.job) {
      // The job was abandoned (lost session, grace over): the broker has
      // requeued it, so its output must not reach anyone.
      if (item.terminal) log::info("job_output_dropped", {{"job", id}});
      continue;
    }
    // A send that fails leaves the frames untouched (nothing was queued).
    if (!send(std::move(item.frames), blocking)) {
      if (!blocking) outbox.put_back(std::move(items));
      return false;
    }
    if (item.terminal) jobs.erase(it);
  }
  return true;
}

bool Worker::Impl::send(proto::Frames&& frames, bool blocking) {
  if (!sock) return false;
  if (zmqu::send_multipart(*sock, std::move(frames), /*dontwait=*/!blocking)) return true;
  if (blocking) log::error("send_failed", {{"broker", opt.broker}});
  return false;
}

bool Worker::Impl::deliver_now() {
  std::unique_lock<std::mutex> lk(io_m, std::try_to_lock);
  if (!lk.owns_lock()) return false;  // the I/O thread is busy: it sends them next
  // No session, or one winding down (the I/O thread watches `jobs` empty).
  if (!sock || draining || stop_requested.load()) return false;
  if (!flush_outbox(/*blocking=*/false)) return false;  // the I/O thread retries, blocking
  return !(sock->get(zmq::sockopt::events) & ZMQ_POLLIN);
}

bool Worker::Impl::wait_for_input(std::int64_t timeout_ms) {
  // Reading ZMQ_EVENTS also resets ZMQ_FD: poll(2) on it is valid only after
  // the socket was found empty.
  if (sock->get(zmq::sockopt::events) & ZMQ_POLLIN) return true;
  pollfd fds[2] = {{sock_fd, POLLIN, 0}, {wake.fd(), POLLIN, 0}};
  const int ms = static_cast<int>(std::clamp<std::int64_t>(timeout_ms, 0, 1'000'000));
  io_lock.unlock();
  const int rc = ::poll(fds, 2, ms);
  const int err = errno;
  io_lock.lock();
  if (rc < 0 && err != EINTR) throw std::system_error(err, std::generic_category(), "worker poll");
  if (rc > 0 && (fds[1].revents & POLLIN)) wake.drain();
  return sock->get(zmq::sockopt::events) & ZMQ_POLLIN;
}

void Worker::Impl::trip_deadlines(std::int64_t now) {
  for (auto& [id, j] : jobs) {
    if (j->deadline_ms > 0 && now >= j->deadline_ms && j->trip(StopReason::timeout)) {
      log::info("job_timeout", {{"job", id}, {"timeout_ms", j->assign.timeout_ms}});
    }
  }
}

std::int64_t Worker::Impl::next_deadline() const {
  std::int64_t best = 0;
  for (const auto& [id, j] : jobs) {
    if (j->deadline_ms > 0 && j->reason.load() == 0 && (best == 0 || j->deadline_ms < best)) {
      best = j->deadline_ms;
    }
  }
  return best;
}

// ---- messages from the broker ----------------------------------------------------

bool Worker::Impl::handle(proto::Frames&& frames) {
  proto::Envelope env;
  try {
    env = proto::parse_envelope(std::move(frames), proto::kWorkerProtocol, opt.limits);
  } catch (const proto::ProtocolError& e) {
    log::warn("bad_message_from_broker", {{"error", e.what()}});
    return true;
  }
  try {
    switch (static_cast<proto::WorkerCmd>(env.command)) {
      case proto::WorkerCmd::Heartbeat:
        return true;
      case proto::WorkerCmd::Job:
        on_job(env);
        return true;
      case proto::WorkerCmd::Cancel: {
        const auto c = proto::decode_as<proto::CancelJob>(env.body_view(), opt.limits);
        auto it = jobs.find(c.job);
        if (it == jobs.end()) {
          log::info("cancel_unknown_job", {{"job", c.job}});  // finished already
        } else if (it->second->trip(StopReason::cancelled)) {
          log::info("job_cancel_requested", {{"job", c.job}});
        }
        return true;
      }
      case proto::WorkerCmd::Disconnect: {
        const auto d = proto::decode_as<proto::Disconnect>(env.body_view(), opt.limits);
        log::warn("broker_disconnect", {{"reason", d.reason}});
        return false;
      }
      default:
        log::warn("unexpected_command", {{"command", static_cast<int>(env.command)}});
        return true;
    }
  } catch (const proto::ProtocolError& e) {
    if (env.command == cmd(proto::WorkerCmd::Disconnect)) return false;  // still a DISCONNECT
    log::warn("bad_message_from_broker",
              {{"command", static_cast<int>(env.command)}, {"error", e.what()}});
    return true;
  }
}

void Worker::Impl::on_job(proto::Envelope& env) {
  // Undecodable: there is no job id to answer to; the broker's lease timeout
  // (or the job's own) deals with it.
  proto::JobAssign a = proto::decode_as<proto::JobAssign>(env.body_view(), opt.limits);
  // stop() may have come while this message waited in the socket.
  if (stop_requested.load() && !draining) begin_drain();
  if (draining) {
    log::info("job_handed_back", {{"job", a.job}});  // requeued by our DISCONNECT
    return;
  }
  if (jobs.contains(a.job)) {
    log::warn("duplicate_job", {{"job", a.job}});
    return;
  }
  try {
    proto::check_blobs(a.inputs, env.blobs, opt.limits.max_input_bytes);
  } catch (const proto::ProtocolError& e) {
    reject(a.job, e.code(), e.what());
    return;
  }
  if (a.service != service_name) {
    reject(a.job, proto::ErrorCode::unknown_service,
           "this worker serves '" + service_name + "', not '" + a.service + "'");
    return;
  }
  if (!a.model.empty() && !models.empty() &&
      std::find(models.begin(), models.end(), a.model) == models.end()) {
    reject(a.job, proto::ErrorCode::unsupported, "this worker does not serve model '" + a.model + "'");
    return;
  }

  auto job = std::make_shared<JobState>();
  job->received_ms = steady_ms();
  if (a.timeout_ms > 0) job->deadline_ms = job->received_ms + static_cast<std::int64_t>(a.timeout_ms);
  job->limits = &opt.limits;
  job->outbox = &outbox;
  job->inputs.reserve(a.inputs.size());
  for (std::size_t i = 0; i < a.inputs.size(); ++i) {
    job->inputs.push_back(Input{a.inputs[i].name, a.inputs[i].mime, std::move(env.blobs[i])});
  }
  job->params = Params(a.params);
  job->assign = std::move(a);
  const std::string id = job->assign.job;
  const std::uint32_t attempt = job->assign.attempt;
  const std::size_t inputs = job->inputs.size();
  const std::uint64_t timeout_ms = job->assign.timeout_ms;
  jobs.emplace(id, job);
  pool->submit(std::move(job));
  // Logged once a compute thread can already run it: the line's write(2)
  // stays off the job's path.
  log::info("job_received", {{"job", id}, {"attempt", attempt}, {"inputs", inputs},
                             {"timeout_ms", timeout_ms}});
}

void Worker::Impl::reject(const std::string& job, proto::ErrorCode code, const std::string& text) {
  log::warn("job_rejected", {{"job", job}, {"code", proto::to_string(code)}, {"message", text}});
  send(message(proto::WorkerCmd::Error, proto::encode(proto::Error{0, job, code, text})));
}

// ---- public --------------------------------------------------------------------

Worker::Worker(Service& service, WorkerOptions options)
    : impl_(std::make_unique<Impl>(*this, service, std::move(options))) {}

Worker::~Worker() = default;

void Worker::run() { impl_->run(); }

void Worker::stop() noexcept {
  impl_->stop_requested.store(true);
  impl_->wake.notify();
}

}  // namespace mmgen::worker

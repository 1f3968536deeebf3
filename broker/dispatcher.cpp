// Dispatcher: construction, the shared steps every rule is built from, time
// (heartbeats, liveness, deadlines) and recovery. Client and worker rules are
// in dispatcher_client.cpp and dispatcher_worker.cpp.
#include "dispatcher.hpp"

#include <algorithm>

#include "mmgen/ids.hpp"
#include "mmgen/log.hpp"

namespace mmgen::broker {

using proto::JobState;

std::string_view to_string(Verdict v) {
  switch (v) {
    case Verdict::accepted: return "accepted";
    case Verdict::unknown_worker: return "unknown_worker";
    case Verdict::not_leased: return "not_leased";
    case Verdict::released: return "released";
  }
  return "?";
}

Dispatcher::Dispatcher(DispatcherConfig config, const Clock& clock, JobArchive& archive)
    : cfg_(std::move(config)), clock_(clock), archive_(archive) {
  if (!cfg_.new_job_id) cfg_.new_job_id = [] { return mmgen::new_job_id(); };
  cfg_.heartbeat_ms = std::max<std::int64_t>(cfg_.heartbeat_ms, 1);
  cfg_.liveness = std::max<std::uint32_t>(cfg_.liveness, 1);
  cfg_.max_attempts = std::max<std::uint32_t>(cfg_.max_attempts, 1);
  for (const auto& s : cfg_.services)
    if (!s.empty()) service(s);
  next_heartbeat_ms_ = clock_.now_ms() + cfg_.heartbeat_ms;
}

// ---- lookups ---------------------------------------------------------------------

Dispatcher::Service& Dispatcher::service(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end()) {
    it = services_.emplace(name, Service{}).first;
    it->second.name = name;
    it->second.m.service = name;
  }
  return it->second;
}

Dispatcher::Job* Dispatcher::find_job(std::string_view id) {
  auto it = jobs_.find(std::string(id));
  return it == jobs_.end() ? nullptr : &it->second;
}

Dispatcher::Worker* Dispatcher::find_worker(const std::string& routing) {
  auto it = workers_.find(routing);
  return it == workers_.end() ? nullptr : it->second.get();
}

double Dispatcher::wall_now() const {
  return cfg_.unix_at_clock_zero + double(clock_.now_ms()) / 1000.0;
}

// ---- shared steps ------------------------------------------------------------------

std::uint32_t Dispatcher::enqueue(Job& j, bool front) {
  Service& s = service(j.spec->service);
  auto pushed = front ? s.queue.push_front(j.spec->model, j.spec->priority, j.spec->id)
                      : s.queue.push_back(j.spec->model, j.spec->priority, j.spec->id);
  j.slot = std::move(pushed.slot);
  j.st.state = JobState::queued;
  j.st.worker.clear();
  j.lease = nullptr;
  j.queued_at_ms = clock_.now_ms();
  return pushed.position;
}

// Fills free worker slots from the queue: one job per worker per round, so
// load spreads over workers; each worker takes the best job it may run.
std::size_t Dispatcher::pump(Service& s) {
  std::size_t started = 0;
  while (s.free_slots > 0 && !s.queue.empty() && !s.workers.empty()) {
    bool placed = false;
    const std::size_t n = s.workers.size();
    for (std::size_t i = 0; i < n && !s.queue.empty(); ++i) {
      Worker& w = *s.workers[(s.next_worker + i) % n];
      if (w.slots.size() >= w.capacity) continue;
      auto slot = s.queue.best_for(w.models);
      if (!slot) continue;
      Job* j = find_job(s.queue.take(*slot));
      if (!j) continue;  // cannot happen: queued ids are always in the table
      start(s, w, *j);
      ++started;
      placed = true;
    }
    s.next_worker = (s.next_worker + 1) % n;
    if (!placed) break;
  }
  return started;
}

void Dispatcher::start(Service& s, Worker& w, Job& j) {
  const std::int64_t now = clock_.now_ms();
  j.st.state = JobState::running;
  j.st.worker = w.id;
  ++j.st.attempts;
  j.st.updated_s = wall_now();
  j.lease = &w;
  w.slots.insert(j.spec->id);
  --s.free_slots;
  ++s.running;
  s.m.dispatch_latency.observe(double(now - j.queued_at_ms) / 1000.0);

  persist(j);
  std::uint64_t remaining = 0;
  if (j.deadline_ms) remaining = std::uint64_t(std::max<std::int64_t>(j.deadline_ms - now, 1));
  actions_.push_back(SendJob{w.routing, j.spec, j.st.attempts, remaining});
  notify(j, proto::Started{j.spec->id, w.id, j.st.attempts});
}

// Records a final state. Worker slots are the caller's business: a job that
// ends on the broker's side while running keeps its slot until the worker answers.
void Dispatcher::finish(Job& j, JobState state, std::optional<Failure> failure) {
  Service& s = service(j.spec->service);
  if (j.st.state == JobState::queued) s.queue.erase(j.slot);
  if (j.st.state == JobState::running) --s.running;
  j.lease = nullptr;
  j.st.state = state;
  j.st.failure = std::move(failure);
  j.st.updated_s = wall_now();
  if (j.deadline_ms) deadlines_.erase({j.deadline_ms, j.spec->id});
  switch (state) {
    case JobState::succeeded: ++s.m.succeeded; break;
    case JobState::failed: ++s.m.failed; break;
    case JobState::cancelled: ++s.m.cancelled; break;
    default: break;
  }
  persist(j);
  final_order_.push_back(j.spec->id);
}

void Dispatcher::fail(Job& j, proto::ErrorCode code, std::string message) {
  finish(j, JobState::failed, Failure{code, message});
  notify(j, proto::Error{0, j.spec->id, code, std::move(message)});
}

void Dispatcher::cancelled(Job& j) {
  finish(j, JobState::cancelled);
  notify(j, proto::Cancelled{j.spec->id});
}

void Dispatcher::release_slot(Worker& w, const std::string& job) {
  if (w.slots.erase(job)) ++service(w.service).free_slots;
}

// A running job whose worker went away. count_attempt is false for a graceful
// DISCONNECT: the worker handed the job back, it did not lose it.
void Dispatcher::requeue_or_fail(Job& j, bool count_attempt) {
  if (j.st.cancel_requested) return cancelled(j);
  if (count_attempt && j.st.attempts >= cfg_.max_attempts)
    return fail(j, proto::ErrorCode::worker_lost,
                "worker lost " + std::to_string(j.st.attempts) + " times (max_attempts " +
                    std::to_string(cfg_.max_attempts) + ")");
  if (!count_attempt && j.st.attempts > 0) --j.st.attempts;
  Service& s = service(j.spec->service);
  --s.running;
  ++s.m.requeued;
  std::uint32_t position = enqueue(j, /*front=*/true);
  j.st.updated_s = wall_now();
  persist(j);
  send_queued(j, position);
}

void Dispatcher::remove_worker(Worker& w, bool graceful) {
  Service& s = service(w.service);
  // Take it out of the service first, so what the requeued jobs are told
  // (waiting_for) and where they go next already reflect its absence.
  if (auto it = std::find(s.workers.begin(), s.workers.end(), &w); it != s.workers.end())
    s.workers.erase(it);
  for (const auto& m : w.models)
    if (auto it = s.models.find(m); it != s.models.end() && --it->second == 0) s.models.erase(it);
  s.free_slots -= w.capacity - std::min<std::uint64_t>(w.slots.size(), w.capacity);
  if (!s.workers.empty()) s.next_worker %= s.workers.size();

  log::write(graceful ? log::Level::info : log::Level::warn,
             graceful ? "worker_left" : "worker_dead",
             {{"worker", w.id}, {"service", w.service}, {"jobs", w.slots.size()}});
  if (!graceful) ++workers_lost_;
  for (const auto& id : w.slots) {
    Job* j = find_job(id);
    if (j && j->lease == &w && j->st.state == JobState::running) requeue_or_fail(*j, !graceful);
  }
  const std::string service_name = w.service;
  workers_.erase(w.routing);  // w is gone from here on
  pump(service(service_name));
}

void Dispatcher::expire_deadline(Job& j) {
  const std::string& id = j.spec->id;
  if (j.st.state == JobState::queued)
    return fail(j, proto::ErrorCode::timeout,
                "deadline of " + std::to_string(j.spec->timeout_ms) + " ms passed while queued");
  if (j.st.state != JobState::running) return;
  Worker* w = j.lease;
  const bool cancel_already_sent = j.st.cancel_requested;
  if (j.st.cancel_requested)
    cancelled(j);  // the client asked first; the worker has its CANCEL already
  else
    fail(j, proto::ErrorCode::timeout,
         "deadline of " + std::to_string(j.spec->timeout_ms) + " ms passed while running");
  if (w && !cancel_already_sent) actions_.push_back(SendCancel{w->routing, id});
}

void Dispatcher::evict_old_final_jobs() {
  while (final_order_.size() > cfg_.final_jobs_in_memory) {
    auto it = jobs_.find(final_order_.front());
    final_order_.pop_front();
    if (it == jobs_.end() || !proto::is_final(it->second.st.state)) continue;
    const std::string& key = it->second.spec->key;
    if (!key.empty())
      if (auto k = keys_.find(key); k != keys_.end() && k->second == it->first) keys_.erase(k);
    jobs_.erase(it);
  }
}

void Dispatcher::forget(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || !proto::is_final(it->second.st.state)) return;
  const std::string& key = it->second.spec->key;
  if (!key.empty())
    if (auto k = keys_.find(key); k != keys_.end() && k->second == job) keys_.erase(k);
  jobs_.erase(it);
}

void Dispatcher::retract(const std::string& job) {
  Job* j = find_job(job);
  if (!j || proto::is_final(j->st.state)) return;
  Service& s = service(j->spec->service);
  if (j->st.state == JobState::queued) s.queue.erase(j->slot);
  if (j->st.state == JobState::running) {
    --s.running;
    if (j->lease) release_slot(*j->lease, job);
  }
  if (j->deadline_ms) deadlines_.erase({j->deadline_ms, job});
  if (const std::string& key = j->spec->key; !key.empty())
    if (auto k = keys_.find(key); k != keys_.end() && k->second == job) keys_.erase(k);
  --s.m.submitted;
  jobs_.erase(job);
  pump(s);
}

void Dispatcher::abort(const std::string& job, proto::ErrorCode code, std::string message) {
  Job* j = find_job(job);
  if (!j || proto::is_final(j->st.state)) return;
  Worker* w = j->lease;
  if (j->st.cancel_requested)
    cancelled(*j);
  else
    fail(*j, code, std::move(message));
  if (w) {
    release_slot(*w, job);
    pump(service(w->service));
  }
  evict_old_final_jobs();
}

// ---- events -----------------------------------------------------------------------

void Dispatcher::persist(const Job& j, bool is_new) {
  actions_.push_back(PersistJob{j.spec, j.st, is_new});
}

void Dispatcher::notify(const Job& j, ClientEvent e) {
  if (!j.subscriber.empty()) actions_.push_back(Notify{j.subscriber, std::move(e)});
}

void Dispatcher::send_queued(const Job& j, std::uint32_t position) {
  notify(j, proto::Queued{j.spec->id, position, waiting_for(j)});
}

std::string Dispatcher::waiting_for(const Job& j) const {
  const Service& s = services_.find(j.spec->service)->second;
  if (s.workers.empty()) return "no worker of service '" + s.name + "' is connected";
  if (!j.spec->model.empty() && !s.models.count(j.spec->model))
    return "no worker advertises model '" + j.spec->model + "'";
  return {};  // eligible workers exist; it waits for a free slot
}

// ---- time -----------------------------------------------------------------------

void Dispatcher::tick() {
  const std::int64_t now = clock_.now_ms();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::string id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    if (Job* j = find_job(id)) {
      j->deadline_ms = 0;  // its entry is gone; finish() must not look for it
      expire_deadline(*j);
    }
  }
  if (now >= next_heartbeat_ms_) {
    next_heartbeat_ms_ = now + cfg_.heartbeat_ms;
    const std::int64_t silence_limit = cfg_.heartbeat_ms * std::int64_t(cfg_.liveness);
    std::vector<Worker*> dead;
    for (auto& [routing, w] : workers_) {
      if (now - w->last_seen_ms > silence_limit)
        dead.push_back(w.get());
      else
        actions_.push_back(SendHeartbeat{routing});
    }
    for (Worker* w : dead) remove_worker(*w, /*graceful=*/false);
  }
  evict_old_final_jobs();
}

std::int64_t Dispatcher::next_wakeup_ms() const {
  std::int64_t t = next_heartbeat_ms_;
  if (!deadlines_.empty()) t = std::min(t, deadlines_.begin()->first);
  return t;
}

// ---- recovery -------------------------------------------------------------------

void Dispatcher::restore(std::vector<JobRecord> records) {
  const std::int64_t now = clock_.now_ms();
  const double wall = wall_now();
  std::size_t requeued = 0;
  for (auto& rec : records) {
    if (!rec.spec || proto::is_final(rec.status.state) || jobs_.count(rec.spec->id)) continue;
    Job& j = jobs_.emplace(rec.spec->id, Job{}).first->second;
    j.spec = std::move(rec.spec);
    j.st = std::move(rec.status);
    const bool was_running = j.st.state == JobState::running;
    if (j.spec->timeout_ms) {
      const double left_s = j.spec->deadline_s() - wall;
      j.deadline_ms = now + std::max<std::int64_t>(std::int64_t(left_s * 1000.0), 0);
      deadlines_.emplace(j.deadline_ms, j.spec->id);
    }
    if (!j.spec->key.empty()) keys_[j.spec->key] = j.spec->id;
    enqueue(j, /*front=*/false);  // journal order is submission order
    if (was_running) {
      j.st.updated_s = wall;
      persist(j);
      ++requeued;
    }
  }
  log::info("jobs_restored", {{"jobs", jobs_.size()}, {"requeued", requeued}});
}

// ---- metrics ------------------------------------------------------------------------

MetricsSnapshot Dispatcher::metrics() const {
  MetricsSnapshot out;
  out.services.reserve(services_.size());
  for (const auto& [name, s] : services_) {
    ServiceMetrics m = s.m;
    m.queued = s.queue.size();
    m.running = s.running;
    m.workers_alive = s.workers.size();
    m.capacity = 0;
    for (const Worker* w : s.workers) m.capacity += w->capacity;
    out.services.push_back(std::move(m));
  }
  out.workers_lost = workers_lost_;
  out.worker_messages_dropped = dropped_;
  return out;
}

}  // namespace mmgen::broker

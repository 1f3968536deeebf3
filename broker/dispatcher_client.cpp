// Dispatcher: the client rules (SUBMIT, CANCEL, STATUS, ATTACH, FETCH, LIST,
// WORKERS). Jobs not in memory are final ones that only the archive holds.
#include <algorithm>

#include "dispatcher.hpp"

namespace mmgen::broker {

using proto::ErrorCode;
using proto::JobState;

namespace {
constexpr std::uint32_t kMaxListLimit = 1000;
}

void Dispatcher::submit(const std::string& client, proto::Submit&& s) {
  auto reject = [&](ErrorCode code, std::string message) {
    reply(client, proto::Error{s.req, "", code, std::move(message)});
  };

  // Idempotency: a key seen before answers with the existing job, then behaves like ATTACH.
  if (!s.key.empty()) {
    std::optional<std::string> existing;
    if (auto k = keys_.find(s.key); k != keys_.end())
      existing = k->second;
    else
      existing = archive_.find_id_by_key(s.key);
    if (existing) {
      reply(client, proto::Accepted{s.req, *existing, true});
      attach_to(client, s.req, *existing);
      return;
    }
  }

  if (s.service.empty()) return reject(ErrorCode::invalid_request, "service is empty");
  if (s.priority < proto::kMinPriority || s.priority > proto::kMaxPriority)
    return reject(ErrorCode::invalid_request, "priority must be 0..9");
  auto svc_it = services_.find(s.service);
  if (svc_it == services_.end())
    return reject(ErrorCode::unknown_service,
                  "no worker of service '" + s.service + "' has registered and it is not configured");
  Service& svc = svc_it->second;
  if (svc.queue.size() >= cfg_.queue_limit) {
    ++svc.m.rejected;
    return reject(ErrorCode::queue_full, "service '" + s.service + "' has " +
                                             std::to_string(svc.queue.size()) +
                                             " jobs queued (limit " +
                                             std::to_string(cfg_.queue_limit) + ")");
  }

  auto spec = std::make_shared<JobSpec>();
  spec->id = cfg_.new_job_id();
  spec->service = std::move(s.service);
  spec->model = std::move(s.model);
  spec->key = std::move(s.key);
  spec->params = std::move(s.params);
  spec->inputs = std::move(s.inputs);
  spec->priority = s.priority;
  spec->timeout_ms = s.timeout_ms;
  spec->created_s = wall_now();

  Job& j = jobs_.emplace(spec->id, Job{}).first->second;
  j.spec = spec;
  j.subscriber = client;
  j.st.updated_s = spec->created_s;
  if (spec->timeout_ms) {
    j.deadline_ms = clock_.now_ms() + std::int64_t(std::min<std::uint64_t>(spec->timeout_ms, INT32_MAX * 1000ull));
    deadlines_.emplace(j.deadline_ms, spec->id);
  }
  if (!spec->key.empty()) keys_[spec->key] = spec->id;
  ++svc.m.submitted;

  // Journal first (inputs, then the row), then ACCEPTED; the loop commits
  // before it sends, so ACCEPTED never goes out for an unjournaled job.
  if (spec->has_input_bytes()) actions_.push_back(StoreInputs{spec->id});
  persist(j, /*is_new=*/true);
  reply(client, proto::Accepted{s.req, spec->id, false});

  std::uint32_t position = enqueue(j, /*front=*/false);
  std::size_t started = pump(svc);
  if (j.st.state == JobState::queued)
    send_queued(j, started ? svc.queue.position(j.slot) : position);
}

void Dispatcher::cancel(const std::string& client, const proto::JobRef& r) {
  Job* j = find_job(r.job);
  if (!j) {
    if (auto rec = archive_.find(r.job)) return reply(client, info(r.req, *rec));
    return reply(client, proto::Error{r.req, r.job, ErrorCode::not_found, "no job '" + r.job + "'"});
  }
  if (j->st.state == JobState::queued) {
    cancelled(*j);
  } else if (j->st.state == JobState::running && !j->st.cancel_requested) {
    // The worker stops at its next step and answers ERROR{cancelled}; the job
    // becomes CANCELLED then (worker_error / worker_result).
    j->st.cancel_requested = true;
    j->st.updated_s = wall_now();
    persist(*j);
    actions_.push_back(SendCancel{j->lease->routing, j->spec->id});
  }
  reply(client, info(r.req, *j));
  evict_old_final_jobs();
}

void Dispatcher::status(const std::string& client, const proto::JobRef& r) {
  if (Job* j = find_job(r.job)) return reply(client, info(r.req, *j));
  if (auto rec = archive_.find(r.job)) return reply(client, info(r.req, *rec));
  reply(client, proto::Error{r.req, r.job, ErrorCode::not_found, "no job '" + r.job + "'"});
}

void Dispatcher::attach(const std::string& client, const proto::JobRef& r) {
  attach_to(client, r.req, r.job);
}

// Replays the job's current state, then its terminal event if final, else
// makes `client` its one subscriber (replacing any earlier one).
void Dispatcher::attach_to(const std::string& client, std::uint64_t req, const std::string& job) {
  if (Job* j = find_job(job)) {
    reply(client, info(req, *j));
    if (proto::is_final(j->st.state))
      send_terminal(client, req, job, j->st);
    else
      j->subscriber = client;
    return;
  }
  if (auto rec = archive_.find(job)) {
    reply(client, info(req, *rec));
    if (proto::is_final(rec->status.state)) send_terminal(client, req, job, rec->status);
    return;
  }
  reply(client, proto::Error{req, job, ErrorCode::not_found, "no job '" + job + "'"});
}

void Dispatcher::fetch(const std::string& client, const proto::JobRef& r) {
  std::optional<JobStatus> st;
  if (Job* j = find_job(r.job))
    st = j->st;
  else if (auto rec = archive_.find(r.job))
    st = rec->status;
  if (!st)
    return reply(client, proto::Error{r.req, r.job, ErrorCode::not_found, "no job '" + r.job + "'"});
  if (!proto::is_final(st->state))
    return reply(client, proto::Error{r.req, r.job, ErrorCode::not_finished,
                                      "job is " + std::string(proto::to_string(st->state))});
  send_terminal(client, r.req, r.job, *st);
}

void Dispatcher::send_terminal(const std::string& client, std::uint64_t req, const std::string& job,
                               const JobStatus& st) {
  switch (st.state) {
    case JobState::succeeded: return reply(client, StoredResult{job, req});
    case JobState::cancelled: return reply(client, proto::Cancelled{job});
    case JobState::failed: {
      Failure f = st.failure.value_or(Failure{ErrorCode::internal, "failed"});
      return reply(client, proto::Error{req, job, f.code, std::move(f.message)});
    }
    default: return;
  }
}

void Dispatcher::list(const std::string& client, const proto::ListReq& r) {
  const std::uint32_t limit = std::clamp<std::uint32_t>(r.limit ? r.limit : 50, 1, kMaxListLimit);
  proto::JobList out;
  out.req = r.req;
  // Every job is in the journal (written in this same transaction if new), so
  // the archive gives the order; live jobs take their details from memory.
  for (const auto& rec : archive_.recent(r.service, limit)) {
    if (const Job* j = find_job(rec.spec->id))
      out.jobs.push_back(info(0, *j));
    else
      out.jobs.push_back(info(0, rec));
  }
  reply(client, std::move(out));
}

void Dispatcher::workers(const std::string& client, const proto::WorkersReq& r) {
  proto::WorkerList out;
  out.req = r.req;
  for (const auto& [name, s] : services_) {
    // Configured services with nobody and nothing waiting are left out, so a
    // listing shows what is actually there.
    if (s.workers.empty() && s.queue.empty()) continue;
    proto::ServiceInfo si;
    si.service = name;
    si.workers = std::uint32_t(s.workers.size());
    for (const auto& [model, n] : s.models) si.models.push_back(model);
    for (const Worker* w : s.workers) {
      si.capacity += w->capacity;
      si.load += std::uint32_t(w->slots.size());
    }
    si.queued = std::uint32_t(s.queue.size());
    out.services.push_back(std::move(si));
  }
  reply(client, std::move(out));
}

proto::JobInfo Dispatcher::info(std::uint64_t req, const Job& j) const {
  proto::JobInfo i = info(req, JobRecord{j.spec, j.st});
  if (j.st.state == JobState::queued) {
    const Service& s = services_.find(j.spec->service)->second;
    i.position = s.queue.position(j.slot);
    i.waiting_for = waiting_for(j);
  }
  return i;
}

proto::JobInfo Dispatcher::info(std::uint64_t req, const JobRecord& r) const {
  proto::JobInfo i;
  i.req = req;
  i.job = r.spec->id;
  i.service = r.spec->service;
  i.model = r.spec->model;
  i.state = r.status.state;
  i.priority = r.spec->priority;
  i.attempts = r.status.attempts;
  i.worker = r.status.worker;
  i.created_s = r.spec->created_s;
  i.updated_s = r.status.updated_s;
  if (r.status.failure)
    i.error = proto::Error{0, r.spec->id, r.status.failure->code, r.status.failure->message};
  return i;
}

}  // namespace mmgen::broker

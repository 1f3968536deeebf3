// Dispatcher: the worker rules (READY, HEARTBEAT, PROGRESS, PARTIAL, RESULT,
// ERROR, DISCONNECT). A message about a job counts only while that job is
// leased to the sender; anything else is dropped, so nothing is delivered twice.
#include <algorithm>

#include "dispatcher.hpp"
#include "mmgen/log.hpp"

namespace mmgen::broker {

using proto::JobState;

void Dispatcher::worker_ready(const std::string& routing, proto::Ready&& r) {
  if (r.service.empty()) {
    ++dropped_;
    log::warn("worker_ready_rejected", {{"reason", "empty service"}, {"name", r.name}});
    actions_.push_back(SendDisconnect{routing, "READY must name a service"});
    return;
  }
  // A second READY on one connection starts a new session: what the old one
  // held goes back to the queue as after a graceful leave.
  if (Worker* old = find_worker(routing)) remove_worker(*old, /*graceful=*/true);

  auto owned = std::make_unique<Worker>();
  Worker& w = *owned;
  w.id = "w" + std::to_string(next_worker_id_++);
  w.routing = routing;
  w.service = std::move(r.service);
  std::sort(r.models.begin(), r.models.end());
  r.models.erase(std::unique(r.models.begin(), r.models.end()), r.models.end());
  std::erase(r.models, std::string());
  w.models = std::move(r.models);
  w.capacity = std::clamp<std::uint32_t>(r.capacity, 1, cfg_.max_capacity);
  w.device = std::move(r.device);
  w.version = std::move(r.version);
  w.name = std::move(r.name);
  w.last_seen_ms = clock_.now_ms();
  workers_.emplace(routing, std::move(owned));

  Service& s = service(w.service);  // a registered service is known from now on
  s.workers.push_back(&w);
  for (const auto& m : w.models) ++s.models[m];
  s.free_slots += w.capacity;
  log::info("worker_ready", {{"worker", w.id}, {"service", w.service}, {"capacity", w.capacity},
                             {"models", std::to_string(w.models.size())}, {"device", w.device},
                             {"name", w.name}});
  pump(s);
}

Verdict Dispatcher::worker_seen(const std::string& routing) {
  Worker* w = find_worker(routing);
  if (!w) {
    ++dropped_;
    actions_.push_back(SendDisconnect{routing, "unknown worker: reconnect and send READY"});
    return Verdict::unknown_worker;
  }
  w->last_seen_ms = clock_.now_ms();
  return Verdict::accepted;
}

Verdict Dispatcher::check_lease(const std::string& routing, const std::string& job, Worker*& w,
                                Job*& j) {
  if (Verdict v = worker_seen(routing); v != Verdict::accepted) return v;
  w = find_worker(routing);
  j = find_job(job);
  if (j && j->st.state == JobState::running && j->lease == w) return Verdict::accepted;
  ++dropped_;
  return w->slots.count(job) ? Verdict::released : Verdict::not_leased;
}

Verdict Dispatcher::worker_progress(const std::string& routing, const std::string& job) {
  Worker* w = nullptr;
  Job* j = nullptr;
  Verdict v = check_lease(routing, job, w, j);
  if (v == Verdict::accepted) notify(*j, Relay{proto::EventCmd::Progress});
  return v == Verdict::released ? Verdict::not_leased : v;  // only an answer frees a slot
}

Verdict Dispatcher::worker_partial(const std::string& routing, const std::string& job) {
  Worker* w = nullptr;
  Job* j = nullptr;
  Verdict v = check_lease(routing, job, w, j);
  if (v == Verdict::accepted) notify(*j, Relay{proto::EventCmd::Partial});
  return v == Verdict::released ? Verdict::not_leased : v;
}

bool Dispatcher::holds_lease(const std::string& routing, const std::string& job) const {
  auto w = workers_.find(routing);
  auto j = jobs_.find(job);
  return w != workers_.end() && j != jobs_.end() && j->second.st.state == JobState::running &&
         j->second.lease == w->second.get();
}

bool Dispatcher::wants_result(const std::string& routing, const std::string& job) const {
  return holds_lease(routing, job) && !jobs_.find(job)->second.st.cancel_requested;
}

Verdict Dispatcher::worker_result(const std::string& routing, const std::string& job) {
  Worker* w = nullptr;
  Job* j = nullptr;
  Verdict v = check_lease(routing, job, w, j);
  if (v != Verdict::accepted && v != Verdict::released) return v;
  release_slot(*w, job);
  if (v == Verdict::accepted) {
    if (j->st.cancel_requested) {
      cancelled(*j);  // the client asked first; the result is not kept
    } else {
      finish(*j, JobState::succeeded);  // body and blobs are stored already (wants_result)
      notify(*j, Relay{proto::EventCmd::Result});
    }
  }
  pump(service(w->service));
  evict_old_final_jobs();
  return v;
}

Verdict Dispatcher::worker_error(const std::string& routing, const proto::Error& e) {
  Worker* w = nullptr;
  Job* j = nullptr;
  Verdict v = check_lease(routing, e.job, w, j);
  if (v != Verdict::accepted && v != Verdict::released) return v;
  release_slot(*w, e.job);
  if (v == Verdict::accepted) {
    if (j->st.cancel_requested)
      cancelled(*j);  // normally ERROR{cancelled}, the acknowledgement of our CANCEL
    else
      fail(*j, e.code, e.message);
  }
  pump(service(w->service));
  evict_old_final_jobs();
  return v;
}

void Dispatcher::worker_disconnect(const std::string& routing) {
  if (Worker* w = find_worker(routing)) remove_worker(*w, /*graceful=*/true);
}

void Dispatcher::worker_lost(const std::string& routing) {
  if (Worker* w = find_worker(routing)) remove_worker(*w, /*graceful=*/false);
}

}  // namespace mmgen::broker

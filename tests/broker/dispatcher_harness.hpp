// Drives a Dispatcher by hand: a FakeClock, an in-memory archive fed by the
// PersistJob actions (as the journal would be), and helpers to pick actions.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dispatcher.hpp"
#include "mmgen/clock.hpp"

namespace mmgen::broker::testing {

class FakeArchive : public JobArchive {
 public:
  void apply(const PersistJob& p) {
    auto [it, inserted] = rows_.try_emplace(p.spec->id, JobRecord{p.spec, p.status});
    if (inserted) order_.push_back(p.spec->id);
    it->second.status = p.status;
  }
  void put(JobRecord r) {
    order_.push_back(r.spec->id);
    rows_[r.spec->id] = std::move(r);
  }
  std::optional<JobRecord> find(std::string_view id) override {
    auto it = rows_.find(std::string(id));
    if (it == rows_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> find_id_by_key(std::string_view key) override {
    for (const auto& [id, r] : rows_)
      if (!key.empty() && r.spec->key == key) return id;
    return std::nullopt;
  }
  std::vector<JobRecord> recent(std::string_view service, std::uint32_t limit) override {
    std::vector<JobRecord> out;
    for (auto it = order_.rbegin(); it != order_.rend() && out.size() < limit; ++it) {
      const JobRecord& r = rows_.at(*it);
      if (service.empty() || r.spec->service == service) out.push_back(r);
    }
    return out;
  }
  std::size_t size() const { return rows_.size(); }

 private:
  std::map<std::string, JobRecord> rows_;
  std::vector<std::string> order_;
};

inline DispatcherConfig test_config() {
  DispatcherConfig c;
  c.services = {"echo", "text", "image", "video"};  // the model services known up front, as compose passes them
  auto counter = std::make_shared<int>(0);
  c.new_job_id = [counter] { return "j" + std::to_string(++*counter); };
  return c;
}

struct Harness {
  explicit Harness(DispatcherConfig cfg = test_config()) : d(std::move(cfg), clock, archive) {}

  // Takes the pending actions, applying journal writes to the archive.
  std::vector<Action> take() {
    std::vector<Action> out;
    out.swap(d.actions());
    for (const auto& a : out)
      if (auto* p = std::get_if<PersistJob>(&a)) archive.apply(*p);
    return out;
  }

  // SUBMIT from `client`; returns the new job's id ("" if refused).
  std::string submit(const std::string& client, const std::string& service, int priority = 5,
                     const std::string& model = "", std::uint64_t timeout_ms = 0,
                     const std::string& key = "", std::vector<proto::BlobMeta> inputs = {}) {
    proto::Submit s;
    s.req = ++req;
    s.service = service;
    s.model = model;
    s.priority = priority;
    s.timeout_ms = timeout_ms;
    s.key = key;
    s.inputs = std::move(inputs);
    d.submit(client, std::move(s));
    last = take();
    for (const auto& a : last)
      if (auto* n = std::get_if<Notify>(&a))
        if (auto* acc = std::get_if<proto::Accepted>(&n->event)) return acc->job;
    return "";
  }

  void ready(const std::string& routing, const std::string& service, std::uint32_t capacity = 1,
             std::vector<std::string> models = {}) {
    proto::Ready r;
    r.service = service;
    r.capacity = capacity;
    r.models = std::move(models);
    d.worker_ready(routing, std::move(r));
    last = take();
  }

  FakeClock clock;
  FakeArchive archive;
  Dispatcher d;
  std::vector<Action> last;  // actions of the latest helper call
  std::uint64_t req = 0;
};

// ---- picking actions ---------------------------------------------------------------

template <class T>
std::vector<T> all_of(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions)
    if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
  return out;
}

// Events of type E sent to `client`.
template <class E>
std::vector<E> events_to(const std::vector<Action>& actions, const std::string& client) {
  std::vector<E> out;
  for (const auto& n : all_of<Notify>(actions))
    if (n.client == client)
      if (auto* e = std::get_if<E>(&n.event)) out.push_back(*e);
  return out;
}

// Job ids sent (JOB) to the worker at `routing`, in order.
inline std::vector<std::string> jobs_sent(const std::vector<Action>& actions,
                                          const std::string& routing) {
  std::vector<std::string> out;
  for (const auto& s : all_of<SendJob>(actions))
    if (s.routing == routing) out.push_back(s.spec->id);
  return out;
}

inline std::vector<std::string> jobs_sent(const std::vector<Action>& actions) {
  std::vector<std::string> out;
  for (const auto& s : all_of<SendJob>(actions)) out.push_back(s.spec->id);
  return out;
}

}  // namespace mmgen::broker::testing

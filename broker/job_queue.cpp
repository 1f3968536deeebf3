#include "job_queue.hpp"

#include <iterator>

namespace mmgen::broker {

// Positions at push time come from per-priority counts, so SUBMIT stays O(log n).
JobQueue::Pushed JobQueue::push_back(std::string_view model, int priority, std::string job) {
  std::uint32_t ahead = count_above(priority) + per_priority_[priority];
  return {insert(model, priority, next_back_++, std::move(job)), ahead};
}

JobQueue::Pushed JobQueue::push_front(std::string_view model, int priority, std::string job) {
  std::uint32_t ahead = count_above(priority);
  return {insert(model, priority, next_front_--, std::move(job)), ahead};
}

JobQueue::Slot JobQueue::insert(std::string_view model, int priority, std::int64_t seq,
                                std::string job) {
  auto lane = lanes_.find(model);
  if (lane == lanes_.end()) lane = lanes_.emplace(std::string(model), Lane{}).first;
  lane->second.emplace(Key{-priority, seq}, std::move(job));
  ++per_priority_[priority];
  ++size_;
  return Slot{std::string(model), priority, seq};
}

void JobQueue::erase(const Slot& slot) { take(slot); }

std::string JobQueue::take(const Slot& slot) {
  auto lane = lanes_.find(slot.model);
  if (lane == lanes_.end()) return {};
  auto it = lane->second.find(Key{-slot.priority, slot.seq});
  if (it == lane->second.end()) return {};
  std::string job = std::move(it->second);
  lane->second.erase(it);
  // Drop empty lanes so models that come and go don't leave residue.
  if (lane->second.empty()) lanes_.erase(lane);
  --per_priority_[slot.priority];
  --size_;
  return job;
}

std::optional<JobQueue::Slot> JobQueue::best_for(const std::vector<std::string>& models) const {
  std::optional<Slot> best;
  Key best_key{};
  auto consider = [&](const std::string& model) {
    auto lane = lanes_.find(model);
    if (lane == lanes_.end()) return;
    const Key& head = lane->second.begin()->first;
    if (!best || head < best_key) {
      best_key = head;
      best = Slot{model, -head.first, head.second};
    }
  };
  consider(std::string());
  for (const auto& m : models)
    if (!m.empty()) consider(m);
  return best;
}

std::uint32_t JobQueue::count_above(int priority) const {
  std::uint32_t n = 0;
  for (int p = priority + 1; p <= proto::kMaxPriority; ++p) n += per_priority_[p];
  return n;
}

std::uint32_t JobQueue::position(const Slot& slot) const {
  std::uint32_t n = count_above(slot.priority);
  const Key mine{-slot.priority, slot.seq};
  for (const auto& [model, lane] : lanes_) {
    auto first = lane.lower_bound(Key{-slot.priority, INT64_MIN});
    auto last = lane.lower_bound(mine);
    n += static_cast<std::uint32_t>(std::distance(first, last));
  }
  return n;
}

}  // namespace mmgen::broker

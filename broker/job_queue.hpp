// The waiting jobs of one service. Order: priority (higher first), then FIFO;
// a requeued job goes to the FRONT of its priority. Jobs are kept in one
// ordered map per model ("" = any worker), so a worker finds the best job it
// may run by looking at a few heads, never by scanning jobs it can't take.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mmgen/protocol.hpp"

namespace mmgen::broker {

class JobQueue {
 public:
  // Where a job sits; enough to remove it in O(log n).
  struct Slot {
    std::string model;
    int priority = 0;
    std::int64_t seq = 0;  // FIFO order within a priority; requeues get negative numbers
  };

  struct Pushed {
    Slot slot;
    std::uint32_t position = 0;  // jobs ahead of it at the time of the push
  };
  Pushed push_back(std::string_view model, int priority, std::string job);
  Pushed push_front(std::string_view model, int priority, std::string job);
  void erase(const Slot& slot);

  // The best job a worker serving `models` may run (model-less jobs always
  // qualify); nullopt if none.
  std::optional<Slot> best_for(const std::vector<std::string>& models) const;
  // Removes the job at `slot` and returns its id.
  std::string take(const Slot& slot);

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Jobs that run before the one at `slot` (0 = next). O(jobs of its priority).
  std::uint32_t position(const Slot& slot) const;

 private:
  // Ordered by (-priority, seq): begin() is the head.
  using Key = std::pair<int, std::int64_t>;
  using Lane = std::map<Key, std::string>;

  Slot insert(std::string_view model, int priority, std::int64_t seq, std::string job);
  std::uint32_t count_above(int priority) const;

  std::map<std::string, Lane, std::less<>> lanes_;  // by model (few)
  std::array<std::uint32_t, proto::kMaxPriority + 1> per_priority_{};
  std::size_t size_ = 0;
  std::int64_t next_back_ = 1;
  std::int64_t next_front_ = 0;
};

}  // namespace mmgen::broker

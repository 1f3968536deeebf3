// A fixed pool of compute threads (one per unit of capacity) fed by a FIFO of
// jobs. Jobs beyond the free threads wait in the FIFO; that happens only when
// jobs of a lost session are still winding down.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "job_state.hpp"

namespace mmgen::worker::detail {

class ComputePool {
 public:
  using Runner = std::function<void(const std::shared_ptr<JobState>&)>;
  ComputePool(unsigned threads, Runner run);
  ~ComputePool();  // shutdown()
  ComputePool(const ComputePool&) = delete;
  ComputePool& operator=(const ComputePool&) = delete;

  void submit(std::shared_ptr<JobState> job);
  // Removes the jobs no thread has started yet and returns them.
  std::vector<std::shared_ptr<JobState>> take_pending();
  // Lets running jobs return, then joins the threads. Pending jobs are dropped.
  void shutdown();

 private:
  void loop();

  Runner run_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<JobState>> pending_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Runs one job on the calling (compute) thread: calls the handler, maps its
// outcome or exception to RESULT or ERROR and queues that in the job's outbox.
void execute_job(Service& service, const std::shared_ptr<JobState>& job);

}  // namespace mmgen::worker::detail

#include "compute_pool.hpp"

namespace mmgen::worker::detail {

ComputePool::ComputePool(unsigned threads, Runner run) : run_(std::move(run)) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

ComputePool::~ComputePool() { shutdown(); }

void ComputePool::submit(std::shared_ptr<JobState> job) {
  {
    std::lock_guard<std::mutex> g(m_);
    pending_.push_back(std::move(job));
  }
  cv_.notify_one();
}

std::vector<std::shared_ptr<JobState>> ComputePool::take_pending() {
  std::lock_guard<std::mutex> g(m_);
  std::vector<std::shared_ptr<JobState>> out(std::make_move_iterator(pending_.begin()),
                                             std::make_move_iterator(pending_.end()));
  pending_.clear();
  return out;
}

void ComputePool::shutdown() {
  {
    std::lock_guard<std::mutex> g(m_);
    stopping_ = true;
    pending_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void ComputePool::loop() {
  for (;;) {
    std::shared_ptr<JobState> job;
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [this] { return stopping_ || !pending_.empty(); });
      if (stopping_) return;
      job = std::move(pending_.front());
      pending_.pop_front();
    }
    run_(job);
  }
}

}  // namespace mmgen::worker::detail

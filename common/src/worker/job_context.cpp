// JobContext: what a handler sees of its job. Messages it emits go through the
// outbox: sent from the handler's thread when the I/O thread is idle, else by
// the I/O thread (see Worker::Impl::deliver_now).
#include <algorithm>
#include <chrono>
#include <utility>

#include "job_state.hpp"
#include "mmgen/clock.hpp"
#include "mmgen/log.hpp"

namespace mmgen::worker::detail {

std::int64_t steady_ms() {
  static const SteadyClock clock;
  return clock.now_ms();
}

bool JobState::trip(StopReason r) {
  int expected = static_cast<int>(StopReason::none);
  const bool set = reason.compare_exchange_strong(expected, static_cast<int>(r));
  if (set) {
    // Taking the lock orders this store before a sleeper's re-check, so no
    // wake-up is lost between its check and its wait.
    { std::lock_guard<std::mutex> g(wait_m); }
    wait_cv.notify_all();
  }
  return set;
}

StopReason JobState::stop_reason() {
  auto r = static_cast<StopReason>(reason.load());
  if (r == StopReason::none && deadline_ms > 0 && steady_ms() >= deadline_ms) {
    trip(StopReason::timeout);
    r = static_cast<StopReason>(reason.load());
  }
  return r;
}

void Outbox::push(OutItem item) {
  {
    std::lock_guard<std::mutex> g(m_);
    items_.push_back(std::move(item));
  }
  if (courier_ && courier_()) return;
  wake_.notify();
}

std::deque<OutItem> Outbox::take_all() {
  std::lock_guard<std::mutex> g(m_);
  return std::exchange(items_, {});
}

void Outbox::put_back(std::deque<OutItem> items) {
  std::lock_guard<std::mutex> g(m_);
  // Whatever was pushed meanwhile is newer than the items taken before it.
  for (auto& i : items_) items.push_back(std::move(i));
  items_ = std::move(items);
}

}  // namespace mmgen::worker::detail

namespace mmgen::worker {

using detail::StopReason;

JobContext::JobContext(std::shared_ptr<detail::JobState> state) : s_(std::move(state)) {}
JobContext::~JobContext() = default;

const proto::JobAssign& JobContext::job() const { return s_->assign; }
const Params& JobContext::params() const { return s_->params; }
const std::vector<Input>& JobContext::inputs() const { return s_->inputs; }

bool JobContext::cancelled() const { return s_->stop_reason() != StopReason::none; }

void JobContext::check_cancelled() const {
  if (cancelled()) throw Cancelled();
}

bool JobContext::sleep_for(std::chrono::milliseconds d) const {
  using namespace std::chrono;
  auto until = steady_clock::now() + d;
  if (s_->deadline_ms > 0) {
    until = std::min(until, steady_clock::time_point(milliseconds(s_->deadline_ms)));
  }
  std::unique_lock<std::mutex> lk(s_->wait_m);
  for (;;) {
    if (s_->reason.load() != static_cast<int>(StopReason::none)) return false;
    if (steady_clock::now() >= until) break;
    s_->wait_cv.wait_until(lk, until);
  }
  lk.unlock();
  return !cancelled();  // trips `timeout` if the sleep ran into the deadline
}

std::int64_t JobContext::elapsed_ms() const {
  const std::int64_t start = s_->started_ms.load();
  return detail::steady_ms() - (start > 0 ? start : s_->received_ms);
}

void JobContext::progress(std::uint32_t step, std::uint32_t total, std::string message,
                          std::optional<Output> preview) {
  proto::Progress p;
  p.job = s_->assign.job;
  p.step = step;
  p.total = total;
  p.message = std::move(message);
  {
    std::lock_guard<std::mutex> g(s_->progress_m);
    const std::int64_t now = detail::steady_ms();
    if (total > 0 && step >= total) {
      p.eta_s = 0;
    } else if (total == 0) {
      p.eta_s = -1;
    } else if (step <= s_->eta_base_step) {
      // No advance since the baseline (typically the step-0 report after
      // set-up): restart the rate measurement here.
      s_->eta_base_ms = now;
      s_->eta_base_step = step;
    } else {
      const double per_step_s =
          static_cast<double>(now - s_->eta_base_ms) / 1000.0 / (step - s_->eta_base_step);
      p.eta_s = per_step_s * (total - step);
    }
  }
  proto::Frames blobs;
  if (preview) {
    if (preview->data.size() > s_->limits->max_result_bytes) {
      log::warn("preview_dropped", {{"job", p.job},
                                    {"bytes", preview->data.size()},
                                    {"limit", s_->limits->max_result_bytes}});
    } else {
      p.preview = proto::BlobMeta{preview->name, preview->mime, preview->data.size()};
      blobs.emplace_back(preview->data.data(), preview->data.size());
    }
  }
  std::string body = proto::encode(p);
  if (body.size() > s_->limits->max_body_bytes) {
    throw proto::ProtocolError(proto::ErrorCode::too_large,
                               "progress message of " + std::to_string(body.size()) +
                                   " bytes exceeds the body limit");
  }
  s_->outbox->push({s_,
                    proto::make_message(proto::kWorkerProtocol,
                                        static_cast<std::uint8_t>(proto::WorkerCmd::Progress),
                                        body, std::move(blobs)),
                    false});
}

void JobContext::partial(ValueMap data) {
  proto::Partial p;
  p.job = s_->assign.job;
  p.data = std::move(data);
  // seq is taken and the message queued under one lock, so concurrent callers
  // cannot put seq n+1 on the wire before seq n.
  std::lock_guard<std::mutex> g(s_->progress_m);
  p.seq = s_->next_seq.load();
  std::string body = proto::encode(p);
  if (body.size() > s_->limits->max_body_bytes) {
    throw proto::ProtocolError(proto::ErrorCode::too_large,
                               "partial of " + std::to_string(body.size()) +
                                   " bytes exceeds the body limit of " +
                                   std::to_string(s_->limits->max_body_bytes));
  }
  s_->next_seq.fetch_add(1);
  s_->outbox->push({s_,
                    proto::make_message(proto::kWorkerProtocol,
                                        static_cast<std::uint8_t>(proto::WorkerCmd::Partial),
                                        body),
                    false});
}

}  // namespace mmgen::worker

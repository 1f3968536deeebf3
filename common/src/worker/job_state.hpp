// Shared state of one job between the I/O thread (which receives JOB/CANCEL
// and sends everything) and the compute thread running its handler, and the
// outbox through which compute threads hand messages to the I/O thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mmgen/codec.hpp"
#include "mmgen/worker.hpp"
#include "wakeup.hpp"

namespace mmgen::worker::detail {

std::int64_t steady_ms();

// Why a job's token tripped; the first reason wins.
enum class StopReason : int {
  none = 0,
  cancelled,  // CANCEL from the broker
  timeout,    // JobAssign.timeout_ms passed
  lost,       // connection lost or shutdown grace over: output is dropped
};

class Outbox;

struct JobState {
  proto::JobAssign assign;
  Params params;
  std::vector<Input> inputs;
  std::int64_t received_ms = 0;
  std::int64_t deadline_ms = 0;  // steady clock; 0: none
  const proto::Limits* limits = nullptr;
  Outbox* outbox = nullptr;

  std::atomic<int> reason{0};
  std::atomic<std::uint64_t> next_seq{0};
  std::atomic<std::int64_t> started_ms{0};

  // Wakes sleep_for() when the token trips.
  std::mutex wait_m;
  std::condition_variable wait_cv;

  // ETA baseline: the time and step of the last report that did not advance.
  std::mutex progress_m;
  std::int64_t eta_base_ms = 0;
  std::uint32_t eta_base_step = 0;

  // Trips the token; returns true if this call set the reason.
  bool trip(StopReason r);
  // The reason, tripping `timeout` first if the deadline has passed.
  StopReason stop_reason();
};

// One message for the I/O thread to send. `job` tells it which job the
// message belongs to: it is dropped unless that job is still leased to this
// session. `terminal` (RESULT/ERROR) ends the job's lease on this worker.
struct OutItem {
  std::shared_ptr<JobState> job;
  proto::Frames frames;
  bool terminal = false;
};

// Messages from compute threads to the broker, in order. push() first offers
// the queue to the courier, which sends it from the calling thread when the
// I/O thread is idle (saving a thread hand-off on every job), and otherwise
// wakes the I/O thread, which sends it.
class Outbox {
 public:
  // Returns true if it sent everything queued and the I/O thread need not wake.
  using Courier = std::function<bool()>;
  explicit Outbox(const Wakeup& wake) : wake_(wake) {}
  void set_courier(Courier c) { courier_ = std::move(c); }  // before the first push
  void push(OutItem item);
  std::deque<OutItem> take_all();
  // Returns items taken but not sent to the front of the queue, in order.
  void put_back(std::deque<OutItem> items);

 private:
  const Wakeup& wake_;
  Courier courier_;
  std::mutex m_;
  std::deque<OutItem> items_;
};

}  // namespace mmgen::worker::detail

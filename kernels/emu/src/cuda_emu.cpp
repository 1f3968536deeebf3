// Implementation of the CUDA emulator (see cuda_emu.hpp for what it models).
#include "mmgen/emu/cuda_emu.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mmgen::emu {
namespace {

constexpr int kDefaultMaxDynamicShared = 48 * 1024;
constexpr int kHardMaxDynamicShared = 166912;  // sm_80's per-block opt-in limit

// Thrown inside emulated threads to unwind them when the launch is aborted.
struct Aborted {};

double timeout_seconds() {
  const char* env = std::getenv("MMGEN_EMU_TIMEOUT_S");
  const double v = env ? std::atof(env) : 0.0;
  return v > 0 ? v : 60.0;
}

class Launch;

// A reusable barrier that can be aborted, times out into a launch failure,
// and checks that every thread of a phase arrived for the same reason.
class Barrier {
 public:
  enum Kind { kSyncthreads = 0, kBlockEnd = 1, kWarp = 2 };
  Barrier(int n, Launch* launch) : n_(n), launch_(launch) {}
  void arrive_and_wait(Kind kind);
  void abort() {
    std::lock_guard lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int n_;
  int count_ = 0;
  std::uint64_t generation_ = 0;
  Kind phase_kind_ = kSyncthreads;
  bool aborted_ = false;
  Launch* launch_;
};

struct Warp {
  Warp(int lanes, Launch* launch) : lanes(lanes), bar(lanes, launch) {}
  int lanes;
  Barrier bar;
  alignas(8) unsigned char slots[32][8] = {};
};

class Launch {
 public:
  Launch(dim3 grid, dim3 block, std::size_t smem)
      : grid_(grid), block_(block), threads_(int(block.x * block.y * block.z)),
        block_bar_(threads_, this), smem_(smem ? smem : 1) {
    for (int w = 0; w * 32 < threads_; ++w)
      warps_.push_back(std::make_unique<Warp>(std::min(32, threads_ - w * 32), this));
    dyn_smem_.reset(static_cast<unsigned char*>(std::aligned_alloc(16, (smem_ + 15) / 16 * 16)));
  }
  void run(const std::function<void()>& body);
  void fail(const std::string& msg) {
    {
      std::lock_guard lock(mu_);
      if (!failed_) message_ = msg;
      failed_ = true;
    }
    block_bar_.abort();
    for (auto& w : warps_) w->bar.abort();
  }
  bool failed() {
    std::lock_guard lock(mu_);
    return failed_;
  }
  std::string message() {
    std::lock_guard lock(mu_);
    return message_;
  }
  Barrier& block_barrier() { return block_bar_; }
  Warp& warp(int w) { return *warps_[std::size_t(w)]; }
  unsigned char* dyn_smem() { return dyn_smem_.get(); }

 private:
  void thread_main(int linear, const std::function<void()>& body);

  dim3 grid_, block_;
  int threads_;
  Barrier block_bar_;
  std::vector<std::unique_ptr<Warp>> warps_;
  std::size_t smem_;
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::unique_ptr<unsigned char, Free> dyn_smem_;
  std::mutex mu_;
  bool failed_ = false;
  std::string message_;
};

thread_local Launch* tl_launch = nullptr;
thread_local int tl_linear = 0;
thread_local cudaError_t tl_last_error = cudaSuccess;
thread_local std::string tl_last_message;

void Barrier::arrive_and_wait(Kind kind) {
  std::unique_lock lock(mu_);
  if (aborted_) throw Aborted{};
  if (count_ == 0) {
    phase_kind_ = kind;
  } else if (phase_kind_ != kind && kind != kWarp) {
    lock.unlock();
    launch_->fail(
        "divergent __syncthreads: in one block some threads reached __syncthreads while others "
        "finished the block (an early return before a barrier?)");
    throw Aborted{};
  }
  if (++count_ == n_) {
    count_ = 0;
    ++generation_;
    cv_.notify_all();
    return;
  }
  const std::uint64_t gen = generation_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds());
  while (generation_ == gen && !aborted_) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && generation_ == gen && !aborted_) {
      const std::string msg = "deadlock: " + std::to_string(count_) + " of " + std::to_string(n_) +
                              (kind == kWarp ? " lanes waiting at a warp shuffle/__syncwarp"
                                             : " threads waiting at __syncthreads") +
                              " for longer than MMGEN_EMU_TIMEOUT_S";
      lock.unlock();
      launch_->fail(msg);
      throw Aborted{};
    }
  }
  if (generation_ == gen) throw Aborted{};
}

void Launch::thread_main(int linear, const std::function<void()>& body) {
  tl_launch = this;
  tl_linear = linear;
  threadIdx = uint3{unsigned(linear) % block_.x, (unsigned(linear) / block_.x) % block_.y,
                    unsigned(linear) / (block_.x * block_.y)};
  blockDim = block_;
  gridDim = grid_;
  try {
    for (unsigned z = 0; z < grid_.z; ++z)
      for (unsigned y = 0; y < grid_.y; ++y)
        for (unsigned x = 0; x < grid_.x; ++x) {
          blockIdx = uint3{x, y, z};
          body();
          // Nobody may start the next block (and reuse its shared memory)
          // before every thread has finished this one.
          block_bar_.arrive_and_wait(Barrier::kBlockEnd);
        }
  } catch (const Aborted&) {
  } catch (const std::exception& e) {
    fail(std::string("exception in emulated kernel: ") + e.what());
  }
  tl_launch = nullptr;
}

void Launch::run(const std::function<void()>& body) {
  std::vector<std::thread> team;
  team.reserve(std::size_t(threads_));
  for (int t = 0; t < threads_; ++t) team.emplace_back([this, t, &body] { thread_main(t, body); });
  for (auto& th : team) th.join();
}

std::mutex& launch_mutex() {
  static std::mutex mu;
  return mu;
}
std::mutex& attr_mutex() {
  static std::mutex mu;
  return mu;
}
std::map<const void*, int>& smem_limits() {
  static std::map<const void*, int> limits;
  return limits;
}

Launch& current() {
  if (!tl_launch) throw std::logic_error("device function called outside an emulated kernel");
  return *tl_launch;
}

cudaError_t record(cudaError_t err, std::string msg) {
  tl_last_error = err;
  tl_last_message = std::move(msg);
  return err;
}

}  // namespace

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > kHardMaxDynamicShared) return cudaErrorInvalidValue;
  std::lock_guard lock(attr_mutex());
  smem_limits()[kernel] = bytes;
  return cudaSuccess;
}

cudaError_t run_launch(dim3 grid, dim3 block, std::size_t dynamic_smem, const void* kernel,
                       const std::function<void()>& body) {
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
    return record(cudaErrorInvalidConfiguration, "invalid launch configuration");
  }
  int limit = kDefaultMaxDynamicShared;
  {
    std::lock_guard lock(attr_mutex());
    auto it = smem_limits().find(kernel);
    if (it != smem_limits().end()) limit = std::max(limit, it->second);
  }
  if (dynamic_smem > std::size_t(limit)) {
    return record(cudaErrorInvalidValue, "dynamic shared memory of " + std::to_string(dynamic_smem) +
                                             " bytes exceeds the kernel's limit of " + std::to_string(limit));
  }
  // __shared__ variables are function statics: one launch at a time.
  std::lock_guard lock(launch_mutex());
  Launch launch(grid, block, dynamic_smem);
  launch.run(body);
  if (launch.failed()) return record(cudaErrorLaunchFailure, launch.message());
  return record(cudaSuccess, "");
}

const char* last_launch_message() { return tl_last_message.c_str(); }

unsigned lane_id() {
  current();
  return unsigned(tl_linear) % 32u;
}

void sync_block() { current().block_barrier().arrive_and_wait(Barrier::kSyncthreads); }

void sync_warp(unsigned mask) {
  Launch& l = current();
  Warp& w = l.warp(tl_linear / 32);
  const unsigned need = w.lanes == 32 ? 0xffffffffu : ((1u << w.lanes) - 1u);
  if ((mask & need) != need) {
    l.fail("__syncwarp/shuffle with a partial lane mask is not modelled by the emulator");
    throw Aborted{};
  }
  w.bar.arrive_and_wait(Barrier::kWarp);
}

void warp_exchange(unsigned mask, const void* value, void* result, std::size_t size, int src_lane) {
  Launch& l = current();
  Warp& w = l.warp(tl_linear / 32);
  const int lane = tl_linear % 32;
  std::memcpy(w.slots[lane], value, size);
  sync_warp(mask);  // every lane has published its value
  // A lane the warp does not have (partial last warp) reads the caller's value.
  std::memcpy(result, src_lane < w.lanes ? w.slots[src_lane] : w.slots[lane], size);
  sync_warp(mask);  // every lane has read before anyone overwrites its slot
}

void* dynamic_shared_memory() { return current().dyn_smem(); }

int threads_blocked_in_syncthreads() { return current().block_barrier().waiting(); }

}  // namespace mmgen::emu

cudaError_t cudaGetLastError() {
  const cudaError_t e = mmgen::emu::tl_last_error;
  mmgen::emu::tl_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return mmgen::emu::tl_last_error; }

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

// Time as an injected dependency: the broker's dispatcher and other pure
// state machines read time only through Clock, so tests drive it by hand.
#pragma once

#include <chrono>
#include <cstdint>

namespace mmgen {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t now_ms() const = 0;  // monotonic milliseconds
};

class SteadyClock final : public Clock {
 public:
  std::int64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t start_ms = 1'000'000) : t_(start_ms) {}
  std::int64_t now_ms() const override { return t_; }
  void advance(std::int64_t ms) { t_ += ms; }
  void set(std::int64_t ms) { t_ = ms; }

 private:
  std::int64_t t_;
};

// Wall-clock seconds since the epoch, for records shown to people.
inline double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace mmgen

// Reconnect delays: min, doubling up to max; reset() after a successful
// exchange with the broker starts again from min.
#pragma once

#include <algorithm>

namespace mmgen::worker::detail {

class Backoff {
 public:
  Backoff(int min_ms, int max_ms) : min_(std::max(1, min_ms)), max_(std::max(min_, max_ms)), next_(min_) {}

  int next() {
    const int d = next_;
    next_ = next_ >= max_ / 2 ? max_ : next_ * 2;
    return d;
  }
  void reset() { next_ = min_; }

 private:
  int min_, max_, next_;
};

}  // namespace mmgen::worker::detail

// SIGTERM/SIGINT -> Worker::stop() while a Worker runs. The handler only does
// what is async-signal-safe: an atomic store and a pipe write (inside stop()).
// A second signal while stopping exits at once (_exit), for a handler that
// never looks at its cancellation token.
#pragma once

#include <csignal>

#include "mmgen/worker.hpp"

namespace mmgen::worker::detail {

class SignalGuard {
 public:
  explicit SignalGuard(Worker& target);  // no-op if another Worker holds the signals
  ~SignalGuard();                        // restores the previous handlers
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  bool installed_ = false;
  struct sigaction old_term_ {};
  struct sigaction old_int_ {};
};

}  // namespace mmgen::worker::detail

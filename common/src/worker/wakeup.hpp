// A self-pipe the I/O thread polls beside its ZeroMQ socket: compute threads
// and signal handlers write one byte to wake it. notify() only calls write(2),
// so it is async-signal-safe.
#pragma once

namespace mmgen::worker::detail {

class Wakeup {
 public:
  Wakeup();  // throws std::system_error if the pipe cannot be made
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  void notify() const noexcept;  // a full pipe already means "wake up": ignored
  void drain() const noexcept;   // reads everything written so far
  int fd() const { return fds_[0]; }

 private:
  int fds_[2] = {-1, -1};
};

}  // namespace mmgen::worker::detail

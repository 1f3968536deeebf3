#include "wakeup.hpp"

#include <cerrno>
#include <fcntl.h>
#include <system_error>
#include <unistd.h>

namespace mmgen::worker::detail {

Wakeup::Wakeup() {
  if (::pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(), "worker wake-up pipe");
  }
}

Wakeup::~Wakeup() {
  ::close(fds_[0]);
  ::close(fds_[1]);
}

void Wakeup::notify() const noexcept {
  const int saved = errno;  // a signal handler must leave errno as it found it
  const char byte = 1;
  ssize_t n;
  do {
    n = ::write(fds_[1], &byte, 1);
  } while (n < 0 && errno == EINTR);
  errno = saved;
}

void Wakeup::drain() const noexcept {
  char buf[256];
  for (;;) {
    const ssize_t n = ::read(fds_[0], buf, sizeof buf);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;  // EAGAIN: empty
  }
}

}  // namespace mmgen::worker::detail

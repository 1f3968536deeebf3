#include "signals.hpp"

#include <atomic>
#include <unistd.h>

#include "mmgen/log.hpp"

namespace mmgen::worker::detail {
namespace {

std::atomic<Worker*> g_target{nullptr};
std::atomic<int> g_signals{0};

extern "C" void on_stop_signal(int sig) {
  if (g_signals.fetch_add(1) > 0) {
    static const char msg[] = "second stop signal: exiting now\n";
    ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(128 + sig);
  }
  if (Worker* w = g_target.load()) w->stop();
}

}  // namespace

SignalGuard::SignalGuard(Worker& target) {
  Worker* expected = nullptr;
  if (!g_target.compare_exchange_strong(expected, &target)) {
    log::warn("signals_not_installed", {{"reason", "another worker holds SIGTERM/SIGINT"}});
    return;
  }
  g_signals.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART spares handlers' blocking calls an EINTR; poll() is never
  // restarted, and the pipe write in stop() wakes the I/O thread anyway.
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, &old_term_);
  ::sigaction(SIGINT, &sa, &old_int_);
  installed_ = true;
}

SignalGuard::~SignalGuard() {
  if (!installed_) return;
  ::sigaction(SIGTERM, &old_term_, nullptr);
  ::sigaction(SIGINT, &old_int_, nullptr);
  g_target.store(nullptr);
}

}  // namespace mmgen::worker::detail

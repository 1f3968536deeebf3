// `mmgen`: wires the process into run_cli (see run_cli.hpp).
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "cli/run_cli.hpp"

namespace {

std::atomic<int> g_interrupts{0};

extern "C" void on_sigint(int) { g_interrupts.fetch_add(1); }

void install_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  // No SA_RESTART: a blocking read of the y/N answer returns on a second Ctrl-C.
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
}

int terminal_width() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

}  // namespace

int main(int argc, char** argv) {
  install_sigint();
  std::vector<std::string> args(argv + 1, argv + argc);
  mmgen::cli::CliIo io{std::cout, std::cerr};
  io.stdin_tty = isatty(STDIN_FILENO) == 1;
  io.stdout_tty = isatty(STDOUT_FILENO) == 1;
  io.stderr_tty = isatty(STDERR_FILENO) == 1;
  io.term_width = io.stderr_tty ? terminal_width() : 80;
  io.read_line = []() -> std::optional<std::string> {
    std::string line;
    if (!std::getline(std::cin, line)) {
      std::cin.clear();
      return std::nullopt;
    }
    return line;
  };
  io.take_interrupt = [] { return g_interrupts.exchange(0) > 0; };
  io.getenv = [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
  return mmgen::cli::run_cli(args, io);
}

// Integration harness: real mmgen processes on loopback. A Stack owns a broker
// and echo workers with their own ports and data folder; every wait is bounded
// and fails with a message naming what did not happen.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mmgen/client.hpp"

namespace mmgen::itest {

using namespace std::chrono_literals;

std::filesystem::path bin_dir();  // where mmgen-broker, mmgen-echo, mmgen live
int free_port();                  // a TCP port nobody listens on right now

// A child process with stderr captured to a log file.
class Process {
 public:
  Process(std::vector<std::string> argv, std::filesystem::path log);
  ~Process();  // SIGKILL if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Exit status (as from waitpid) or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string log_text() const;
  // Resident memory high-water mark (VmHWM) in KiB; 0 if unavailable.
  long peak_rss_kib() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_;
};

struct StackOptions {
  std::vector<std::string> broker_args;  // extra flags
  std::vector<std::string> echo_args;    // extra flags for every echo worker
  int heartbeat_ms = 200;                // both sides: quick failure detection in tests
};

class Stack {
 public:
  explicit Stack(StackOptions opts = {});
  ~Stack();

  const std::string& clients_ep() const { return clients_; }
  const std::string& workers_ep() const { return workers_; }
  const std::filesystem::path& dir() const { return dir_; }

  Process& start_broker();
  Process& broker() { return *broker_; }
  void kill_broker();  // SIGKILL and reap
  Process& start_echo(std::vector<std::string> extra = {});
  Process& echo(std::size_t i) { return *workers_procs_.at(i); }

  // Waits until WORKERS shows `n` workers of `service`.
  void wait_workers(const std::string& service, std::uint32_t n, std::chrono::milliseconds timeout = 20s);
  std::unique_ptr<client::Client> client();
  std::string logs() const;  // every process's log, for failure messages

 private:
  StackOptions opts_;
  std::filesystem::path dir_;
  std::string clients_, workers_;
  int http_port_ = 0;
  std::unique_ptr<Process> broker_;
  int broker_starts_ = 0;
  std::vector<std::unique_ptr<Process>> workers_procs_;
};

// An echo SUBMIT with the given params.
proto::Submit echo_job(ValueMap params, int priority = proto::kDefaultPriority);

// Collects events for many jobs: terminal events by job, and counts.
struct JobTracker {
  std::map<std::string, client::Event> terminal;
  std::map<std::string, int> terminal_count;
  std::map<std::string, std::vector<std::uint32_t>> started_attempts;
  void add(client::Event ev);
};

}  // namespace mmgen::itest

#include "harness.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace mmgen::itest {

// MMGEN_ITEST_BIN_DIR runs the same tests or benchmark against other builds
// of the binaries (e.g. before/after a change, in one session).
std::filesystem::path bin_dir() {
  if (const char* d = std::getenv("MMGEN_ITEST_BIN_DIR"); d && *d) return d;
  return MMGEN_BIN_DIR;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("free_port: bind failed");
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

Process::Process(std::vector<std::string> argv, std::filesystem::path log) : log_(std::move(log)) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
}

Process::~Process() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait_exit(10s);
  }
}

bool Process::running() {
  if (status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) status_ = st;
  return !status_;
}

void Process::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);  // polling a child's exit, not synchronising
  }
  return status_;
}

std::string Process::log_text() const {
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

long Process::peak_rss_kib() const {
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

Stack::Stack(StackOptions opts) : opts_(std::move(opts)) {
  std::random_device rd;
  dir_ = std::filesystem::temp_directory_path() / ("mmgen-itest-" + std::to_string(::getpid()) + "-" +
                                                   std::to_string(rd() % 1000000));
  std::filesystem::create_directories(dir_ / "data");
  clients_ = "tcp://127.0.0.1:" + std::to_string(free_port());
  workers_ = "tcp://127.0.0.1:" + std::to_string(free_port());
  http_port_ = free_port();
}

Stack::~Stack() {
  workers_procs_.clear();
  broker_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

Process& Stack::start_broker() {
  std::vector<std::string> argv = {(bin_dir() / "mmgen-broker").string(),
                                   "--clients", clients_,
                                   "--workers", workers_,
                                   "--http", std::to_string(http_port_),
                                   "--data", (dir_ / "data").string(),
                                   "--heartbeat-ms", std::to_string(opts_.heartbeat_ms)};
  argv.insert(argv.end(), opts_.broker_args.begin(), opts_.broker_args.end());
  broker_ = std::make_unique<Process>(argv, dir_ / ("broker-" + std::to_string(broker_starts_++) + ".log"));
  return *broker_;
}

void Stack::kill_broker() {
  broker_->signal(SIGKILL);
  if (!broker_->wait_exit(10s)) throw std::runtime_error("broker did not die on SIGKILL");
}

Process& Stack::start_echo(std::vector<std::string> extra) {
  std::vector<std::string> argv = {(bin_dir() / "mmgen-echo").string(), "--broker", workers_,
                                   "--heartbeat-ms", std::to_string(opts_.heartbeat_ms)};
  argv.insert(argv.end(), opts_.echo_args.begin(), opts_.echo_args.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto log = dir_ / ("echo-" + std::to_string(workers_procs_.size()) + ".log");
  workers_procs_.push_back(std::make_unique<Process>(argv, log));
  return *workers_procs_.back();
}

void Stack::wait_workers(const std::string& service, std::uint32_t n, std::chrono::milliseconds timeout) {
  auto c = client();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::uint32_t seen = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto req = c->workers();
    if (auto ev = c->wait_reply(req, 1s)) {
      if (const auto* wl = ev->get_if<proto::WorkerList>()) {
        seen = 0;
        for (const auto& s : wl->services)
          if (s.service == service) seen = s.workers;
        if (seen == n) return;
      }
    }
    std::this_thread::sleep_for(20ms);  // re-poll interval of a bounded wait
  }
  throw std::runtime_error("timed out waiting for " + std::to_string(n) + " '" + service +
                           "' workers (saw " + std::to_string(seen) + ")\n" + logs());
}

std::unique_ptr<client::Client> Stack::client() { return std::make_unique<client::Client>(clients_); }

std::string Stack::logs() const {
  std::string out;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    if (e.path().extension() != ".log") continue;
    std::ifstream f(e.path());
    std::stringstream ss;
    ss << f.rdbuf();
    auto text = ss.str();
    if (text.size() > 4000) text = "..." + text.substr(text.size() - 4000);
    out += "---- " + e.path().filename().string() + "\n" + text;
  }
  return out;
}

proto::Submit echo_job(ValueMap params, int priority) {
  proto::Submit s;
  s.service = "echo";
  s.params = std::move(params);
  s.priority = priority;
  return s;
}

void JobTracker::add(client::Event ev) {
  if (ev.kind == proto::EventCmd::Started)
    started_attempts[ev.job].push_back(ev.as<proto::Started>().attempt);
  if (ev.is_terminal() && !ev.job.empty()) {
    ++terminal_count[ev.job];
    terminal.insert_or_assign(ev.job, std::move(ev));
  }
}

}  // namespace mmgen::itest

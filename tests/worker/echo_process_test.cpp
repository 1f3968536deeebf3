// The mmgen-echo binary as a process: exit codes of its command line, and a
// real SIGTERM while it serves a scripted broker.
#include <csignal>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "fake_broker.hpp"

extern char** environ;

namespace mmgen::worker_test {
namespace {

using proto::WorkerCmd;

class Process {
 public:
  explicit Process(std::vector<std::string> args) {
    args.insert(args.begin(), MMGEN_ECHO_BIN);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, MMGEN_ECHO_BIN, nullptr, nullptr, argv.data(), environ);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << MMGEN_ECHO_BIN << ": " << rc;
      pid_ = -1;
    }
  }
  ~Process() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit status once the process has exited, polled up to `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_ && pid_ > 0) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      } else if (std::chrono::steady_clock::now() >= deadline) {
        ADD_FAILURE() << "mmgen-echo did not exit within " << timeout.count() << " ms";
        break;
      } else {
        std::this_thread::sleep_for(5ms);  // polling a child's exit, not synchronising
      }
    }
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

TEST(EchoProcess, HelpExitsZeroAndUsageErrorsExitTwo) {
  EXPECT_EQ(Process({"--help"}).wait(), 0);
  EXPECT_EQ(Process({"--bogus"}).wait(), 2);
  EXPECT_EQ(Process({"--capacity", "0"}).wait(), 2);
  EXPECT_EQ(Process({"--broker", "nowhere"}).wait(), 2);
}

TEST(EchoProcess, ServesAJobThenLeavesCleanlyOnSigterm) {
  FakeBroker b;
  Process p({"--broker", b.endpoint(), "--heartbeat-ms", "100", "--capacity", "2"});
  auto ready = b.expect(WorkerCmd::Ready);
  ASSERT_TRUE(ready);
  const auto r = ready->as<proto::Ready>();
  EXPECT_EQ(r.service, "echo");
  EXPECT_EQ(r.capacity, 2u);
  EXPECT_FALSE(r.version.empty());

  b.send_job(ready->peer, make_job("j1", "echo", {{"text", "hi"}}));
  auto m = b.expect(WorkerCmd::Result);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->as<proto::Result>().data.at("text"), Value("hi"));

  // SIGTERM in the middle of a job: it finishes, its result goes out, then DISCONNECT.
  b.send_job(ready->peer, make_job("j2", "echo", {{"sleep_ms", 300}}));
  ASSERT_TRUE(b.expect(WorkerCmd::Progress));
  p.signal(SIGTERM);
  for (;;) {
    auto n = b.next();
    ASSERT_TRUE(n);
    if (n->cmd == WorkerCmd::Progress) continue;
    ASSERT_EQ(n->cmd, WorkerCmd::Result) << name_of(n->cmd);
    EXPECT_EQ(n->as<proto::Result>().job, "j2");
    break;
  }
  EXPECT_TRUE(b.expect(WorkerCmd::Disconnect));
  EXPECT_EQ(p.wait(), 0);
}

}  // namespace
}  // namespace mmgen::worker_test

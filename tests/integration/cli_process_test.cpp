// The `mmgen` binary end to end against a real stack: exit codes and --json.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>

#include "harness.hpp"

namespace mmgen::itest {
namespace {

struct Run {
  int exit_code;
  std::string out;
};

Run run_cli(const std::string& args) {
  std::string cmd = (bin_dir() / "mmgen").string() + " " + args + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(CliProcess, EchoJsonSuccessFailureAndUnreachable) {
  Stack stack;
  stack.start_broker();
  stack.start_echo();
  stack.wait_workers("echo", 1);
  const std::string broker = "--broker " + stack.clients_ep();

  auto ok = run_cli(broker + " --json echo hello --partials 2");
  EXPECT_EQ(ok.exit_code, 0) << ok.out << stack.logs();
  EXPECT_NE(ok.out.find("\"event\":\"accepted\""), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("\"event\":\"partial\""), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("\"event\":\"result\""), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("hello"), std::string::npos) << ok.out;

  auto plain = run_cli(broker + " echo plain-text");
  EXPECT_EQ(plain.exit_code, 0);
  EXPECT_NE(plain.out.find("plain-text"), std::string::npos) << plain.out;

  auto fail = run_cli(broker + " --json echo boom --fail");
  EXPECT_EQ(fail.exit_code, 1) << fail.out;
  EXPECT_NE(fail.out.find("\"code\":\"internal\""), std::string::npos) << fail.out;

  auto unknown = run_cli(broker + " --json video 'a cat'");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.out.find("unknown_service"), std::string::npos) << unknown.out;

  auto detached = run_cli(broker + " --detach echo later");
  EXPECT_EQ(detached.exit_code, 0);
  std::string id = detached.out.substr(0, detached.out.find('\n'));
  ASSERT_FALSE(id.empty());
  auto waited = run_cli(broker + " wait " + id);
  EXPECT_EQ(waited.exit_code, 0) << waited.out;

  auto t0 = std::chrono::steady_clock::now();
  auto gone = run_cli("--broker tcp://127.0.0.1:" + std::to_string(free_port()) + " echo nobody");
  EXPECT_EQ(gone.exit_code, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
}

}  // namespace
}  // namespace mmgen::itest

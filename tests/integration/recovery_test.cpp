// Crashes: a worker SIGKILLed in the middle of jobs, and the broker SIGKILLed
// and restarted on the same data folder. No accepted job may be lost.
#include <gtest/gtest.h>

#include <signal.h>

#include "harness.hpp"

namespace mmgen::itest {
namespace {

TEST(Recovery, WorkerKilledMidJobTheJobsCompleteOnAnother) {
  Stack stack;
  stack.start_broker();
  auto& victim = stack.start_echo();
  stack.wait_workers("echo", 1);
  stack.start_echo();
  stack.wait_workers("echo", 2);

  auto c = stack.client();
  std::vector<std::string> jobs;
  for (int i = 0; i < 4; ++i) {
    auto ev = c->submit_and_wait(echo_job({{"text", "slow-" + std::to_string(i)}, {"sleep_ms", 1500}}), {}, 5s);
    ASSERT_TRUE(ev && ev->kind == proto::EventCmd::Accepted) << stack.logs();
    jobs.push_back(ev->job);
  }
  // Both workers are busy (capacity 1 each) once two jobs have started.
  JobTracker tracker;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::size_t started = 0;
  while (started < 2 && std::chrono::steady_clock::now() < deadline) {
    if (auto ev = c->next(500ms)) {
      if (ev->kind == proto::EventCmd::Started) ++started;
      tracker.add(std::move(*ev));
    }
  }
  ASSERT_EQ(started, 2u) << stack.logs();
  victim.signal(SIGKILL);

  deadline = std::chrono::steady_clock::now() + 30s;
  while (tracker.terminal.size() < jobs.size() && std::chrono::steady_clock::now() < deadline)
    if (auto ev = c->next(500ms)) tracker.add(std::move(*ev));
  ASSERT_EQ(tracker.terminal.size(), jobs.size()) << stack.logs();
  bool retried = false;
  for (const auto& j : jobs) {
    EXPECT_EQ(tracker.terminal.at(j).kind, proto::EventCmd::Result) << j;
    EXPECT_EQ(tracker.terminal_count.at(j), 1) << j;
    for (auto a : tracker.started_attempts[j]) retried |= a >= 2;
  }
  EXPECT_TRUE(retried) << "the killed worker's job should have run again with attempt 2";
}

TEST(Recovery, BrokerKilledAndRestartedLosesNoAcceptedJob) {
  Stack stack;
  stack.start_broker();
  stack.start_echo();
  stack.wait_workers("echo", 1);

  auto c = stack.client();
  std::vector<std::string> jobs;
  for (int i = 0; i < 8; ++i) {
    auto ev = c->submit_and_wait(echo_job({{"text", "r-" + std::to_string(i)}, {"sleep_ms", 150}}), {}, 5s);
    ASSERT_TRUE(ev && ev->kind == proto::EventCmd::Accepted) << stack.logs();
    jobs.push_back(ev->job);
  }
  // Let a couple finish so there are stored results, then kill the broker.
  JobTracker before;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (before.terminal.size() < 2 && std::chrono::steady_clock::now() < deadline)
    if (auto ev = c->next(500ms)) before.add(std::move(*ev));
  ASSERT_GE(before.terminal.size(), 2u) << stack.logs();
  stack.kill_broker();
  stack.start_broker();

  // A client that reconnects re-attaches to every job and sees each finish.
  c->reconnect();
  JobTracker after;
  for (const auto& j : jobs) c->attach(j);
  deadline = std::chrono::steady_clock::now() + 40s;
  while (after.terminal.size() < jobs.size() && std::chrono::steady_clock::now() < deadline) {
    auto ev = c->next(500ms);
    if (!ev) continue;
    ASSERT_FALSE(ev->kind == proto::EventCmd::Error && ev->as<proto::Error>().code == proto::ErrorCode::not_found)
        << "accepted job lost across the restart: " << ev->job << "\n" << stack.logs();
    after.add(std::move(*ev));
  }
  ASSERT_EQ(after.terminal.size(), jobs.size()) << stack.logs();
  for (const auto& j : jobs) {
    const auto& ev = after.terminal.at(j);
    ASSERT_EQ(ev.kind, proto::EventCmd::Result) << j;
  }
  // Results stay fetchable by id from a brand-new client.
  auto fresh = stack.client();
  for (const auto& j : jobs) {
    auto ev = fresh->fetch_and_wait(j, 5s);
    ASSERT_TRUE(ev) << "no answer to FETCH " << j;
    ASSERT_EQ(ev->kind, proto::EventCmd::Result) << j;
    auto idx = std::to_string(&j - jobs.data());
    EXPECT_EQ(ev->as<proto::Result>().data.at("text").as_string(), "r-" + idx);
  }
}

TEST(Recovery, WorkerSigtermFinishesItsJobThenLeaves) {
  Stack stack;
  stack.start_broker();
  auto& w = stack.start_echo();
  stack.wait_workers("echo", 1);
  auto c = stack.client();
  auto acc = c->submit_and_wait(echo_job({{"text", "last"}, {"sleep_ms", 600}}), {}, 5s);
  ASSERT_TRUE(acc && acc->kind == proto::EventCmd::Accepted);
  // PROGRESS proves the handler is running (STARTED only says it was dispatched).
  auto running = c->wait_for([](const client::Event& e) { return e.kind == proto::EventCmd::Progress; }, 10s);
  ASSERT_TRUE(running) << stack.logs();
  w.signal(SIGTERM);
  auto term = c->wait_terminal(acc->job, 15s);
  ASSERT_TRUE(term) << stack.logs();
  EXPECT_EQ(term->kind, proto::EventCmd::Result);
  auto st = w.wait_exit(15s);
  ASSERT_TRUE(st) << "worker did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << "status " << *st;
  stack.wait_workers("echo", 0);
}

}  // namespace
}  // namespace mmgen::itest

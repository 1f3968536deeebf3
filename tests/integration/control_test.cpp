// Backpressure, cancel, timeout, and hostile traffic against real processes.
#include <gtest/gtest.h>

#include <sched.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "harness.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::itest {
namespace {

client::Event must(std::optional<client::Event> ev, const Stack& stack, const char* what) {
  if (!ev) throw std::runtime_error(std::string("timed out waiting for ") + what + "\n" + stack.logs());
  return std::move(*ev);
}

TEST(Control, QueueFullIsATypedErrorAndNothingIsLost) {
  StackOptions o;
  o.broker_args = {"--queue-limit", "3"};
  Stack stack(o);
  stack.start_broker();  // no worker: jobs stay queued
  auto c = stack.client();
  std::vector<std::string> accepted;
  for (int i = 0; i < 3; ++i) {
    auto ev = must(c->submit_and_wait(echo_job({{"text", "q"}}), {}, 5s), stack, "ACCEPTED");
    ASSERT_EQ(ev.kind, proto::EventCmd::Accepted);
    accepted.push_back(ev.job);
  }
  auto ev = must(c->submit_and_wait(echo_job({{"text", "one too many"}}), {}, 5s), stack, "queue_full");
  ASSERT_EQ(ev.kind, proto::EventCmd::Error);
  EXPECT_EQ(ev.as<proto::Error>().code, proto::ErrorCode::queue_full);
  // The queued jobs run once a worker comes.
  stack.start_echo();
  for (const auto& j : accepted) {
    auto t = must(c->wait_terminal(j, 15s), stack, "RESULT");
    EXPECT_EQ(t.kind, proto::EventCmd::Result);
  }
}

TEST(Control, UnknownServiceIsRefused) {
  Stack stack;
  stack.start_broker();
  auto c = stack.client();
  proto::Submit s;
  s.service = "no_such_service";
  auto ev = must(c->submit_and_wait(s, {}, 5s), stack, "ERROR");
  ASSERT_EQ(ev.kind, proto::EventCmd::Error);
  EXPECT_EQ(ev.as<proto::Error>().code, proto::ErrorCode::unknown_service);
}

TEST(Control, CancelQueuedAndRunningJobs) {
  Stack stack;
  stack.start_broker();
  stack.start_echo();
  stack.wait_workers("echo", 1);
  auto c = stack.client();
  auto a = must(c->submit_and_wait(echo_job({{"sleep_ms", 30000}}), {}, 5s), stack, "ACCEPTED a");
  auto b = must(c->submit_and_wait(echo_job({{"text", "b"}}), {}, 5s), stack, "ACCEPTED b");
  must(c->wait_for([&](const client::Event& e) { return e.kind == proto::EventCmd::Started && e.job == a.job; }, 10s),
       stack, "STARTED a");

  c->cancel(b.job);  // queued: leaves the queue at once
  auto tb = must(c->wait_terminal(b.job, 5s), stack, "CANCELLED b");
  EXPECT_EQ(tb.kind, proto::EventCmd::Cancelled);

  auto t0 = std::chrono::steady_clock::now();
  c->cancel(a.job);  // running: stopped on its worker at the next step
  auto ta = must(c->wait_terminal(a.job, 10s), stack, "CANCELLED a");
  EXPECT_EQ(ta.kind, proto::EventCmd::Cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);

  // The worker is free again.
  auto d = must(c->submit_and_wait(echo_job({{"text", "after"}}), {}, 5s), stack, "ACCEPTED d");
  auto td = must(c->wait_terminal(d.job, 10s), stack, "RESULT d");
  EXPECT_EQ(td.kind, proto::EventCmd::Result);
  auto st = c->status(a.job);
  auto info = must(c->wait_reply(st, 5s), stack, "JOBINFO");
  EXPECT_EQ(info.as<proto::JobInfo>().state, proto::JobState::cancelled);
}

TEST(Control, TimeoutFailsTheJobAndFreesTheWorker) {
  Stack stack;
  stack.start_broker();
  stack.start_echo();
  stack.wait_workers("echo", 1);
  auto c = stack.client();
  auto s = echo_job({{"sleep_ms", 30000}});
  s.timeout_ms = 400;
  auto a = must(c->submit_and_wait(s, {}, 5s), stack, "ACCEPTED");
  auto t = must(c->wait_terminal(a.job, 10s), stack, "timeout");
  ASSERT_EQ(t.kind, proto::EventCmd::Error);
  EXPECT_EQ(t.as<proto::Error>().code, proto::ErrorCode::timeout);
  auto b = must(c->submit_and_wait(echo_job({{"text", "next"}}), {}, 5s), stack, "ACCEPTED");
  EXPECT_EQ(must(c->wait_terminal(b.job, 10s), stack, "RESULT").kind, proto::EventCmd::Result);
}

TEST(Control, EchoFailureIsAnErrorAndTheWorkerSurvives) {
  Stack stack;
  stack.start_broker();
  stack.start_echo();
  stack.wait_workers("echo", 1);
  auto c = stack.client();
  auto a = must(c->submit_and_wait(echo_job({{"fail", true}}), {}, 5s), stack, "ACCEPTED");
  auto t = must(c->wait_terminal(a.job, 10s), stack, "ERROR");
  ASSERT_EQ(t.kind, proto::EventCmd::Error);
  EXPECT_EQ(t.as<proto::Error>().code, proto::ErrorCode::internal);
  auto b = must(c->submit_and_wait(echo_job({{"text", "still here"}, {"partials", 5}}), {}, 5s), stack, "ACCEPTED");
  int partials = 0;
  while (true) {
    auto ev = must(c->next(10s), stack, "events of b");
    if (ev.kind == proto::EventCmd::Partial) ++partials;
    if (ev.is_terminal() && ev.job == b.job) {
      EXPECT_EQ(ev.kind, proto::EventCmd::Result);
      break;
    }
  }
  EXPECT_EQ(partials, 5);
}

TEST(Control, MalformedFloodDoesNotDisturbRealJobs) {
  Stack stack;
  stack.start_broker();
  stack.start_echo({"--capacity", "4"});
  stack.wait_workers("echo", 1);

  zmq::context_t ctx;
  zmq::socket_t raw(ctx, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(stack.clients_ep());
  zmq::socket_t raw_worker(ctx, zmq::socket_type::dealer);
  raw_worker.set(zmq::sockopt::linger, 0);
  raw_worker.connect(stack.workers_ep());

  auto c = stack.client();
  constexpr int kJobs = 100;
  for (int i = 0; i < kJobs; ++i) c->submit(echo_job({{"text", std::to_string(i)}}));

  std::mt19937 rng(42);
  const std::string huge_array("\x81\xa7service\xdd\xff\xff\xff\xff", 13);
  int sent = 0;
  for (int i = 0; i < 2000; ++i) {
    zmqu::Frames f;
    switch (i % 6) {
      case 0: f.push_back(zmqu::msg("garbage")); break;
      case 1: f.push_back(zmqu::msg("MMGC01")); f.push_back(zmqu::msg("\x01")); f.push_back(zmqu::msg(huge_array)); break;
      case 2: f.push_back(zmqu::msg("MMGC01")); f.push_back(zmqu::msg("\x7f")); f.push_back(zmqu::msg("\x80")); break;
      case 3: f.push_back(zmqu::msg("MMGC01")); f.push_back(zmqu::msg("\x01\x02")); f.push_back(zmqu::msg("\x80")); break;
      case 4: {
        std::string junk(rng() % 64, '\0');
        for (auto& ch : junk) ch = static_cast<char>(rng());
        f.push_back(zmqu::msg("MMGC01")); f.push_back(zmqu::msg("\x01")); f.push_back(zmqu::msg(junk));
        break;
      }
      case 5: f.push_back(zmqu::msg("MMGW01")); f.push_back(zmqu::msg("\x26")); f.push_back(zmqu::msg("\xc1")); break;
    }
    auto copy = zmqu::Frames();
    for (auto& m : f) copy.emplace_back(m.data(), m.size());
    sent += zmqu::send_multipart(raw, std::move(f), false) ? 1 : 0;
    zmqu::send_multipart(raw_worker, std::move(copy), false);
  }
  EXPECT_EQ(sent, 2000);

  JobTracker tracker;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (tracker.terminal.size() < kJobs && std::chrono::steady_clock::now() < deadline)
    if (auto ev = c->next(500ms)) tracker.add(std::move(*ev));
  ASSERT_EQ(tracker.terminal.size(), static_cast<std::size_t>(kJobs)) << stack.logs();
  for (const auto& [job, ev] : tracker.terminal) EXPECT_EQ(ev.kind, proto::EventCmd::Result) << job;

  // The raw client got typed errors back, not silence.
  int errors = 0;
  zmq::pollitem_t items[] = {{raw.handle(), 0, ZMQ_POLLIN, 0}};
  while (zmq::poll(items, 1, std::chrono::milliseconds(500)) > 0) {
    auto msg = zmqu::recv_multipart(raw, zmq::recv_flags::dontwait);
    if (!msg) break;
    if (msg->size() >= 3 && zmqu::str((*msg)[1]) == std::string(1, '\x17')) ++errors;
  }
  EXPECT_GT(errors, 0);
  EXPECT_TRUE(stack.broker().running()) << stack.logs();
}


// --pin-cpu puts the loop thread and libzmq's I/O thread on one CPU and
// leaves the HTTP thread free; the broker serves as usual.
TEST(Control, PinCpuPinsTheLoopAndIoThreadOnly) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  StackOptions o;
  o.broker_args = {"--pin-cpu", std::to_string(cpu)};
  Stack stack(o);
  stack.start_broker();
  stack.start_echo();
  stack.wait_workers("echo", 1);
  auto c = stack.client();
  auto ev = must(c->submit_and_wait(echo_job({{"text", "pinned"}}), {}, 5s), stack, "ACCEPTED");
  EXPECT_EQ(must(c->wait_terminal(ev.job, 10s), stack, "RESULT").kind, proto::EventCmd::Result);

  // thread name -> Cpus_allowed_list, from /proc
  std::map<std::string, std::string> cpus;
  const auto task = std::filesystem::path("/proc") / std::to_string(stack.broker().pid()) / "task";
  for (const auto& t : std::filesystem::directory_iterator(task)) {
    std::string comm, line;
    std::getline(std::ifstream(t.path() / "comm"), comm);
    std::ifstream status(t.path() / "status");
    while (std::getline(status, line))
      if (line.rfind("Cpus_allowed_list:", 0) == 0) cpus[comm + "#" + t.path().filename().string()] = line.substr(line.find_first_not_of(" \t", 18));
  }
  int pinned = 0, free = 0;
  for (const auto& [name, list] : cpus) {
    (list == std::to_string(cpu) ? pinned : free) += 1;
    const bool must_pin = name.rfind("ZMQbg/IO", 0) == 0 ||
                          name == "mmgen-broker#" + std::to_string(stack.broker().pid());  // the main thread
    if (must_pin) {
      EXPECT_EQ(list, std::to_string(cpu)) << name;
    }
  }
  EXPECT_GE(pinned, 2) << "the loop and the I/O thread";
  if (CPU_COUNT(&allowed) > 1) {
    EXPECT_GE(free, 1) << "the HTTP thread is not pinned";
  }
}

}  // namespace
}  // namespace mmgen::itest

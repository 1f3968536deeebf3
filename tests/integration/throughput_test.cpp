// 1,000 echo jobs through a real broker and four real workers: every job is
// accepted once and completes exactly once as the client sees it.
#include <gtest/gtest.h>

#include <set>

#include "harness.hpp"

namespace mmgen::itest {
namespace {

TEST(Fabric, ThousandJobsOverFourWorkersEachExactlyOnce) {
  Stack stack;
  stack.start_broker();
  for (int i = 0; i < 4; ++i) stack.start_echo({"--capacity", "4"});
  stack.wait_workers("echo", 4);

  auto c = stack.client();
  constexpr int kJobs = 1000;
  std::map<std::uint64_t, int> req_to_index;
  for (int i = 0; i < kJobs; ++i) {
    auto req = c->submit(echo_job({{"text", "job-" + std::to_string(i)}}));
    req_to_index[req] = i;
  }

  std::map<std::string, int> job_to_index;
  JobTracker tracker;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (tracker.terminal.size() < kJobs && std::chrono::steady_clock::now() < deadline) {
    auto ev = c->next(1s);
    if (!ev) continue;
    if (ev->kind == proto::EventCmd::Accepted) {
      auto it = req_to_index.find(ev->req);
      ASSERT_NE(it, req_to_index.end()) << "ACCEPTED for an unknown request " << ev->req;
      ASSERT_TRUE(job_to_index.emplace(ev->job, it->second).second) << "job id reused: " << ev->job;
    }
    ASSERT_NE(ev->kind, proto::EventCmd::Error)
        << "unexpected error: " << ev->as<proto::Error>().message;
    tracker.add(std::move(*ev));
  }
  ASSERT_EQ(job_to_index.size(), static_cast<std::size_t>(kJobs)) << stack.logs();
  ASSERT_EQ(tracker.terminal.size(), static_cast<std::size_t>(kJobs)) << stack.logs();

  // Nothing more arrives: no job is delivered twice.
  while (auto ev = c->next(300ms)) tracker.add(std::move(*ev));
  for (const auto& [job, n] : tracker.terminal_count) EXPECT_EQ(n, 1) << job;
  for (const auto& [job, ev] : tracker.terminal) {
    ASSERT_EQ(ev.kind, proto::EventCmd::Result) << job;
    const auto& r = ev.as<proto::Result>();
    ASSERT_TRUE(r.data.count("text")) << job;
    EXPECT_EQ(r.data.at("text").as_string(), "job-" + std::to_string(job_to_index.at(job)));
  }

  long rss = stack.broker().peak_rss_kib();
  RecordProperty("broker_peak_rss_kib", std::to_string(rss));
  std::printf("[ metric ] broker peak RSS after %d jobs: %ld KiB\n", kJobs, rss);
  EXPECT_GT(rss, 0);
}

}  // namespace
}  // namespace mmgen::itest

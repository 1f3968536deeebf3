// The CLI end to end, in-process, against a scripted broker: each test runs
// run_cli() on this thread while a script thread plays the broker's part.
// Every wait is bounded (see CliRun); there are no sleeps.
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "cli/json_parse.hpp"
#include "fake_broker.hpp"

namespace mmgen::cli {
namespace {

using namespace std::chrono_literals;
using proto::ClientCmd;
using proto::EventCmd;
using testing::CliRun;
using testing::FakeBroker;
using testing::kJob;
using testing::TempDir;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Answers a SUBMIT with ACCEPTED; returns the message (with its peer).
std::optional<testing::ClientMsg> accept(FakeBroker& b, const std::string& job = kJob) {
  auto m = b.recv_cmd(ClientCmd::Submit);
  if (!m) return m;
  b.reply(m->peer, EventCmd::Accepted, proto::Accepted{m->as<proto::Submit>().req, job, false});
  return m;
}

proto::JobInfo info_of(std::uint64_t req, proto::JobState state, std::string service = "image") {
  proto::JobInfo info;
  info.req = req;
  info.job = kJob;
  info.service = std::move(service);
  info.state = state;
  info.worker = state == proto::JobState::running ? "w1" : "";
  info.attempts = 1;
  return info;
}

TEST(RunCli, ImageJobWritesOutputsAndPreviews) {
  FakeBroker broker;
  TempDir dir;
  testing::write_all(dir.file("init.png"), "INITPNG");
  CliRun cli;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    auto s = m->as<proto::Submit>();
    EXPECT_EQ(s.service, "image");
    EXPECT_EQ(s.params.at("prompt"), Value("a fox"));
    EXPECT_EQ(s.params.at("steps"), Value(2));
    EXPECT_EQ(s.params.at("count"), Value(2));
    ASSERT_EQ(s.inputs.size(), 1u);
    EXPECT_EQ(s.inputs[0], (proto::BlobMeta{"init", "image/png", 7}));
    EXPECT_EQ(testing::bytes_of(m->blobs.at(0)), "INITPNG");
    broker.reply(m->peer, EventCmd::Queued, proto::Queued{kJob, 0, ""});
    broker.reply(m->peer, EventCmd::Started, proto::Started{kJob, "w1", 1});
    broker.reply(m->peer, EventCmd::Progress,
                 proto::Progress{kJob, 1, 2, 0.5, "", proto::BlobMeta{"p.png", "image/png", 4}},
                 testing::frames_of({"PRE1"}));
    broker.reply(m->peer, EventCmd::Progress, proto::Progress{kJob, 2, 2, 0, "", std::nullopt});
    proto::Result r;
    r.job = kJob;
    r.outputs = {proto::BlobMeta{"image-0.png", "image/png", 3}, proto::BlobMeta{"image-1.png", "image/png", 3}};
    r.metrics["seconds"] = 1.25;
    broker.reply(m->peer, EventCmd::Result, r, testing::frames_of({"one", "two"}));
  });
  const int rc = cli.run({"image", "a fox", "--steps", "2", "--count", "2", "--init", dir.file("init.png"), "-o",
                          dir.file("fox.png"), "--previews", dir.file("prev"), "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(testing::read_all(dir.file("fox-1.png")), "one");
  EXPECT_EQ(testing::read_all(dir.file("fox-2.png")), "two");
  EXPECT_EQ(testing::read_all(dir.file("prev/" + std::string(kJob) + "-step-0001.png")), "PRE1");
  // stdout: the paths written; stderr: plain progress lines (not a terminal).
  EXPECT_EQ(cli.out_lines(), (std::vector<std::string>{dir.file("fox-1.png"), dir.file("fox-2.png")}));
  EXPECT_TRUE(contains(cli.err.str(), "progress 1/2 (50%)")) << cli.err.str();
  EXPECT_TRUE(contains(cli.err.str(), "started on w1")) << cli.err.str();
  EXPECT_TRUE(contains(cli.err.str(), "succeeded (seconds=1.25)")) << cli.err.str();
}

TEST(RunCli, JsonEventsOneLineEach) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    auto s = m->as<proto::Submit>();
    EXPECT_EQ(s.service, "echo");
    EXPECT_EQ(s.params.at("text"), Value("hi there"));
    EXPECT_EQ(s.params.at("partials"), Value(1));
    EXPECT_EQ(s.params.at("sleep_ms"), Value(10));
    EXPECT_EQ(s.priority, 2);
    broker.reply(m->peer, EventCmd::Started, proto::Started{kJob, "w3", 1});
    broker.reply(m->peer, EventCmd::Progress, proto::Progress{kJob, 1, 1, -1, "sleeping", std::nullopt});
    broker.reply(m->peer, EventCmd::Partial, proto::Partial{kJob, 0, ValueMap{{"text", Value("hi there")}}});
    proto::Result r;
    r.job = kJob;
    r.data["text"] = "hi there";
    broker.reply(m->peer, EventCmd::Result, r);
  });
  const int rc = cli.run({"--json", "echo", "hi", "there", "--partials", "1", "--sleep-ms", "10", "--priority", "2",
                          "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  const auto lines = cli.out_lines();
  const std::vector<std::string> want{"accepted", "started", "progress", "partial", "result"};
  ASSERT_EQ(lines.size(), want.size()) << cli.out.str();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Value v = parse_json(lines[i]);
    EXPECT_EQ(v.as_map().at("job"), Value(kJob)) << lines[i];
    EXPECT_EQ(v.as_map().at("event"), Value(want[i])) << lines[i];
  }
  const auto result = parse_json(lines.back()).as_map();
  EXPECT_EQ(result.at("data").as_map().at("text"), Value("hi there"));
  EXPECT_EQ(result.at("outputs"), Value(ValueArray{}));
}

TEST(RunCli, TextStreamsPartialsAndWritesOutput) {
  FakeBroker broker;
  TempDir dir;
  CliRun cli;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    EXPECT_EQ(m->as<proto::Submit>().params.at("max_tokens"), Value(4));
    std::uint64_t seq = 0;
    for (const char* delta : {"Hel", "lo", " sea"}) {
      broker.reply(m->peer, EventCmd::Partial, proto::Partial{kJob, seq++, ValueMap{{"text", Value(delta)}}});
    }
    proto::Result r;
    r.job = kJob;
    r.data["text"] = "Hello sea";
    r.data["tokens"] = ValueArray{Value(1), Value(2), Value(3)};
    broker.reply(m->peer, EventCmd::Result, r);
  });
  const int rc = cli.run({"text", "hi", "--max-tokens", "4", "-o", dir.file("t.txt"), "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(cli.out.str(), "Hello sea\n");
  EXPECT_EQ(testing::read_all(dir.file("t.txt")), "Hello sea");
  EXPECT_TRUE(contains(cli.err.str(), "wrote " + dir.file("t.txt"))) << cli.err.str();
}

TEST(RunCli, EchoPrintsTheResultText) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    // Echo's partials are not streamed as text; the result is printed once.
    broker.reply(m->peer, EventCmd::Partial, proto::Partial{kJob, 0, ValueMap{{"text", Value("hello")}}});
    proto::Result r;
    r.job = kJob;
    r.data["text"] = "hello";
    broker.reply(m->peer, EventCmd::Result, r);
  });
  const int rc = cli.run({"echo", "hello", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(cli.out.str(), "hello\n");
}

struct TerminalCase {
  const char* name;
  EventCmd kind;
  proto::ErrorCode code;
  int exit;
};

TEST(RunCli, TerminalEventsMapToExitCodes) {
  const TerminalCase cases[] = {
      {"failed", EventCmd::Error, proto::ErrorCode::internal, kExitJobFailed},
      {"worker_lost", EventCmd::Error, proto::ErrorCode::worker_lost, kExitJobFailed},
      {"timeout", EventCmd::Error, proto::ErrorCode::timeout, kExitTimeout},
      {"cancelled error", EventCmd::Error, proto::ErrorCode::cancelled, kExitCancelled},
      {"cancelled", EventCmd::Cancelled, proto::ErrorCode::internal, kExitCancelled},
  };
  for (const auto& tc : cases) {
    FakeBroker broker;
    CliRun cli;
    std::thread script([&] {
      auto m = accept(broker);
      if (!m) return;
      if (tc.kind == EventCmd::Error) {
        broker.reply(m->peer, EventCmd::Error, proto::Error{0, kJob, tc.code, "boom"});
      } else {
        broker.reply(m->peer, EventCmd::Cancelled, proto::Cancelled{kJob});
      }
    });
    const int rc = cli.run({"echo", "x", "--fail", "--broker", broker.endpoint()});
    script.join();
    EXPECT_EQ(rc, tc.exit) << tc.name << ": " << cli.err.str();
    EXPECT_TRUE(cli.out.str().empty()) << tc.name;
    if (tc.kind == EventCmd::Error) {
      EXPECT_TRUE(contains(cli.err.str(), std::string(proto::to_string(tc.code)) + ": boom")) << cli.err.str();
    }
  }
}

TEST(RunCli, SubmitRefusedByTheBroker) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto m = broker.recv_cmd(ClientCmd::Submit);
    if (!m) return;
    EXPECT_EQ(m->as<proto::Submit>().service, "video");
    broker.reply(m->peer, EventCmd::Error,
                 proto::Error{m->as<proto::Submit>().req, "", proto::ErrorCode::unknown_service, "no service 'video'"});
  });
  const int rc = cli.run({"--json", "video", "waves", "--frames", "5", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitJobFailed);
  ASSERT_EQ(cli.out_lines().size(), 1u) << cli.out.str();
  auto line = parse_json(cli.out_lines()[0]).as_map();
  EXPECT_EQ(line.at("event"), Value("error"));
  EXPECT_EQ(line.at("code"), Value("unknown_service"));
  EXPECT_EQ(line.at("job"), Value(""));
}

TEST(RunCli, UnreachableBrokerIsReportedWithinTheBound) {
  // Bind and close a socket to get a loopback port nobody listens on.
  std::string endpoint;
  {
    FakeBroker gone;
    endpoint = gone.endpoint();
  }
  CliRun cli;
  cli.io.timing.connect_timeout = 300ms;
  const int rc = cli.run({"echo", "hi", "--broker", endpoint});
  EXPECT_EQ(rc, kExitBroker);
  EXPECT_TRUE(contains(cli.err.str(), "broker at " + endpoint + " did not answer within 0.3 s")) << cli.err.str();

  CliRun status;
  status.io.timing.connect_timeout = 200ms;
  EXPECT_EQ(status.run({"workers", "--broker", endpoint}), kExitBroker);
}

TEST(RunCli, DetachPrintsTheIdAndExits) {
  for (bool json : {false, true}) {
    FakeBroker broker;
    CliRun cli;
    std::thread script([&] {
      auto m = accept(broker);
      if (m) {
        EXPECT_EQ(m->as<proto::Submit>().key, "once");
      }
    });
    std::vector<std::string> args{"image", "x", "--detach", "--key", "once", "--broker", broker.endpoint()};
    if (json) args.push_back("--json");
    const int rc = cli.run(args);
    script.join();
    EXPECT_EQ(rc, kExitOk) << cli.err.str();
    if (json) {
      EXPECT_EQ(cli.out.str(), std::string("{\"job\":\"") + kJob + "\",\"event\":\"accepted\"}\n");
    } else {
      EXPECT_EQ(cli.out.str(), std::string(kJob) + "\n");
    }
  }
}

TEST(RunCli, InterruptLeavesTheJobRunningWhenNotInteractive) {
  FakeBroker broker;
  CliRun cli;
  cli.interrupt_after = "started on w1";
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    broker.reply(m->peer, EventCmd::Started, proto::Started{kJob, "w1", 1});
  });
  const int rc = cli.run({"echo", "x", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitInterrupted);
  EXPECT_TRUE(contains(cli.err.str(), std::string("mmgen wait ") + kJob)) << cli.err.str();
  EXPECT_FALSE(contains(cli.err.str(), "[y/N]"));
}

TEST(RunCli, InterruptAsksOnATerminalAndCancels) {
  FakeBroker broker;
  CliRun cli;
  cli.io.stdin_tty = true;
  cli.answers = {"y"};
  cli.interrupt_after = "started on w1";
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    broker.reply(m->peer, EventCmd::Started, proto::Started{kJob, "w1", 1});
    auto c = broker.recv_cmd(ClientCmd::Cancel);
    if (!c) return;
    EXPECT_EQ(c->as<proto::JobRef>().job, kJob);
    broker.reply(c->peer, EventCmd::JobInfo, info_of(c->as<proto::JobRef>().req, proto::JobState::running));
    broker.reply(c->peer, EventCmd::Cancelled, proto::Cancelled{kJob});
  });
  const int rc = cli.run({"echo", "x", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitCancelled) << cli.err.str();
  EXPECT_TRUE(contains(cli.err.str(), std::string("cancel job ") + kJob + "? [y/N]")) << cli.err.str();
}

TEST(RunCli, InterruptAnsweredNoLeavesItRunning) {
  FakeBroker broker;
  CliRun cli;
  cli.io.stdin_tty = true;
  cli.answers = {"n"};
  cli.interrupt_after = " accepted";
  std::thread script([&] { accept(broker); });
  const int rc = cli.run({"echo", "x", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitInterrupted);
  EXPECT_TRUE(contains(cli.err.str(), "[y/N]"));
  EXPECT_TRUE(contains(cli.err.str(), std::string("mmgen wait ") + kJob));
}

TEST(RunCli, CancelOnInterruptNeverAsks) {
  FakeBroker broker;
  CliRun cli;
  cli.io.stdin_tty = true;  // --json makes it non-interactive even on a terminal
  cli.interrupt_after = "\"event\":\"accepted\"";
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    auto c = broker.recv_cmd(ClientCmd::Cancel);
    if (!c) return;
    broker.reply(c->peer, EventCmd::Error, proto::Error{0, kJob, proto::ErrorCode::cancelled, "cancelled"});
  });
  const int rc = cli.run({"--json", "--cancel-on-interrupt", "echo", "x", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitCancelled) << cli.err.str();
  EXPECT_FALSE(contains(cli.err.str(), "[y/N]"));
  EXPECT_EQ(parse_json(cli.out_lines().back()).as_map().at("event"), Value("error"));
}

TEST(RunCli, ReconnectsAndAttachesWhenTheBrokerGoesQuiet) {
  FakeBroker broker;
  CliRun cli;
  cli.io.timing.silence_probe = 100ms;
  cli.io.timing.probe_timeout = 300ms;
  std::atomic<bool> done{false};
  std::string first_peer, attach_peer;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    first_peer = m->peer;
    // The "connection" now drops: the STATUS probe goes unanswered. Answer
    // the ATTACH that follows from a new connection (again if a slow answer
    // made the CLI reconnect once more).
    while (!done) {
      auto a = broker.recv(100ms, false);
      if (!a || a->cmd != ClientCmd::Attach) continue;
      attach_peer = a->peer;
      broker.reply(a->peer, EventCmd::JobInfo, info_of(a->as<proto::JobRef>().req, proto::JobState::running, "echo"));
      proto::Result r;
      r.job = kJob;
      r.data["text"] = "back";
      broker.reply(a->peer, EventCmd::Result, r);
    }
  });
  const int rc = cli.run({"echo", "back", "--broker", broker.endpoint()});
  done = true;
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(cli.out.str(), "back\n");
  EXPECT_FALSE(attach_peer.empty());
  EXPECT_NE(attach_peer, first_peer);
  EXPECT_TRUE(contains(cli.err.str(), "reconnecting")) << cli.err.str();
}

TEST(RunCli, ProbeAnswerKeepsTheConnection) {
  FakeBroker broker;
  CliRun cli;
  cli.io.timing.silence_probe = 50ms;
  cli.io.timing.probe_timeout = 5s;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    auto s = broker.recv_cmd(ClientCmd::Status);
    if (!s) return;
    EXPECT_EQ(s->peer, m->peer);
    broker.reply(s->peer, EventCmd::JobInfo, info_of(s->as<proto::JobRef>().req, proto::JobState::running, "echo"));
    proto::Result r;
    r.job = kJob;
    broker.reply(s->peer, EventCmd::Result, r);
  });
  const int rc = cli.run({"echo", "x", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_FALSE(contains(cli.err.str(), "reconnecting"));
}

TEST(RunCli, ProbeThatFindsTheJobFinishedAttachesForItsEnd) {
  // The terminal event went elsewhere (another client attached): the STATUS
  // probe shows a final state, and an ATTACH replays the result.
  FakeBroker broker;
  CliRun cli;
  cli.io.timing.silence_probe = 50ms;
  cli.io.timing.probe_timeout = 5s;
  std::thread script([&] {
    auto m = accept(broker);
    if (!m) return;
    auto s = broker.recv_cmd(ClientCmd::Status);
    if (!s) return;
    broker.reply(s->peer, EventCmd::JobInfo, info_of(s->as<proto::JobRef>().req, proto::JobState::succeeded, "echo"));
    auto a = broker.recv_cmd(ClientCmd::Attach);
    if (!a) return;
    EXPECT_EQ(a->peer, m->peer);
    broker.reply(a->peer, EventCmd::JobInfo, info_of(a->as<proto::JobRef>().req, proto::JobState::succeeded, "echo"));
    proto::Result r;
    r.job = kJob;
    r.data["text"] = "late";
    broker.reply(a->peer, EventCmd::Result, r);
  });
  const int rc = cli.run({"echo", "late", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(cli.out.str(), "late\n");
}

TEST(RunCli, WaitTimeoutGivesUpWithExitFive) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto a = broker.recv_cmd(ClientCmd::Attach);
    if (a) broker.reply(a->peer, EventCmd::JobInfo, info_of(a->as<proto::JobRef>().req, proto::JobState::running));
  });
  const int rc = cli.run({"wait", kJob, "--timeout", "0.2", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitTimeout) << cli.err.str();
  EXPECT_TRUE(contains(cli.err.str(), "gave up waiting")) << cli.err.str();
}

TEST(RunCli, WaitAttachesAndWritesTheResult) {
  FakeBroker broker;
  TempDir dir;
  CliRun cli;
  std::thread script([&] {
    auto a = broker.recv_cmd(ClientCmd::Attach);
    if (!a) return;
    EXPECT_EQ(a->as<proto::JobRef>().job, kJob);
    broker.reply(a->peer, EventCmd::JobInfo, info_of(a->as<proto::JobRef>().req, proto::JobState::succeeded));
    proto::Result r;
    r.job = kJob;
    r.outputs = {proto::BlobMeta{"x.png", "image/png", 3}};
    broker.reply(a->peer, EventCmd::Result, r, testing::frames_of({"IMG"}));
  });
  const int rc = cli.run({"wait", kJob, "-o", dir.file("w.png"), "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(testing::read_all(dir.file("w.png")), "IMG");
  EXPECT_EQ(cli.out.str(), dir.file("w.png") + "\n");
}

TEST(RunCli, WaitStreamsARunningTextJob) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto a = broker.recv_cmd(ClientCmd::Attach);
    if (!a) return;
    broker.reply(a->peer, EventCmd::JobInfo, info_of(a->as<proto::JobRef>().req, proto::JobState::running, "text"));
    broker.reply(a->peer, EventCmd::Partial, proto::Partial{kJob, 3, ValueMap{{"text", Value("tail")}}});
    proto::Result r;
    r.job = kJob;
    r.data["text"] = "head and tail";
    broker.reply(a->peer, EventCmd::Result, r);
  });
  const int rc = cli.run({"wait", kJob, "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitOk) << cli.err.str();
  EXPECT_EQ(cli.out.str(), "tail\n");
  EXPECT_TRUE(contains(cli.err.str(), "is running on w1")) << cli.err.str();
}

TEST(RunCli, UnknownJobIsExitOne) {
  for (const char* verb : {"wait", "status", "cancel", "fetch"}) {
    FakeBroker broker;
    CliRun cli;
    std::thread script([&] {
      auto m = broker.recv();
      if (!m) return;
      broker.reply(m->peer, EventCmd::Error,
                   proto::Error{m->as<proto::JobRef>().req, kJob, proto::ErrorCode::not_found, ""});
    });
    const int rc = cli.run({verb, kJob, "--broker", broker.endpoint()});
    script.join();
    EXPECT_EQ(rc, kExitJobFailed) << verb;
    EXPECT_TRUE(contains(cli.err.str(), std::string("no job ") + kJob)) << verb << ": " << cli.err.str();
  }
}

TEST(RunCli, FetchNotFinishedAndFetchResult) {
  {
    FakeBroker broker;
    CliRun cli;
    std::thread script([&] {
      auto f = broker.recv_cmd(ClientCmd::Fetch);
      if (f) broker.reply(f->peer, EventCmd::Error, proto::Error{f->as<proto::JobRef>().req, kJob, proto::ErrorCode::not_finished, ""});
    });
    EXPECT_EQ(cli.run({"fetch", kJob, "--broker", broker.endpoint()}), kExitJobFailed);
    script.join();
    EXPECT_TRUE(contains(cli.err.str(), std::string("mmgen wait ") + kJob)) << cli.err.str();
  }
  {
    FakeBroker broker;
    TempDir dir;
    CliRun cli;
    std::thread script([&] {
      auto f = broker.recv_cmd(ClientCmd::Fetch);
      if (!f) return;
      proto::Result r;
      r.job = kJob;
      r.outputs = {proto::BlobMeta{"v.mp4", "video/mp4", 4}};
      broker.reply(f->peer, EventCmd::Result, r, testing::frames_of({"MP4!"}));
    });
    EXPECT_EQ(cli.run({"fetch", kJob, "-o", dir.file("v.mp4"), "--broker", broker.endpoint()}), kExitOk);
    script.join();
    EXPECT_EQ(testing::read_all(dir.file("v.mp4")), "MP4!");
  }
}

TEST(RunCli, StatusCancelJobsWorkers) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto s = broker.recv_cmd(ClientCmd::Status);
    if (!s) return;
    auto info = info_of(s->as<proto::JobRef>().req, proto::JobState::queued);
    info.position = 2;
    info.waiting_for = "no worker advertises model 'big'";
    broker.reply(s->peer, EventCmd::JobInfo, info);

    auto c = broker.recv_cmd(ClientCmd::Cancel);
    if (!c) return;
    broker.reply(c->peer, EventCmd::JobInfo, info_of(c->as<proto::JobRef>().req, proto::JobState::cancelled));

    auto l = broker.recv_cmd(ClientCmd::List);
    if (!l) return;
    EXPECT_EQ(l->as<proto::ListReq>().service, "image");
    EXPECT_EQ(l->as<proto::ListReq>().limit, 3u);
    proto::JobList list;
    list.req = l->as<proto::ListReq>().req;
    list.jobs = {info_of(0, proto::JobState::succeeded), info_of(0, proto::JobState::failed)};
    broker.reply(l->peer, EventCmd::JobList, list);

    auto w = broker.recv_cmd(ClientCmd::Workers);
    if (!w) return;
    proto::WorkerList wl;
    wl.req = w->as<proto::WorkersReq>().req;
    wl.services = {proto::ServiceInfo{"echo", 4, {}, 4, 1, 0}, proto::ServiceInfo{"text", 1, {"qwen3"}, 16, 2, 3}};
    broker.reply(w->peer, EventCmd::WorkerList, wl);
  });
  const auto ep = broker.endpoint();
  EXPECT_EQ(cli.run({"status", kJob, "--broker", ep}), kExitOk) << cli.err.str();
  EXPECT_TRUE(contains(cli.out.str(), "queued (position 2, waiting for no worker advertises model 'big')"))
      << cli.out.str();
  cli.out.str("");
  EXPECT_EQ(cli.run({"cancel", kJob, "--broker", ep}), kExitOk);
  EXPECT_EQ(cli.out.str(), std::string("job ") + kJob + " cancelled\n");
  cli.out.str("");
  EXPECT_EQ(cli.run({"--json", "jobs", "--service", "image", "--limit", "3", "--broker", ep}), kExitOk);
  auto lines = cli.out_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(parse_json(lines[0]).as_map().at("state"), Value("succeeded"));
  EXPECT_EQ(parse_json(lines[1]).as_map().at("state"), Value("failed"));
  cli.out.str("");
  EXPECT_EQ(cli.run({"workers", "--broker", ep}), kExitOk);
  script.join();
  lines = cli.out_lines();
  ASSERT_EQ(lines.size(), 3u) << cli.out.str();
  EXPECT_EQ(lines[1].rfind("echo", 0), 0u);
  EXPECT_TRUE(contains(lines[2], "qwen3"));
}

TEST(RunCli, GarbageFromTheBrokerIsAProtocolFailure) {
  FakeBroker broker;
  CliRun cli;
  std::thread script([&] {
    auto m = broker.recv_cmd(ClientCmd::Submit);
    if (m) broker.send_raw(m->peer, testing::frames_of({"MMGC01", "\x11", "not msgpack"}));
  });
  const int rc = cli.run({"echo", "x", "--broker", broker.endpoint()});
  script.join();
  EXPECT_EQ(rc, kExitBroker);
  EXPECT_TRUE(contains(cli.err.str(), "protocol error")) << cli.err.str();
}

TEST(RunCli, UsageErrorsHelpAndVersion) {
  CliRun cli;
  EXPECT_EQ(cli.run({"paint"}), kExitUsage);
  EXPECT_EQ(cli.run({"image"}), kExitUsage);
  EXPECT_EQ(cli.run({"image", "x", "--steps", "lots"}), kExitUsage);
  EXPECT_EQ(cli.run({"image", "x", "--init", "/nonexistent/in.png"}), kExitUsage);
  EXPECT_TRUE(contains(cli.err.str(), "/nonexistent/in.png")) << cli.err.str();

  EXPECT_EQ(cli.run({"--help"}), kExitOk);
  for (const char* s : {"exit codes", "130", "--cancel-on-interrupt", "text", "workers"}) {
    EXPECT_TRUE(contains(cli.out.str(), s)) << s;
  }
  cli.out.str("");
  EXPECT_EQ(cli.run({"video", "--help"}), kExitOk);
  EXPECT_TRUE(contains(cli.out.str(), "--cfg2")) << cli.out.str();
  EXPECT_TRUE(contains(cli.out.str(), "[param frames]")) << cli.out.str();
  cli.out.str("");
  EXPECT_EQ(cli.run({"--version"}), kExitOk);
  EXPECT_EQ(cli.out.str().rfind("mmgen ", 0), 0u);
}

}  // namespace
}  // namespace mmgen::cli

// mmgen::client::Client against a scripted broker ROUTER on loopback. Each
// step is a bounded wait; there are no sleeps.
#include <gtest/gtest.h>

#include "fake_broker.hpp"
#include "mmgen/client.hpp"
#include "mmgen/zmq_util.hpp"

namespace mmgen::client {
namespace {

using namespace std::chrono_literals;
using testing::FakeBroker;
using testing::kJob;

TEST(Client, SubmitSendsTheMessageAndGetsAccepted) {
  FakeBroker broker;
  Client c(broker.endpoint());
  proto::Submit s;
  s.service = "image";
  s.model = "m";
  s.params["prompt"] = "fox";
  s.priority = 8;
  s.timeout_ms = 1234;
  s.key = "k";
  proto::Frames frames;
  add_input(s, frames, "init", "image/png", "PNG!");
  const auto req = c.submit(s, std::move(frames));
  EXPECT_NE(req, 0u);

  auto m = broker.recv();
  ASSERT_TRUE(m);
  ASSERT_EQ(m->cmd, proto::ClientCmd::Submit);
  auto got = m->as<proto::Submit>();
  s.req = req;
  EXPECT_EQ(got, s);
  ASSERT_EQ(m->blobs.size(), 1u);
  EXPECT_EQ(testing::bytes_of(m->blobs[0]), "PNG!");

  ASSERT_TRUE(broker.reply(m->peer, proto::EventCmd::Accepted, proto::Accepted{req, kJob, false}));
  auto ev = c.wait_reply(req, 5s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->kind, proto::EventCmd::Accepted);
  EXPECT_EQ(ev->job, kJob);
  EXPECT_EQ(ev->req, req);
  EXPECT_FALSE(ev->is_terminal());
}

TEST(Client, RequestTagsAreFreshAndRequestsCarryTheJob) {
  FakeBroker broker;
  Client c(broker.endpoint());
  const std::uint64_t tags[] = {c.cancel(kJob), c.status(kJob), c.attach(kJob), c.fetch(kJob)};
  const proto::ClientCmd cmds[] = {proto::ClientCmd::Cancel, proto::ClientCmd::Status, proto::ClientCmd::Attach,
                                   proto::ClientCmd::Fetch};
  for (int i = 0; i < 4; ++i) {
    auto m = broker.recv();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->cmd, cmds[i]);
    EXPECT_EQ(m->as<proto::JobRef>(), (proto::JobRef{tags[i], kJob}));
    if (i) {
      EXPECT_GT(tags[i], tags[i - 1]);
    }
  }
  const auto lt = c.list("text", 7);
  auto l = broker.recv();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->cmd, proto::ClientCmd::List);
  EXPECT_EQ(l->as<proto::ListReq>(), (proto::ListReq{lt, "text", 7}));
  const auto wt = c.workers();
  auto w = broker.recv();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->cmd, proto::ClientCmd::Workers);
  EXPECT_EQ(w->as<proto::WorkersReq>().req, wt);
}

TEST(Client, SubmitRejectsBlobsThatDisagreeWithTheirDescription) {
  FakeBroker broker;
  Client c(broker.endpoint());
  proto::Submit s;
  s.service = "echo";
  s.inputs.push_back(proto::BlobMeta{"x", "image/png", 10});
  EXPECT_THROW(c.submit(s, testing::frames_of({"short"})), proto::ProtocolError);
  EXPECT_THROW(c.submit(s, {}), proto::ProtocolError);
}

TEST(Client, SkippedEventsAreKeptInOrder) {
  FakeBroker broker;
  Client c(broker.endpoint());
  const auto req = c.status(kJob);
  auto m = broker.recv();
  ASSERT_TRUE(m);
  broker.reply(m->peer, proto::EventCmd::Started, proto::Started{kJob, "w1", 1});
  broker.reply(m->peer, proto::EventCmd::Progress, proto::Progress{kJob, 1, 4, -1, "", std::nullopt});
  proto::JobInfo info;
  info.req = req;
  info.job = kJob;
  info.state = proto::JobState::running;
  broker.reply(m->peer, proto::EventCmd::JobInfo, info);

  auto reply = c.wait_reply(req, 5s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->kind, proto::EventCmd::JobInfo);
  EXPECT_EQ(reply->as<proto::JobInfo>().state, proto::JobState::running);
  EXPECT_TRUE(c.has_kept());
  auto first = c.next(0ms);
  auto second = c.next(0ms);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->kind, proto::EventCmd::Started);
  EXPECT_EQ(second->kind, proto::EventCmd::Progress);
  EXPECT_FALSE(c.has_kept());
  EXPECT_FALSE(c.next(0ms));
}

TEST(Client, ResultBlobsAndFetch) {
  FakeBroker broker;
  Client c(broker.endpoint());
  c.workers();  // let the broker learn our routing id
  auto hello = broker.recv();
  ASSERT_TRUE(hello);

  proto::Result r;
  r.job = kJob;
  r.outputs = {proto::BlobMeta{"a.png", "image/png", 3}, proto::BlobMeta{"b.png", "image/png", 2}};
  r.data["n"] = 2;
  r.metrics["seconds"] = 0.5;
  // FETCH: the RESULT names the job; an unrelated event before it is kept.
  std::thread script([&] {
    auto f = broker.recv_cmd(proto::ClientCmd::Fetch);
    if (!f) return;
    broker.reply(f->peer, proto::EventCmd::Queued, proto::Queued{"j_other0000000000000000000", 1, ""});
    broker.reply(f->peer, proto::EventCmd::Result, r, testing::frames_of({"AAA", "BB"}));
  });
  auto ev = c.fetch_and_wait(kJob, 5s);
  script.join();
  ASSERT_TRUE(ev);
  EXPECT_TRUE(ev->is_terminal());
  EXPECT_EQ(ev->as<proto::Result>(), r);
  ASSERT_EQ(ev->blobs.size(), 2u);
  EXPECT_EQ(testing::bytes_of(ev->blobs[0]), "AAA");
  EXPECT_EQ(testing::bytes_of(ev->blobs[1]), "BB");
  auto kept = c.next(0ms);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->kind, proto::EventCmd::Queued);
}

TEST(Client, FetchErrorMatchesByReq) {
  FakeBroker broker;
  Client c(broker.endpoint());
  std::thread script([&] {
    auto f = broker.recv_cmd(proto::ClientCmd::Fetch);
    if (!f) return;
    auto ref = f->as<proto::JobRef>();
    broker.reply(f->peer, proto::EventCmd::Error, proto::Error{ref.req, kJob, proto::ErrorCode::not_finished, "running"});
  });
  auto ev = c.fetch_and_wait(kJob, 5s);
  script.join();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->as<proto::Error>().code, proto::ErrorCode::not_finished);
}

TEST(Client, MalformedMessagesThrowAndTheSocketStaysUsable) {
  FakeBroker broker;
  Client c(broker.endpoint());
  c.workers();
  auto m = broker.recv();
  ASSERT_TRUE(m);
  const std::string peer = m->peer;

  // Wrong protocol frame.
  proto::Frames bad;
  bad.push_back(zmqu::msg("XXXX01"));
  bad.push_back(zmqu::msg(std::string(1, static_cast<char>(proto::EventCmd::Cancelled))));
  bad.push_back(zmqu::msg(proto::encode(proto::Cancelled{kJob})));
  broker.send_raw(peer, std::move(bad));
  EXPECT_THROW(c.next(5s), proto::ProtocolError);

  // Unknown command byte.
  broker.send(peer, static_cast<proto::EventCmd>(0x7E), proto::encode(proto::Cancelled{kJob}));
  EXPECT_THROW(c.next(5s), proto::ProtocolError);

  // A RESULT whose blob is shorter than described.
  proto::Result r;
  r.job = kJob;
  r.outputs = {proto::BlobMeta{"a", "image/png", 10}};
  broker.reply(peer, proto::EventCmd::Result, r, testing::frames_of({"abc"}));
  EXPECT_THROW(c.next(5s), proto::ProtocolError);

  // Blobs on a message that has none.
  broker.reply(peer, proto::EventCmd::Cancelled, proto::Cancelled{kJob}, testing::frames_of({"x"}));
  EXPECT_THROW(c.next(5s), proto::ProtocolError);

  // A body of the wrong shape.
  broker.send(peer, proto::EventCmd::Accepted, "\x01\x02");
  EXPECT_THROW(c.next(5s), proto::ProtocolError);

  broker.reply(peer, proto::EventCmd::Cancelled, proto::Cancelled{kJob});
  auto ok = c.next(5s);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->kind, proto::EventCmd::Cancelled);
  EXPECT_TRUE(ok->is_terminal());
}

TEST(Client, ReconnectGivesANewRoutingId) {
  FakeBroker broker;
  Client c(broker.endpoint());
  c.status(kJob);
  auto a = broker.recv();
  c.reconnect();
  c.attach(kJob);
  auto b = broker.recv();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->cmd, proto::ClientCmd::Attach);
  EXPECT_NE(a->peer, b->peer);
  // Replies go to the new connection.
  broker.reply(b->peer, proto::EventCmd::Cancelled, proto::Cancelled{kJob});
  auto ev = c.wait_terminal(kJob, 5s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->kind, proto::EventCmd::Cancelled);
}

TEST(Client, NoAnswerIsATimeoutNotAHang) {
  FakeBroker broker;
  Client c(broker.endpoint());
  const auto req = c.status(kJob);
  ASSERT_TRUE(broker.recv());
  EXPECT_FALSE(c.wait_reply(req, 50ms));
  EXPECT_FALSE(c.next(0ms));
}

}  // namespace
}  // namespace mmgen::client

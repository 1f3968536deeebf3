// Dispatcher rules, driven step by step with a fake clock.
#include <gtest/gtest.h>

#include <algorithm>

#include "dispatcher_harness.hpp"

namespace mmgen::broker::testing {
namespace {

using proto::ErrorCode;
using proto::JobState;

const std::string kClient = "client-A";
const std::string kOther = "client-B";

proto::JobInfo status_of(Harness& h, const std::string& job) {
  h.d.status(kOther, proto::JobRef{99, job});
  auto infos = events_to<proto::JobInfo>(h.take(), kOther);
  EXPECT_EQ(infos.size(), 1u) << "STATUS must answer with one JOBINFO";
  return infos.empty() ? proto::JobInfo{} : infos[0];
}

std::vector<Action> result(Harness& h, const std::string& routing, const std::string& job,
                           Verdict expect = Verdict::accepted) {
  EXPECT_EQ(h.d.worker_result(routing, job), expect) << "RESULT for " << job;
  return h.take();
}

// ---- ordering -----------------------------------------------------------------------

TEST(BrokerDispatcher, HigherPriorityFirstThenFifoWithinPriority) {
  Harness h;
  const std::string a5 = h.submit(kClient, "echo", 5);
  const std::string b9 = h.submit(kClient, "echo", 9);
  const std::string c5 = h.submit(kClient, "echo", 5);
  const std::string d0 = h.submit(kClient, "echo", 0);
  const std::string e9 = h.submit(kClient, "echo", 9);
  EXPECT_EQ(status_of(h, b9).position, 0u);
  EXPECT_EQ(status_of(h, e9).position, 1u);
  EXPECT_EQ(status_of(h, c5).position, 3u);
  EXPECT_EQ(status_of(h, d0).position, 4u);

  h.ready("W1", "echo", 1);
  std::vector<std::string> order = jobs_sent(h.last);
  for (int i = 0; i < 4; ++i) {
    ASSERT_FALSE(order.empty());
    auto next = jobs_sent(result(h, "W1", order.back()));
    order.insert(order.end(), next.begin(), next.end());
  }
  EXPECT_EQ(order, (std::vector<std::string>{b9, e9, a5, c5, d0}));
}

TEST(BrokerDispatcher, QueuedEventReportsPosition) {
  Harness h;
  h.submit(kClient, "echo", 5);
  h.submit(kClient, "echo", 5);
  h.submit(kClient, "echo", 7);
  const std::string j = h.submit(kClient, "echo", 5);
  auto queued = events_to<proto::Queued>(h.last, kClient);
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].job, j);
  EXPECT_EQ(queued[0].position, 3u);
  EXPECT_EQ(queued[0].waiting_for, "no worker of service 'echo' is connected");
}

// ---- credits ------------------------------------------------------------------------

TEST(BrokerDispatcher, WorkerNeverGetsMoreThanItsCapacity) {
  Harness h;
  h.ready("T1", "text", 4);
  std::vector<std::string> ids;
  std::size_t sent = 0;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(h.submit(kClient, "text"));
    sent += jobs_sent(h.last, "T1").size();
  }
  EXPECT_EQ(sent, 4u) << "a capacity-4 text worker gets exactly 4 jobs";
  // Each answer frees one slot, which takes exactly one more job.
  EXPECT_EQ(jobs_sent(result(h, "T1", ids[0])).size(), 1u);
  h.d.worker_error("T1", proto::Error{0, ids[1], ErrorCode::internal, "boom"});
  EXPECT_EQ(jobs_sent(h.take()).size(), 1u);
  auto w = h.d.metrics();
  auto text = std::find_if(w.services.begin(), w.services.end(),
                           [](const ServiceMetrics& s) { return s.service == "text"; });
  ASSERT_NE(text, w.services.end());
  EXPECT_EQ(text->running, 4u);
  EXPECT_EQ(text->queued, 4u);
}

TEST(BrokerDispatcher, FullWorkerIsSkippedEvenWhenTheServiceHasFreeSlots) {
  Harness h;
  h.ready("X", "text", 1, {"x"});
  h.ready("PLAIN", "text", 1);
  const std::string first = h.submit(kClient, "text", 5, "x");
  ASSERT_EQ(jobs_sent(h.last, "X"), std::vector<std::string>{first});
  // PLAIN's slot is free but it can't run model x; X is full.
  const std::string second = h.submit(kClient, "text", 5, "x");
  EXPECT_TRUE(jobs_sent(h.last).empty()) << "a capacity-1 worker never holds two jobs";
  auto q = events_to<proto::Queued>(h.last, kClient);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].waiting_for, "") << "an eligible worker exists; the job waits for its slot";
  EXPECT_EQ(jobs_sent(result(h, "X", first), "X"), std::vector<std::string>{second});
}

TEST(BrokerDispatcher, JobsSpreadOverWorkers) {
  Harness h;
  h.ready("W1", "echo", 2);
  h.ready("W2", "echo", 2);
  std::vector<Action> all;
  for (int i = 0; i < 4; ++i) {
    h.submit(kClient, "echo");
    all.insert(all.end(), h.last.begin(), h.last.end());
  }
  EXPECT_EQ(jobs_sent(all, "W1").size(), 2u);
  EXPECT_EQ(jobs_sent(all, "W2").size(), 2u);
  h.submit(kClient, "echo");
  EXPECT_TRUE(jobs_sent(h.last).empty()) << "both workers are full";
}

// ---- models -------------------------------------------------------------------------

TEST(BrokerDispatcher, ModelJobGoesOnlyToWorkersAdvertisingIt) {
  Harness h;
  h.ready("A", "text", 4, {"qwen3-0.6b"});
  const std::string j = h.submit(kClient, "text", 5, "qwen3-8b");
  EXPECT_TRUE(jobs_sent(h.last).empty());
  auto q = events_to<proto::Queued>(h.last, kClient);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].waiting_for, "no worker advertises model 'qwen3-8b'");
  EXPECT_EQ(status_of(h, j).waiting_for, "no worker advertises model 'qwen3-8b'");

  // A model-less job still goes to A while the model job waits.
  const std::string any = h.submit(kClient, "text");
  EXPECT_EQ(jobs_sent(h.last, "A"), std::vector<std::string>{any});

  h.d.workers(kOther, proto::WorkersReq{7});
  auto wl = events_to<proto::WorkerList>(h.take(), kOther);
  ASSERT_EQ(wl.size(), 1u);
  ASSERT_EQ(wl[0].services.size(), 1u);
  EXPECT_EQ(wl[0].services[0].service, "text");
  EXPECT_EQ(wl[0].services[0].models, std::vector<std::string>{"qwen3-0.6b"});
  EXPECT_EQ(wl[0].services[0].queued, 1u);
  EXPECT_EQ(wl[0].services[0].load, 1u);

  h.ready("B", "text", 1, {"qwen3-8b"});
  EXPECT_EQ(jobs_sent(h.last, "B"), std::vector<std::string>{j});
  auto started = events_to<proto::Started>(h.last, kClient);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].worker, "w2");
}

// ---- leases, liveness, attempts -----------------------------------------------------

TEST(BrokerDispatcher, HeartbeatsGoToLiveWorkers) {
  Harness h;
  h.ready("W1", "echo");
  h.clock.advance(1000);
  h.d.tick();
  auto hb = all_of<SendHeartbeat>(h.take());
  ASSERT_EQ(hb.size(), 1u);
  EXPECT_EQ(hb[0].routing, "W1");
  EXPECT_EQ(h.d.next_wakeup_ms(), h.clock.now_ms() + 1000);
}

TEST(BrokerDispatcher, DeadWorkerJobsRequeueAtFrontThenFailAfterMaxAttempts) {
  Harness h;
  const std::string j = h.submit(kClient, "echo", 5);
  const std::string later = h.submit(kClient, "echo", 5);
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    const std::string w = "W" + std::to_string(attempt);
    h.ready(w, "echo", 1);
    ASSERT_EQ(jobs_sent(h.last, w), std::vector<std::string>{j})
        << "the requeued job goes before the one submitted after it";
    EXPECT_EQ(all_of<SendJob>(h.last)[0].attempt, attempt);
    // Silence: dead after `liveness` heartbeat intervals.
    for (int i = 0; i < 4; ++i) {
      h.clock.advance(1000);
      h.d.tick();
    }
    auto acts = h.take();
    if (attempt < 3) {
      auto q = events_to<proto::Queued>(acts, kClient);
      ASSERT_EQ(q.size(), 1u) << "requeued job is QUEUED again";
      EXPECT_EQ(q[0].job, j);
      EXPECT_EQ(q[0].position, 0u);
      EXPECT_EQ(status_of(h, j).attempts, attempt);
    } else {
      auto errs = events_to<proto::Error>(acts, kClient);
      ASSERT_EQ(errs.size(), 1u);
      EXPECT_EQ(errs[0].job, j);
      EXPECT_EQ(errs[0].code, ErrorCode::worker_lost);
      EXPECT_EQ(status_of(h, j).state, JobState::failed);
    }
  }
  EXPECT_EQ(status_of(h, later).state, JobState::queued);
  EXPECT_EQ(h.d.workers_alive(), 0u);
}

TEST(BrokerDispatcher, UnreachableWorkerIsLostAtOnce) {
  Harness h;
  h.ready("W1", "echo");
  const std::string j = h.submit(kClient, "echo");
  h.d.worker_lost("W1");
  auto acts = h.take();
  EXPECT_EQ(events_to<proto::Queued>(acts, kClient).size(), 1u);
  EXPECT_EQ(h.d.workers_alive(), 0u);
  h.ready("W2", "echo");
  ASSERT_EQ(all_of<SendJob>(h.last).size(), 1u);
  EXPECT_EQ(all_of<SendJob>(h.last)[0].attempt, 2u) << "a lost worker costs an attempt";
  EXPECT_EQ(h.d.metrics().workers_lost, 1u);
}

TEST(BrokerDispatcher, WorkerMessagesKeepItAlive) {
  Harness h;
  h.ready("W1", "echo");
  for (int i = 0; i < 10; ++i) {
    h.clock.advance(1000);
    EXPECT_EQ(h.d.worker_seen("W1"), Verdict::accepted);
    h.d.tick();
  }
  h.take();
  EXPECT_EQ(h.d.workers_alive(), 1u);
}

TEST(BrokerDispatcher, LateResultFromDeadWorkerIsDroppedAndDeliveredOnce) {
  Harness h;
  const std::string j = h.submit(kClient, "echo");
  h.ready("OLD", "echo");
  for (int i = 0; i < 4; ++i) {
    h.clock.advance(1000);
    h.d.tick();
  }
  h.take();
  h.ready("NEW", "echo");
  ASSERT_EQ(jobs_sent(h.last, "NEW"), std::vector<std::string>{j});

  // The dead worker's late RESULT: told to reconnect, nothing reaches the client.
  auto acts = result(h, "OLD", j, Verdict::unknown_worker);
  auto disc = all_of<SendDisconnect>(acts);
  ASSERT_EQ(disc.size(), 1u);
  EXPECT_EQ(disc[0].routing, "OLD");
  EXPECT_TRUE(all_of<Notify>(acts).empty());

  // It logs in again on the same connection: still not its job.
  h.ready("OLD", "echo");
  EXPECT_TRUE(jobs_sent(h.last).empty());
  acts = result(h, "OLD", j, Verdict::not_leased);
  EXPECT_TRUE(all_of<Notify>(acts).empty());

  EXPECT_FALSE(h.d.wants_result("OLD", j)) << "the loop must not store a dropped result";
  EXPECT_TRUE(h.d.wants_result("NEW", j));
  acts = result(h, "NEW", j);
  auto relays = events_to<Relay>(acts, kClient);
  ASSERT_EQ(relays.size(), 1u);
  EXPECT_EQ(relays[0].cmd, proto::EventCmd::Result);
  EXPECT_FALSE(h.d.wants_result("NEW", j));
  // A duplicate of the same RESULT is dropped too.
  acts = result(h, "NEW", j, Verdict::not_leased);
  EXPECT_TRUE(all_of<Notify>(acts).empty());
  EXPECT_EQ(status_of(h, j).state, JobState::succeeded);
}

TEST(BrokerDispatcher, GracefulDisconnectRequeuesWithoutCountingAnAttempt) {
  Harness h;
  const std::string j = h.submit(kClient, "echo");
  h.ready("W1", "echo");
  h.d.worker_disconnect("W1");
  auto acts = h.take();
  EXPECT_EQ(events_to<proto::Queued>(acts, kClient).size(), 1u);
  EXPECT_EQ(status_of(h, j).attempts, 0u);
  h.ready("W2", "echo");
  auto sends = all_of<SendJob>(h.last);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].attempt, 1u);
}

TEST(BrokerDispatcher, UnknownWorkerIsToldToReconnect) {
  Harness h;
  EXPECT_EQ(h.d.worker_seen("GHOST"), Verdict::unknown_worker);
  EXPECT_EQ(h.d.worker_progress("GHOST", "j1"), Verdict::unknown_worker);
  auto disc = all_of<SendDisconnect>(h.take());
  EXPECT_EQ(disc.size(), 2u);
}

TEST(BrokerDispatcher, ProgressAndPartialAreRelayedOnlyFromTheLeaseHolder) {
  Harness h;
  h.ready("W1", "echo");
  h.ready("W2", "echo");
  const std::string j = h.submit(kClient, "echo");
  const std::string holder = jobs_sent(h.last, "W1").empty() ? "W2" : "W1";
  const std::string other = holder == "W1" ? "W2" : "W1";
  EXPECT_EQ(h.d.worker_progress(holder, j), Verdict::accepted);
  EXPECT_EQ(h.d.worker_partial(holder, j), Verdict::accepted);
  EXPECT_EQ(h.d.worker_progress(other, j), Verdict::not_leased);
  auto relays = events_to<Relay>(h.take(), kClient);
  ASSERT_EQ(relays.size(), 2u);
  EXPECT_EQ(relays[0].cmd, proto::EventCmd::Progress);
  EXPECT_EQ(relays[1].cmd, proto::EventCmd::Partial);
}

// ---- cancel -------------------------------------------------------------------------

TEST(BrokerDispatcher, CancelQueuedJobEndsAtOnce) {
  Harness h;
  const std::string j = h.submit(kClient, "echo");
  h.d.cancel(kOther, proto::JobRef{5, j});
  auto acts = h.take();
  EXPECT_EQ(events_to<proto::Cancelled>(acts, kClient).size(), 1u);
  auto info = events_to<proto::JobInfo>(acts, kOther);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].req, 5u);
  EXPECT_EQ(info[0].state, JobState::cancelled);
  h.ready("W1", "echo");
  EXPECT_TRUE(jobs_sent(h.last).empty()) << "a cancelled job never runs";
}

TEST(BrokerDispatcher, CancelRunningJobWaitsForTheWorker) {
  Harness h;
  h.ready("W1", "echo", 1);
  const std::string j = h.submit(kClient, "echo");
  const std::string next = h.submit(kClient, "echo");
  h.d.cancel(kClient, proto::JobRef{5, j});
  auto acts = h.take();
  auto cancels = all_of<SendCancel>(acts);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].routing, "W1");
  EXPECT_EQ(cancels[0].job, j);
  EXPECT_TRUE(events_to<proto::Cancelled>(acts, kClient).empty());
  auto info = events_to<proto::JobInfo>(acts, kClient);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].state, JobState::running);

  EXPECT_EQ(h.d.worker_error("W1", proto::Error{0, j, ErrorCode::cancelled, "stopped"}),
            Verdict::accepted);
  acts = h.take();
  EXPECT_EQ(events_to<proto::Cancelled>(acts, kClient).size(), 1u);
  EXPECT_TRUE(events_to<proto::Error>(acts, kClient).empty());
  EXPECT_EQ(jobs_sent(acts, "W1"), std::vector<std::string>{next}) << "its slot is free again";
  EXPECT_EQ(status_of(h, j).state, JobState::cancelled);
}

TEST(BrokerDispatcher, ResultAfterCancelRequestStillEndsCancelled) {
  Harness h;
  h.ready("W1", "echo");
  const std::string j = h.submit(kClient, "echo");
  h.d.cancel(kClient, proto::JobRef{5, j});
  h.take();
  EXPECT_FALSE(h.d.wants_result("W1", j)) << "a result for a cancelled job is not stored";
  auto acts = result(h, "W1", j);
  EXPECT_EQ(events_to<proto::Cancelled>(acts, kClient).size(), 1u);
  EXPECT_TRUE(events_to<Relay>(acts, kClient).empty());
}

TEST(BrokerDispatcher, CancelUnknownJobIsNotFound) {
  Harness h;
  h.d.cancel(kClient, proto::JobRef{3, "j_nope"});
  auto errs = events_to<proto::Error>(h.take(), kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::not_found);
  EXPECT_EQ(errs[0].req, 3u);
}

// ---- timeouts -----------------------------------------------------------------------

TEST(BrokerDispatcher, QueuedJobTimesOut) {
  Harness h;
  const std::string j = h.submit(kClient, "echo", 5, "", 500);
  EXPECT_EQ(h.d.next_wakeup_ms(), h.clock.now_ms() + 500);
  h.clock.advance(499);
  h.d.tick();
  EXPECT_TRUE(events_to<proto::Error>(h.take(), kClient).empty());
  h.clock.advance(1);
  h.d.tick();
  auto errs = events_to<proto::Error>(h.take(), kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::timeout);
  h.ready("W1", "echo");
  EXPECT_TRUE(jobs_sent(h.last).empty());
}

TEST(BrokerDispatcher, RunningJobTimesOutAndIsCancelledOnItsWorker) {
  Harness h;
  h.ready("W1", "echo", 1);
  const std::string j = h.submit(kClient, "echo", 5, "", 2000);
  ASSERT_EQ(all_of<SendJob>(h.last).size(), 1u);
  EXPECT_EQ(all_of<SendJob>(h.last)[0].timeout_ms, 2000u);
  const std::string next = h.submit(kClient, "echo");
  h.clock.advance(700);
  EXPECT_EQ(h.d.worker_seen("W1"), Verdict::accepted);
  h.clock.advance(1300);
  h.d.tick();
  auto acts = h.take();
  auto errs = events_to<proto::Error>(acts, kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::timeout);
  auto cancels = all_of<SendCancel>(acts);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].job, j);
  EXPECT_TRUE(jobs_sent(acts).empty()) << "the worker still holds the slot until it answers";

  // The worker's acknowledgement frees the slot but is not delivered.
  EXPECT_EQ(h.d.worker_error("W1", proto::Error{0, j, ErrorCode::cancelled, ""}),
            Verdict::released);
  acts = h.take();
  EXPECT_TRUE(events_to<proto::Cancelled>(acts, kClient).empty());
  EXPECT_EQ(jobs_sent(acts, "W1"), std::vector<std::string>{next});
  EXPECT_EQ(status_of(h, j).state, JobState::failed);
}

// ---- admission ----------------------------------------------------------------------

TEST(BrokerDispatcher, QueueFullAtTheLimit) {
  auto cfg = test_config();
  cfg.queue_limit = 3;
  Harness h(cfg);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(h.submit(kClient, "echo").empty());
  EXPECT_EQ(h.submit(kClient, "echo"), "");
  auto errs = events_to<proto::Error>(h.last, kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::queue_full);
  EXPECT_EQ(errs[0].job, "");
  EXPECT_EQ(errs[0].req, h.req);
  EXPECT_TRUE(all_of<PersistJob>(h.last).empty()) << "a refused job is not journaled";
  EXPECT_FALSE(h.submit(kClient, "text").empty()) << "the limit is per service";
}

TEST(BrokerDispatcher, IdempotencyKeyReturnsTheExistingJob) {
  auto cfg = test_config();
  cfg.final_jobs_in_memory = 0;
  Harness h(cfg);
  const std::string j = h.submit(kClient, "echo", 5, "", 0, "key-1");
  const std::string again = h.submit(kOther, "echo", 5, "", 0, "key-1");
  EXPECT_EQ(again, j);
  auto acc = events_to<proto::Accepted>(h.last, kOther);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_TRUE(acc[0].existing);
  EXPECT_EQ(events_to<proto::JobInfo>(h.last, kOther).size(), 1u) << "then behaves like ATTACH";
  EXPECT_TRUE(all_of<PersistJob>(h.last).empty());

  // The second submitter is now the subscriber.
  h.ready("W1", "echo");
  EXPECT_EQ(events_to<proto::Started>(h.last, kOther).size(), 1u);
  EXPECT_TRUE(events_to<proto::Started>(h.last, kClient).empty());
  result(h, "W1", j);
  EXPECT_EQ(h.d.jobs_in_memory(), 0u) << "final jobs beyond the memory bound are evicted";

  // After eviction the key is found through the archive; the result replays.
  const std::string third = h.submit(kClient, "echo", 5, "", 0, "key-1");
  EXPECT_EQ(third, j);
  EXPECT_EQ(events_to<StoredResult>(h.last, kClient).size(), 1u);
}

TEST(BrokerDispatcher, UnknownServiceUntilAWorkerRegistersIt) {
  Harness h;
  EXPECT_EQ(h.submit(kClient, "audio"), "");
  auto errs = events_to<proto::Error>(h.last, kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::unknown_service);
  h.ready("A1", "audio");
  h.d.worker_disconnect("A1");
  h.take();
  EXPECT_NE(h.submit(kClient, "audio"), "") << "a service once registered stays known";
  EXPECT_NE(h.submit(kClient, "video"), "") << "configured services are known without workers";
}

TEST(BrokerDispatcher, InvalidPriorityIsRejected) {
  Harness h;
  EXPECT_EQ(h.submit(kClient, "echo", 10), "");
  auto errs = events_to<proto::Error>(h.last, kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::invalid_request);
}

TEST(BrokerDispatcher, JournalWritesComeBeforeAccepted) {
  Harness h;
  h.ready("W1", "echo");
  h.submit(kClient, "echo", 5, "", 0, "", {{"in", "text/plain", 5}, {"empty", "", 0}});
  const auto& a = h.last;
  auto index_of = [&](auto pred) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (pred(a[i])) return int(i);
    return -1;
  };
  int store = index_of([](const Action& x) { return std::holds_alternative<StoreInputs>(x); });
  int persist = index_of([](const Action& x) {
    auto* p = std::get_if<PersistJob>(&x);
    return p && p->is_new;
  });
  int accepted = index_of([](const Action& x) {
    auto* n = std::get_if<Notify>(&x);
    return n && std::holds_alternative<proto::Accepted>(n->event);
  });
  int job = index_of([](const Action& x) { return std::holds_alternative<SendJob>(x); });
  int started = index_of([](const Action& x) {
    auto* n = std::get_if<Notify>(&x);
    return n && std::holds_alternative<proto::Started>(n->event);
  });
  ASSERT_GE(store, 0);
  EXPECT_LT(store, persist);
  EXPECT_LT(persist, accepted);
  EXPECT_LT(accepted, job);
  EXPECT_LT(job, started);

  h.submit(kClient, "echo", 5, "", 0, "", {{"empty", "", 0}});
  EXPECT_TRUE(all_of<StoreInputs>(h.last).empty()) << "nothing to store for empty inputs";
}

// The loop merges a batch's journal writes (coalesce_journal_writes): a
// SUBMIT dispatched at once becomes one INSERT of the running job, every
// other action kept in order.
TEST(BrokerDispatcher, CoalescedJournalWritesOfAnImmediateDispatch) {
  Harness h;
  h.ready("W1", "echo");
  h.submit(kClient, "echo");
  auto actions = h.last;
  ASSERT_EQ(all_of<PersistJob>(actions).size(), 2u) << "queued, then running";
  const std::size_t before = actions.size();
  coalesce_journal_writes(actions);
  ASSERT_EQ(actions.size(), before - 1);
  auto writes = all_of<PersistJob>(actions);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_TRUE(writes[0].is_new);
  EXPECT_EQ(writes[0].status.state, proto::JobState::running);
  EXPECT_EQ(writes[0].status.attempts, 1u);
  EXPECT_FALSE(writes[0].status.worker.empty());
  EXPECT_EQ(writes[0].status.worker, h.archive.find(writes[0].spec->id)->status.worker)
      << "the merged row is what the two writes leave";
  // The row is written where the first write was: before ACCEPTED, and the
  // JOB and STARTED still follow.
  EXPECT_TRUE(std::holds_alternative<PersistJob>(actions[0]));
  EXPECT_TRUE(std::holds_alternative<SendJob>(actions[2]));

  // A job that stays queued (W1 is busy) has one write: nothing to merge.
  h.submit(kClient, "echo");
  ASSERT_EQ(all_of<SendJob>(h.last).size(), 0u);
  auto queued = h.last;
  coalesce_journal_writes(queued);
  EXPECT_EQ(queued.size(), h.last.size());
}

// A final status is never folded into a new row (its own side effects, e.g.
// dropping input files, belong to the update), nor are other jobs' writes.
TEST(BrokerDispatcher, CoalescingLeavesFinalStatusesAndOtherJobsAlone) {
  auto a = std::make_shared<JobSpec>(), b = std::make_shared<JobSpec>();
  a->id = "ja";
  b->id = "jb";
  JobStatus queued, running, failed;
  running.state = proto::JobState::running;
  failed.state = proto::JobState::failed;
  std::vector<Action> actions = {PersistJob{a, queued, true}, PersistJob{b, running, false},
                                 PersistJob{a, failed, false}};
  coalesce_journal_writes(actions);
  EXPECT_EQ(actions.size(), 3u);
  actions = {PersistJob{a, queued, true}, PersistJob{b, running, false},
             PersistJob{a, running, false}, SendJob{"W", a, 1, 0}};
  coalesce_journal_writes(actions);
  ASSERT_EQ(actions.size(), 3u);
  EXPECT_EQ(std::get<PersistJob>(actions[0]).status.state, proto::JobState::running);
  EXPECT_EQ(std::get<PersistJob>(actions[1]).spec, b);
  EXPECT_TRUE(std::holds_alternative<SendJob>(actions[2]));
}

TEST(BrokerDispatcher, RetractUndoesASubmitAsIfItNeverHappened) {
  Harness h;
  h.ready("W1", "echo", 1);
  proto::Submit s;
  s.service = "echo";
  s.timeout_ms = 1000;
  s.key = "k";
  h.d.submit(kClient, std::move(s));
  // The loop could not store the inputs: it discards these actions unexecuted.
  std::vector<Action> discarded;
  discarded.swap(h.d.actions());
  ASSERT_EQ(all_of<SendJob>(discarded).size(), 1u);
  const std::string j = all_of<SendJob>(discarded)[0].spec->id;
  h.d.retract(j);
  EXPECT_TRUE(h.take().empty());
  EXPECT_EQ(h.d.next_wakeup_ms(), h.clock.now_ms() + 1000) << "its deadline is gone, the heartbeat is next";
  h.d.status(kClient, proto::JobRef{1, j});
  auto errs = events_to<proto::Error>(h.take(), kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::not_found);
  const std::string k = h.submit(kClient, "echo", 5, "", 0, "k");
  EXPECT_NE(k, j) << "the key is free again";
  EXPECT_EQ(jobs_sent(h.last, "W1"), std::vector<std::string>{k}) << "the slot is free again";
}

TEST(BrokerDispatcher, AbortFailsTheJobAndFreesItsSlot) {
  Harness h;
  h.ready("W1", "echo", 1);
  const std::string j = h.submit(kClient, "echo");
  const std::string next = h.submit(kClient, "echo");
  h.d.abort(j, ErrorCode::internal, "inputs unreadable");
  auto acts = h.take();
  auto errs = events_to<proto::Error>(acts, kClient);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::internal);
  EXPECT_EQ(jobs_sent(acts, "W1"), std::vector<std::string>{next});
  EXPECT_EQ(h.d.worker_result("W1", j), Verdict::not_leased);
}

// ---- queries ------------------------------------------------------------------------

TEST(BrokerDispatcher, FetchAnswersByState) {
  Harness h;
  const std::string j = h.submit(kClient, "echo");
  h.d.fetch(kOther, proto::JobRef{1, j});
  auto errs = events_to<proto::Error>(h.take(), kOther);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::not_finished);
  h.d.fetch(kOther, proto::JobRef{2, "j_missing"});
  errs = events_to<proto::Error>(h.take(), kOther);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::not_found);

  h.ready("W1", "echo");
  h.d.worker_error("W1", proto::Error{0, j, ErrorCode::invalid_request, "bad prompt"});
  h.take();
  h.d.fetch(kOther, proto::JobRef{3, j});
  errs = events_to<proto::Error>(h.take(), kOther);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].code, ErrorCode::invalid_request) << "FETCH repeats the original error";
  EXPECT_EQ(errs[0].message, "bad prompt");
  EXPECT_EQ(errs[0].req, 3u);
}

TEST(BrokerDispatcher, AttachReplacesTheSubscriber) {
  Harness h;
  const std::string j = h.submit(kClient, "echo");
  h.d.attach(kOther, proto::JobRef{4, j});
  auto acts = h.take();
  auto info = events_to<proto::JobInfo>(acts, kOther);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].state, JobState::queued);
  h.ready("W1", "echo");
  EXPECT_EQ(events_to<proto::Started>(h.last, kOther).size(), 1u);
  EXPECT_TRUE(events_to<proto::Started>(h.last, kClient).empty());
  auto r = result(h, "W1", j);
  EXPECT_EQ(events_to<Relay>(r, kOther).size(), 1u);

  // Attaching to a finished job replays its terminal event.
  h.d.attach(kClient, proto::JobRef{5, j});
  acts = h.take();
  EXPECT_EQ(events_to<proto::JobInfo>(acts, kClient).size(), 1u);
  EXPECT_EQ(events_to<StoredResult>(acts, kClient).size(), 1u);
}

TEST(BrokerDispatcher, ListIsMostRecentFirst) {
  Harness h;
  const std::string a = h.submit(kClient, "echo");
  const std::string b = h.submit(kClient, "text");
  const std::string c = h.submit(kClient, "echo");
  h.d.list(kClient, proto::ListReq{8, "", 10});
  auto lists = events_to<proto::JobList>(h.take(), kClient);
  ASSERT_EQ(lists.size(), 1u);
  ASSERT_EQ(lists[0].jobs.size(), 3u);
  EXPECT_EQ(lists[0].jobs[0].job, c);
  EXPECT_EQ(lists[0].jobs[2].job, a);
  h.d.list(kClient, proto::ListReq{9, "text", 10});
  lists = events_to<proto::JobList>(h.take(), kClient);
  ASSERT_EQ(lists[0].jobs.size(), 1u);
  EXPECT_EQ(lists[0].jobs[0].job, b);
}

TEST(BrokerDispatcher, FinalJobsInMemoryAreBounded) {
  auto cfg = test_config();
  cfg.final_jobs_in_memory = 3;
  Harness h(cfg);
  h.ready("W1", "echo", 1);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(h.submit(kClient, "echo"));
    result(h, "W1", ids.back());
  }
  EXPECT_EQ(h.d.jobs_in_memory(), 3u);
  EXPECT_EQ(status_of(h, ids[0]).state, JobState::succeeded) << "older ones come from the archive";
}

// ---- recovery -----------------------------------------------------------------------

TEST(BrokerDispatcher, RestoreRequeuesRunningJobsKeepingAttempts) {
  Harness before;
  const std::string queued = before.submit(kClient, "echo", 5);
  before.ready("W1", "echo", 1);
  const std::string running = jobs_sent(before.last, "W1").at(0);
  EXPECT_EQ(running, queued);
  const std::string waiting = before.submit(kClient, "echo", 5);
  const std::string done = before.submit(kClient, "text", 5);
  before.ready("T1", "text", 1);
  result(before, "T1", done);

  // A new broker over the same archive.
  Harness after;
  after.archive = before.archive;
  std::vector<JobRecord> unfinished;
  for (const auto& id : {running, waiting}) unfinished.push_back(*after.archive.find(id));
  after.d.restore(unfinished);
  auto acts = after.take();
  auto persisted = all_of<PersistJob>(acts);
  ASSERT_EQ(persisted.size(), 1u) << "the formerly running job is journaled as queued";
  EXPECT_EQ(persisted[0].spec->id, running);
  EXPECT_EQ(persisted[0].status.state, JobState::queued);
  EXPECT_EQ(persisted[0].status.attempts, 1u);

  after.ready("W9", "echo", 2);
  auto sends = all_of<SendJob>(after.last);
  ASSERT_EQ(sends.size(), 2u);
  EXPECT_EQ(sends[0].spec->id, running);
  EXPECT_EQ(sends[0].attempt, 2u);
  EXPECT_EQ(sends[1].spec->id, waiting);
  EXPECT_EQ(sends[1].attempt, 1u);

  // Finished jobs answer from the archive.
  after.d.fetch(kOther, proto::JobRef{1, done});
  EXPECT_EQ(events_to<StoredResult>(after.take(), kOther).size(), 1u);
  // Events of restored jobs go to whoever ATTACHes.
  after.d.attach(kOther, proto::JobRef{2, waiting});
  after.take();
  auto r = result(after, "W9", waiting);
  EXPECT_EQ(events_to<Relay>(r, kOther).size(), 1u);
}

TEST(BrokerDispatcher, RestoredDeadlineKeepsCounting) {
  auto cfg = test_config();
  cfg.unix_at_clock_zero = 0;
  Harness h(cfg);
  auto spec = std::make_shared<JobSpec>();
  spec->id = "j_old";
  spec->service = "echo";
  spec->timeout_ms = 5000;
  spec->created_s = double(h.clock.now_ms()) / 1000.0 - 4.0;  // 4 s of its 5 s are gone
  h.archive.put(JobRecord{spec, JobStatus{}});
  h.d.restore({*h.archive.find("j_old")});
  h.take();
  h.clock.advance(999);
  h.d.tick();
  EXPECT_EQ(status_of(h, "j_old").state, JobState::queued);
  h.clock.advance(1);
  h.d.tick();
  EXPECT_EQ(status_of(h, "j_old").state, JobState::failed);
}

}  // namespace
}  // namespace mmgen::broker::testing

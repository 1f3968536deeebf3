// The SQLite journal on a temporary directory: rows survive reopening (and a
// process that dies without closing), unfinished jobs come back for recovery,
// TTL collection removes old final jobs only.
#include <gtest/gtest.h>

#include <algorithm>

#include <sys/wait.h>
#include <unistd.h>

#include "journal.hpp"
#include "temp_dir.hpp"

namespace mmgen::broker::testing {
namespace {

using proto::ErrorCode;
using proto::JobState;

std::shared_ptr<JobSpec> make_spec(const std::string& id, const std::string& service = "echo",
                                   const std::string& key = "") {
  auto s = std::make_shared<JobSpec>();
  s->id = id;
  s->service = service;
  s->model = "m1";
  s->key = key;
  s->params = ValueMap{{"prompt", "a cat"}, {"steps", 20}, {"cfg", 4.5},
                       {"nested", ValueMap{{"list", ValueArray{1, "two", true}}}}};
  s->inputs = {{"image", "image/png", 1234}, {"mask", "", 0}};
  s->priority = 7;
  s->timeout_ms = 60000;
  s->created_s = 1700000000.25;
  return s;
}

JobStatus status(JobState state, std::uint32_t attempts = 0, const std::string& worker = "",
                 double updated = 1700000001.0) {
  JobStatus st;
  st.state = state;
  st.attempts = attempts;
  st.worker = worker;
  st.updated_s = updated;
  return st;
}

TEST(BrokerJournal, RowsRoundTripAndSurviveReopening) {
  TempDir dir;
  auto spec = make_spec("j_1", "image", "key-1");
  {
    Journal j(dir.path());
    j.insert(*spec, status(JobState::queued));
    JobStatus failed = status(JobState::failed, 2, "w3", 1700000009.5);
    failed.failure = Failure{ErrorCode::worker_lost, "worker lost 2 times"};
    j.update("j_1", failed);
    j.commit();
  }
  Journal j(dir.path());
  auto rec = j.find("j_1");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->spec->service, "image");
  EXPECT_EQ(rec->spec->model, "m1");
  EXPECT_EQ(rec->spec->key, "key-1");
  EXPECT_EQ(rec->spec->params, spec->params);
  EXPECT_EQ(rec->spec->inputs, spec->inputs);
  EXPECT_EQ(rec->spec->priority, 7);
  EXPECT_EQ(rec->spec->timeout_ms, 60000u);
  EXPECT_DOUBLE_EQ(rec->spec->created_s, 1700000000.25);
  EXPECT_EQ(rec->status.state, JobState::failed);
  EXPECT_EQ(rec->status.attempts, 2u);
  EXPECT_EQ(rec->status.worker, "w3");
  ASSERT_TRUE(rec->status.failure.has_value());
  EXPECT_EQ(rec->status.failure->code, ErrorCode::worker_lost);
  EXPECT_EQ(rec->status.failure->message, "worker lost 2 times");
  EXPECT_EQ(j.find_id_by_key("key-1"), std::optional<std::string>("j_1"));
  EXPECT_FALSE(j.find_id_by_key("key-2").has_value());
  EXPECT_FALSE(j.find("j_2").has_value());
}

TEST(BrokerJournal, CommittedRowsSurviveAProcessThatDiesWithoutClosing) {
  TempDir dir;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Journal j(dir.path());
    j.insert(*make_spec("j_committed"), status(JobState::queued));
    j.commit();
    j.insert(*make_spec("j_uncommitted"), status(JobState::queued));
    _exit(0);  // no destructor, no commit: like SIGKILL
  }
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  Journal j(dir.path());
  EXPECT_TRUE(j.find("j_committed").has_value());
  EXPECT_FALSE(j.find("j_uncommitted").has_value());
}

TEST(BrokerJournal, UnfinishedJobsComeBackInSubmissionOrder) {
  TempDir dir;
  Journal j(dir.path());
  j.insert(*make_spec("j_a"), status(JobState::running, 2, "w1"));
  j.insert(*make_spec("j_b"), status(JobState::succeeded, 1, "w1"));
  j.insert(*make_spec("j_c"), status(JobState::queued));
  j.insert(*make_spec("j_d"), status(JobState::cancelled));
  j.commit();
  auto jobs = j.load_unfinished();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].spec->id, "j_a");
  EXPECT_EQ(jobs[0].status.state, JobState::running) << "as recorded; restore requeues it";
  EXPECT_EQ(jobs[0].status.attempts, 2u);
  EXPECT_EQ(jobs[1].spec->id, "j_c");
  EXPECT_EQ(jobs[1].status.state, JobState::queued);
}

TEST(BrokerJournal, RecentIsNewestFirstAndFiltersByService) {
  TempDir dir;
  Journal j(dir.path());
  j.insert(*make_spec("j_1", "echo"), status(JobState::queued));
  j.insert(*make_spec("j_2", "text"), status(JobState::queued));
  j.insert(*make_spec("j_3", "echo"), status(JobState::queued));
  auto all = j.recent("", 2);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].spec->id, "j_3");
  EXPECT_EQ(all[1].spec->id, "j_2");
  auto echo = j.recent("echo", 10);
  ASSERT_EQ(echo.size(), 2u);
  EXPECT_EQ(echo[0].spec->id, "j_3");
  EXPECT_EQ(echo[1].spec->id, "j_1");
}

TEST(BrokerJournal, ResultBodiesAndInlineBlobs) {
  TempDir dir;
  Journal j(dir.path());
  const std::string packed_in("\0\1\2in", 5), packed_out("\3\4out", 5);
  j.insert(*make_spec("j_1"), status(JobState::running), packed_in);
  EXPECT_FALSE(j.load_result("j_1").has_value());
  EXPECT_EQ(j.load_inline("j_1", BlobDir::in), packed_in);
  EXPECT_EQ(j.load_inline("j_1", BlobDir::out), "");

  const std::string body("\x81\xa3job\xa3j_1", 9);
  j.store_result("j_1", body, packed_out);
  j.update("j_1", status(JobState::succeeded));
  j.commit();
  EXPECT_EQ(j.load_result("j_1"), std::optional<std::string>(body));
  EXPECT_EQ(j.load_inline("j_1", BlobDir::out), packed_out);
  EXPECT_EQ(j.load_inline("j_1", BlobDir::in), "") << "a final job's inputs are dropped";
  EXPECT_EQ(j.load_inline("j_nope", BlobDir::out), "");
}

// The common end of a job in one statement: the final status, the RESULT body
// and the small outputs, as store_result() + update() would leave the row, and
// durable only with the commit (a reopened journal sees it).
TEST(BrokerJournal, FinalStatusWithResultInOneUpdate) {
  TempDir dir;
  const std::string packed_in("\0\1\2in", 5), packed_out("\3\4out", 5);
  const std::string body("\x81\xa3job\xa3j_1", 9);
  {
    Journal j(dir.path());
    j.insert(*make_spec("j_1"), status(JobState::running, 1, "w1"), packed_in);
    j.insert(*make_spec("j_2"), status(JobState::running, 1, "w1"));
    j.commit();
    j.update("j_1", status(JobState::succeeded, 1, "w1", 1700000009.5), body, packed_out);
    j.update("j_2", status(JobState::succeeded, 1, "w1"), body, "");
    j.commit();
    EXPECT_EQ(j.load_result("j_1"), std::optional<std::string>(body));
    EXPECT_EQ(j.load_inline("j_1", BlobDir::out), packed_out);
    EXPECT_EQ(j.load_inline("j_1", BlobDir::in), "") << "a final job's inputs are dropped";
    EXPECT_EQ(j.load_inline("j_2", BlobDir::out), "") << "no outputs: none stored";
  }
  Journal j(dir.path());
  auto rec = j.find("j_1");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status.state, JobState::succeeded);
  EXPECT_EQ(rec->status.attempts, 1u);
  EXPECT_EQ(rec->status.updated_s, 1700000009.5);
  EXPECT_EQ(j.load_result("j_1"), std::optional<std::string>(body));
  EXPECT_EQ(j.load_inline("j_1", BlobDir::out), packed_out);
  EXPECT_TRUE(j.load_unfinished().empty());
  // It counts as finished for TTL collection, like any final update.
  EXPECT_EQ(j.collect_expired(1700000010.0, 10).size(), 2u);
}

TEST(BrokerJournal, CollectsOnlyFinalJobsPastTheirTtl) {
  TempDir dir;
  Journal j(dir.path());
  j.insert(*make_spec("j_old_done"), status(JobState::succeeded, 1, "w1", 1000.0));
  j.store_result("j_old_done", "body", "packed");
  j.insert(*make_spec("j_old_failed"), status(JobState::failed, 1, "w1", 1500.0));
  j.insert(*make_spec("j_new_done"), status(JobState::succeeded, 1, "w1", 5000.0));
  j.insert(*make_spec("j_old_queued"), status(JobState::queued, 0, "", 1000.0));
  j.commit();

  auto ids = j.collect_expired(2000.0, 100);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"j_old_done", "j_old_failed"}));
  j.commit();
  EXPECT_FALSE(j.find("j_old_done").has_value());
  EXPECT_FALSE(j.load_result("j_old_done").has_value());
  EXPECT_EQ(j.load_inline("j_old_done", BlobDir::out), "");
  EXPECT_TRUE(j.find("j_new_done").has_value());
  EXPECT_TRUE(j.find("j_old_queued").has_value()) << "unfinished jobs never expire";
  EXPECT_TRUE(j.collect_expired(2000.0, 100).empty());
}

TEST(BrokerJournal, CollectionIsBatched) {
  TempDir dir;
  Journal j(dir.path());
  for (int i = 0; i < 5; ++i)
    j.insert(*make_spec("j_" + std::to_string(i)), status(JobState::succeeded, 1, "", 10.0));
  EXPECT_EQ(j.collect_expired(100.0, 3).size(), 3u);
  EXPECT_EQ(j.collect_expired(100.0, 3).size(), 2u);
}

TEST(BrokerJournal, ASecondBrokerOnTheSameDirectoryIsRefused) {
  TempDir dir;
  Journal first(dir.path());
  first.insert(*make_spec("j_1"), status(JobState::queued));
  first.commit();
  EXPECT_THROW(
      {
        Journal second(dir.path());
        second.find("j_1");
      },
      JournalError);
  EXPECT_TRUE(first.find("j_1").has_value());
}

}  // namespace
}  // namespace mmgen::broker::testing

// The journal's VFS holds a transaction's WAL frames back until flush: these
// tests look at the files as a SIGKILL would leave them (copies taken while
// the database is open) to show what is on disk before and after.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <string>

#include "journal.hpp"
#include "journal_vfs.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using mmgen::broker::testing::TempDir;
namespace vfs = mmgen::broker::journal_vfs;

namespace {

void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << msg;
}

// Copies the database and its WAL as they are on disk, opens the copy with
// the default VFS (which runs WAL recovery) and counts the rows of `t`.
int rows_after_crash(const fs::path& dir, const fs::path& scratch) {
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  for (const char* name : {"j.db", "j.db-wal"}) {
    if (fs::exists(dir / name)) fs::copy_file(dir / name, scratch / name);
  }
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open((scratch / "j.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  int n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    n = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

class JournalVfs : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(sqlite3_open_v2((dir_.path() / "j.db").c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                              vfs::name()),
              SQLITE_OK);
    exec(db_, "PRAGMA locking_mode=EXCLUSIVE");
    exec(db_, "PRAGMA journal_mode=WAL");
    exec(db_, "PRAGMA synchronous=NORMAL");
    exec(db_, "CREATE TABLE t (x BLOB)");
    ASSERT_EQ(vfs::flush(db_), SQLITE_OK);
  }
  void TearDown() override { sqlite3_close(db_); }

  TempDir dir_, scratch_;
  sqlite3* db_ = nullptr;
};

TEST_F(JournalVfs, ACommitReachesTheWalFileOnlyAtFlush) {
  const auto wal = dir_.path() / "j.db-wal";
  const auto size_before = fs::file_size(wal);
  ASSERT_EQ(rows_after_crash(dir_.path(), scratch_.path() / "a"), 0);

  exec(db_, "BEGIN; INSERT INTO t VALUES (randomblob(300)); INSERT INTO t VALUES (randomblob(300)); COMMIT");
  const long long held = vfs::held_bytes(db_);
  EXPECT_GT(held, 2 * 300) << "the frames of the commit are held back";
  EXPECT_EQ(fs::file_size(wal), size_before) << "nothing of the commit is in the file yet";
  EXPECT_EQ(rows_after_crash(dir_.path(), scratch_.path() / "b"), 0) << "a crash now loses the commit";

  ASSERT_EQ(vfs::flush(db_), SQLITE_OK);
  EXPECT_EQ(vfs::held_bytes(db_), 0);
  EXPECT_EQ(fs::file_size(wal), size_before + std::uintmax_t(held)) << "one write of everything held";
  EXPECT_EQ(rows_after_crash(dir_.path(), scratch_.path() / "c"), 2) << "after flush a crash keeps it";
}

TEST_F(JournalVfs, ReadsAndCheckpointsSeeHeldFrames) {
  exec(db_, "PRAGMA cache_size=1");  // force page reads back from the WAL
  exec(db_, "BEGIN");
  for (int i = 0; i < 200; ++i) exec(db_, "INSERT INTO t VALUES (randomblob(500))");
  exec(db_, "COMMIT");
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db_, "SELECT count(*), sum(length(x)) FROM t", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 200);
  EXPECT_EQ(sqlite3_column_int(s, 1), 200 * 500);
  sqlite3_finalize(s);
  exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)");
  EXPECT_EQ(vfs::held_bytes(db_), 0);
  EXPECT_EQ(rows_after_crash(dir_.path(), scratch_.path() / "a"), 200);
  // The next commit restarts the WAL: a new header at offset 0, then frames.
  exec(db_, "INSERT INTO t VALUES (randomblob(10))");
  ASSERT_EQ(vfs::flush(db_), SQLITE_OK);
  EXPECT_EQ(rows_after_crash(dir_.path(), scratch_.path() / "b"), 201);
}

TEST_F(JournalVfs, ABigTransactionGoesOutInPieces) {
  // ~3 MB in one transaction: far more than one write may carry.
  exec(db_, "BEGIN");
  for (int i = 0; i < 6; ++i) exec(db_, "INSERT INTO t VALUES (randomblob(500000))");
  exec(db_, "COMMIT");
  EXPECT_LE(vfs::held_bytes(db_), 64 << 10);
  ASSERT_EQ(vfs::flush(db_), SQLITE_OK);
  EXPECT_EQ(rows_after_crash(dir_.path(), scratch_.path() / "a"), 6);
}

TEST(BrokerJournalCrash, ACommittedJobIsOnDiskWhenCommitReturns) {
  TempDir dir, copy;
  mmgen::broker::Journal j(dir.path());
  auto spec = std::make_shared<mmgen::broker::JobSpec>();
  spec->id = "j_1";
  spec->service = "echo";
  spec->created_s = 1700000000.0;
  mmgen::broker::JobStatus st;
  st.state = mmgen::proto::JobState::queued;
  j.insert(*spec, st);
  j.commit();
  // The broker is "killed" here: take its files as the kernel has them.
  for (const auto& e : fs::directory_iterator(dir.path())) fs::copy_file(e.path(), copy.path() / e.path().filename());
  mmgen::broker::Journal restored(copy.path());
  auto rec = restored.find("j_1");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->status.state, mmgen::proto::JobState::queued);
}

}  // namespace

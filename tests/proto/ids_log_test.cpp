// Job ids ("j_" + 12 hex digits of unix ms + 12 random hex digits) and the
// one-line key=value log format on stderr (captured through a pipe).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include "mmgen/ids.hpp"
#include "mmgen/log.hpp"

namespace proto_test {
namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST(JobIds, ShapeAndTimestamp) {
  const std::int64_t before = unix_ms();
  const std::string id = mmgen::new_job_id();
  const std::int64_t after = unix_ms();
  ASSERT_EQ(id.size(), 26u);
  EXPECT_EQ(id.substr(0, 2), "j_");
  EXPECT_TRUE(mmgen::is_job_id(id)) << id;
  const std::int64_t stamped = std::stoll(id.substr(2, 12), nullptr, 16);
  EXPECT_GE(stamped, before);
  EXPECT_LE(stamped, after);
}

TEST(JobIds, UniqueAndOrderedByCreationMillisecond) {
  std::set<std::string> seen;
  std::string last_stamp;
  for (int i = 0; i < 20000; ++i) {
    const std::string id = mmgen::new_job_id();
    EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
    const std::string stamp = id.substr(2, 12);
    EXPECT_GE(stamp, last_stamp);  // hex of equal width sorts like the number
    last_stamp = stamp;
  }
}

TEST(JobIds, IsJobIdRejectsLookalikes) {
  const std::string good = "j_0123456789abcdef01234567";
  EXPECT_TRUE(mmgen::is_job_id(good));
  EXPECT_FALSE(mmgen::is_job_id(""));
  EXPECT_FALSE(mmgen::is_job_id("j_"));
  EXPECT_FALSE(mmgen::is_job_id(good.substr(0, 25)));
  EXPECT_FALSE(mmgen::is_job_id(good + "0"));
  EXPECT_FALSE(mmgen::is_job_id("k_0123456789abcdef01234567"));
  EXPECT_FALSE(mmgen::is_job_id("j-0123456789abcdef01234567"));
  EXPECT_FALSE(mmgen::is_job_id("j_0123456789ABCDEF01234567"));  // lower-case hex only
  EXPECT_FALSE(mmgen::is_job_id("j_0123456789abcdeg01234567"));
  EXPECT_FALSE(mmgen::is_job_id(std::string("j_0123456789abcdef0123456\0", 26)));
}

TEST(RandomHex, LengthAndAlphabet) {
  EXPECT_EQ(mmgen::random_hex(0), "");
  const std::string h = mmgen::random_hex(16);
  EXPECT_EQ(h.size(), 32u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos) << h;
  EXPECT_NE(mmgen::random_hex(16), h);
}

// ---- logs ---------------------------------------------------------------------------------

// Redirects fd 2 into a pipe while alive; text() returns what was written.
class StderrCapture {
 public:
  StderrCapture() {
    EXPECT_EQ(pipe(fds_), 0);
    saved_ = dup(2);
    dup2(fds_[1], 2);
    // A reader drains the pipe meanwhile, so writers never block on a full pipe.
    reader_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        const ssize_t n = read(fds_[0], buf, sizeof buf);
        if (n > 0)
          text_.append(buf, static_cast<std::size_t>(n));
        else if (n == 0 || errno != EINTR)
          return;  // EOF: every write end is closed
      }
    });
  }
  // Restores stderr and returns everything written meanwhile.
  std::string finish() {
    dup2(saved_, 2);
    close(saved_);
    close(fds_[1]);  // the reader sees EOF once the pipe is drained
    reader_.join();
    close(fds_[0]);
    return text_;
  }

 private:
  int fds_[2] = {-1, -1};
  int saved_ = -1;
  std::thread reader_;
  std::string text_;
};

class Log : public ::testing::Test {
 protected:
  void TearDown() override {
    mmgen::log::set_level(mmgen::log::Level::info);
    mmgen::log::set_component("");
  }
};

TEST_F(Log, OneLineOfKeyValuePairs) {
  mmgen::log::set_component("proto-test");
  StderrCapture cap;
  mmgen::log::info("job_started", {{"job", "j_1"}, {"n", 42}, {"ratio", 0.5}, {"worker", std::string("w3")}});
  const std::string out = cap.finish();
  const std::regex line(
      R"(ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info comp=proto-test msg=job_started job=j_1 n=42 ratio=0\.5\d* worker=w3\n)");
  EXPECT_TRUE(std::regex_match(out, line)) << out;
}

TEST_F(Log, ValuesThatNeedItAreQuotedAndEscaped) {
  StderrCapture cap;
  mmgen::log::warn("two words", {{"empty", ""},
                                 {"space", "a b"},
                                 {"quote", "say \"hi\""},
                                 {"eq", "k=v"},
                                 {"nl", "line1\nline2"},
                                 {"tab", "a\tb"},
                                 {"slash", "back\\slash"}});
  const std::string out = cap.finish();
  const std::string tail = out.substr(out.find(" level="));
  EXPECT_EQ(tail,
            " level=warn msg=\"two words\" empty=\"\" space=\"a b\" quote=\"say \\\"hi\\\"\" "
            "eq=\"k=v\" nl=\"line1\\nline2\" tab=\"a b\" slash=back\\slash\n");
  EXPECT_EQ(out.find("comp="), std::string::npos);  // no component set: no comp field
}

TEST_F(Log, LevelFilters) {
  StderrCapture cap;
  mmgen::log::set_level(mmgen::log::Level::warn);
  mmgen::log::debug("hidden_debug");
  mmgen::log::info("hidden_info");
  mmgen::log::warn("shown_warn");
  mmgen::log::error("shown_error");
  mmgen::log::set_level(mmgen::log::Level::debug);
  mmgen::log::debug("shown_debug");
  const std::string out = cap.finish();
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
  EXPECT_NE(out.find("level=warn msg=shown_warn\n"), std::string::npos) << out;
  EXPECT_NE(out.find("level=error msg=shown_error\n"), std::string::npos) << out;
  EXPECT_NE(out.find("level=debug msg=shown_debug\n"), std::string::npos) << out;
}

TEST_F(Log, LinesFromManyThreadsNeverInterleave) {
  StderrCapture cap;
  constexpr int kThreads = 4, kLines = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i)
        mmgen::log::info("tick", {{"thread", t}, {"i", i}, {"pad", std::string(200, 'p')}});
    });
  for (auto& th : threads) th.join();
  const std::string out = cap.finish();
  const std::regex line(R"(ts=\S+ level=info msg=tick thread=\d i=\d+ pad=p{200})");
  int lines = 0;
  std::size_t start = 0;
  for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1, ++lines)
    ASSERT_TRUE(std::regex_match(out.substr(start, nl - start), line)) << out.substr(start, nl - start);
  EXPECT_EQ(lines, kThreads * kLines);
  EXPECT_EQ(start, out.size());
}

}  // namespace
}  // namespace proto_test

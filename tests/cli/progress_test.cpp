// Progress rendering from given numbers (no clock, no terminal).
#include <gtest/gtest.h>

#include "cli/progress.hpp"

namespace mmgen::cli {
namespace {

proto::Progress prog(std::uint32_t step, std::uint32_t total, double eta = -1, std::string msg = "") {
  proto::Progress p;
  p.job = "j";
  p.step = step;
  p.total = total;
  p.eta_s = eta;
  p.message = std::move(msg);
  return p;
}

TEST(Progress, RateFromObservedSteps) {
  RateMeter m;
  EXPECT_FALSE(m.rate());
  m.observe(2, 1000);
  EXPECT_FALSE(m.rate());
  m.observe(6, 3000);  // 4 steps in 2 s
  ASSERT_TRUE(m.rate());
  EXPECT_DOUBLE_EQ(*m.rate(), 2.0);
  m.observe(1, 4000);  // a retried attempt starts over
  EXPECT_FALSE(m.rate());
}

TEST(Progress, EtaPrefersTheJobsOwn) {
  EXPECT_DOUBLE_EQ(*eta_seconds(prog(5, 10, 12.0), 100.0), 12.0);
  EXPECT_DOUBLE_EQ(*eta_seconds(prog(5, 10), 2.5), 2.0);
  EXPECT_FALSE(eta_seconds(prog(5, 10), std::nullopt));
  EXPECT_FALSE(eta_seconds(prog(5, 0), 2.0));
}

TEST(Progress, Durations) {
  EXPECT_EQ(format_duration(7), "0:07");
  EXPECT_EQ(format_duration(125), "2:05");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(Progress, Bar) {
  const std::string bar = progress_bar(prog(6, 24, 9, "denoising"), 2.0, 200);
  EXPECT_EQ(bar, "[######------------------] 6/24  25%  2.00 it/s  ETA 0:09  denoising");
  EXPECT_EQ(progress_bar(prog(24, 24), std::nullopt, 200), "[########################] 24/24 100%");
  EXPECT_EQ(progress_bar(prog(6, 24, 9, "denoising"), 2.0, 20).size(), 20u);
}

TEST(Progress, PlainLine) {
  EXPECT_EQ(progress_line(prog(8, 20, 5), 2.5), "progress 8/20 (40%) eta 0:05 rate 2.50/s");
  EXPECT_EQ(progress_line(prog(3, 0, -1, "loading"), std::nullopt), "progress 3 loading");
}

}  // namespace
}  // namespace mmgen::cli

// Frame quantisation equals the references' float32 arithmetic and uint8
// truncation: fixed cases here, and numpy's astype(uint8) on a million values
// (plus every bucket edge and its float neighbours) when the venv is there.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "media_test_util.hpp"
#include "mmgen/media/quantize.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

TEST(MediaQuantize, FixedCases) {
  EXPECT_EQ(quantize_signed(-1.f), 0);
  EXPECT_EQ(quantize_signed(1.f), 255);
  EXPECT_EQ(quantize_signed(-7.f), 0);
  EXPECT_EQ(quantize_signed(7.f), 255);
  EXPECT_EQ(quantize_signed(0.f), 127);  // 127.5 truncates
  EXPECT_EQ(quantize_signed(std::numeric_limits<float>::infinity()), 255);
  EXPECT_EQ(quantize_signed(std::nanf("")), 0);
  EXPECT_EQ(quantize_signed(0.99f), 253);  // 253.72 truncates
  // 1 - 2^-24 plus 1 rounds to 2 in float32, so it is 255 as in numpy.
  EXPECT_EQ(quantize_signed(std::nextafter(1.f, 0.f)), 255);
  EXPECT_EQ(quantize_unit(0.5f), 127);
  EXPECT_EQ(quantize_unit(1.f), 255);
  EXPECT_EQ(quantize_unit(-0.1f), 0);
}

TEST(MediaQuantize, SpansAndPlanarFrames) {
  const std::vector<float> r = {-1, 0, 1}, g = {1, 1, 1}, b = {-1, -1, 0.5f};
  std::vector<std::uint8_t> rgb(9);
  planar_signed_to_rgb(r.data(), g.data(), b.data(), 3, rgb.data());
  EXPECT_EQ(rgb, (std::vector<std::uint8_t>{0, 255, 0, 127, 255, 0, 255, 255, 191}));
  std::vector<std::uint8_t> out(3);
  quantize_signed(r, out);
  EXPECT_EQ(out, (std::vector<std::uint8_t>{0, 127, 255}));
  std::vector<std::uint8_t> short_out(2);
  EXPECT_THROW(quantize_signed(r, short_out), proto::ProtocolError);
}

TEST(MediaQuantize, MatchesNumpyAstypeUint8) {
  const auto py = testing::reference_python();
  if (!py) GTEST_SKIP() << "no python with numpy (set MMGEN_PYTHON)";
  testing::TempDir dir;
  ASSERT_EQ(0, testing::run_python(*py, "np_quantize_ref.py", {dir.path().string()}));
  const auto raw = testing::read_bytes(dir.path() / "x.f32");
  std::vector<float> x(raw.size() / 4);
  std::memcpy(x.data(), raw.data(), x.size() * 4);
  ASSERT_GT(x.size(), 1000000u);
  const auto want_signed = testing::read_bytes(dir.path() / "signed.u8");
  const auto want_unit = testing::read_bytes(dir.path() / "unit.u8");
  ASSERT_EQ(want_signed.size(), x.size());
  std::vector<std::uint8_t> got(x.size());
  quantize_signed(x, got);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (got[i] != want_signed[i] && bad++ < 5)
      ADD_FAILURE() << "x=" << x[i] << " ours " << int(got[i]) << " numpy " << int(want_signed[i]);
  EXPECT_EQ(bad, 0u) << "signed mismatches";
  quantize_unit(x, got);
  bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (got[i] != want_unit[i] && bad++ < 5)
      ADD_FAILURE() << "x=" << x[i] << " ours " << int(got[i]) << " numpy " << int(want_unit[i]);
  EXPECT_EQ(bad, 0u) << "unit mismatches";
}

}  // namespace
}  // namespace mmgen::media

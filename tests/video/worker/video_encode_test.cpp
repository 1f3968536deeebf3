// mmgen-video's encoding (unit): float [F, H, W, 3] frames in [0, 1] -> MP4
// bytes -> decoded back with the media VideoReader: frame count, size, fps,
// PSNR >= 40 dB against the 8-bit source at the default CRF 18; PNG frames
// equal to the quantised source; errors leave no scratch file behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "mmgen/media/image.hpp"
#include "mmgen/media/quantize.hpp"
#include "mmgen/media/video.hpp"
#include "mmgen/protocol.hpp"
#include "video_encode.hpp"

using namespace mmgen;
using namespace mmgen::video;
namespace fs = std::filesystem;

namespace {

// Smooth moving colour fields inside [0, 1], as decoded video frames look.
std::vector<float> smooth_frames(std::int64_t n, int h, int w) {
  std::vector<float> v(std::size_t(n) * h * w * 3);
  for (std::int64_t t = 0; t < n; ++t)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        float* p = &v[((std::size_t(t) * h + y) * w + x) * 3];
        const double u = x - 1.5 * double(t), q = y + 0.5 * double(t);
        p[0] = float(0.5 + 0.35 * std::sin(u / 11.0));
        p[1] = float(0.5 + 0.35 * std::cos(q / 9.0));
        p[2] = float(0.5 + 0.25 * std::sin((u + q) / 17.0));
      }
  return v;
}

double psnr(const std::vector<std::uint8_t>& a, const std::vector<std::uint8_t>& b) {
  double se = 0;
  for (std::size_t i = 0; i < a.size(); ++i) se += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  const double mse = se / double(a.size());
  return mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
}

std::vector<std::uint8_t> quantised(const std::vector<float>& v, std::int64_t t, int h, int w) {
  const std::size_t n = std::size_t(h) * w * 3;
  std::vector<std::uint8_t> out(n);
  media::quantize_unit(std::span<const float>(v.data() + std::size_t(t) * n, n), out);
  return out;
}

// A private TMPDIR for one test, so "nothing left behind" can be checked.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "mmgen-video-enc-test-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    if (const char* old = std::getenv("TMPDIR")) old_ = old;
    ::setenv("TMPDIR", dir_.c_str(), 1);
  }
  ~ScratchDir() {
    if (old_.empty()) ::unsetenv("TMPDIR"); else ::setenv("TMPDIR", old_.c_str(), 1);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::size_t entries() const { return std::size_t(std::distance(fs::directory_iterator(dir_), fs::directory_iterator())); }

 private:
  fs::path dir_;
  std::string old_;
};

template <class F>
void expect_error(F&& f, proto::ErrorCode code, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with '" << part << "'";
  } catch (const proto::ProtocolError& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(VideoEncode, Mp4DecodesBackWithCountSizeFpsAndPsnr) {
  ScratchDir scratch;
  struct Case {
    std::int64_t frames;
    int h, w;
    media::Rational fps;
  };
  for (const Case c : {Case{17, 96, 160, {16, 1}}, Case{9, 128, 128, {24, 1}}, Case{5, 80, 128, {24000, 1001}}}) {
    const std::vector<float> src = smooth_frames(c.frames, c.h, c.w);
    media::VideoEncodeOptions o;  // crf 18, preset medium: the worker's defaults
    o.fps = c.fps;
    const EncodedVideo v = encode_video(src, c.frames, c.h, c.w, o, /*png_frames=*/false);
    EXPECT_TRUE(v.frames.empty());
    ASSERT_GT(v.mp4.size(), 100u);
    const auto moov = v.mp4.find("moov"), mdat = v.mp4.find("mdat");
    ASSERT_NE(moov, std::string::npos);
    EXPECT_LT(moov, mdat) << "+faststart";

    media::VideoReader reader("result", std::vector<std::uint8_t>(v.mp4.begin(), v.mp4.end()));
    EXPECT_EQ(reader.info().width, c.w);
    EXPECT_EQ(reader.info().height, c.h);
    EXPECT_EQ(reader.info().fps, c.fps);
    EXPECT_EQ(reader.info().codec, "h264");
    EXPECT_EQ(reader.info().pix_fmt, "yuv420p");
    std::vector<std::uint8_t> rgb;
    std::int64_t n = 0;
    double worst = 99;
    while (reader.next_rgb(rgb)) {
      ASSERT_LT(n, c.frames) << "more frames than encoded";
      worst = std::min(worst, psnr(quantised(src, n, c.h, c.w), rgb));
      ++n;
    }
    EXPECT_EQ(n, c.frames);
    std::printf("[ info ] %lld frames %dx%d @ %d/%d: worst frame PSNR %.2f dB\n", static_cast<long long>(c.frames),
                c.w, c.h, c.fps.num, c.fps.den, worst);
    EXPECT_GE(worst, 40.0);
  }
  EXPECT_EQ(scratch.entries(), 0u) << "scratch files left behind";
}

TEST(VideoEncode, PngFramesAreTheQuantisedSource) {
  ScratchDir scratch;
  const std::int64_t F = 5;
  const int H = 16, W = 24;
  std::vector<float> src = smooth_frames(F, H, W);
  src[0] = -0.25f;                            // clamped to 0
  src[1] = 1.75f;                             // clamped to 1 -> 255
  src[2] = std::nanf("");                     // NaN -> 0, as media::quantize_unit
  src[3] = 0.999f;                            // truncated: 254
  media::VideoEncodeOptions o;
  o.preset = "ultrafast";
  const EncodedVideo v = encode_video(src, F, H, W, o, /*png_frames=*/true);
  ASSERT_EQ(v.frames.size(), std::size_t(F));
  for (std::int64_t t = 0; t < F; ++t) {
    const auto& png = v.frames[std::size_t(t)];
    const media::Image img = media::decode_image(
        "frame", std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(png.data()), png.size()));
    ASSERT_EQ(img.width, W);
    ASSERT_EQ(img.height, H);
    EXPECT_EQ(img.pixels, quantised(src, t, H, W)) << "frame " << t;
  }
  const auto first = quantised(src, 0, H, W);
  EXPECT_EQ(first[0], 0);
  EXPECT_EQ(first[1], 255);
  EXPECT_EQ(first[2], 0);
  EXPECT_EQ(first[3], 254);
  EXPECT_EQ(scratch.entries(), 0u);
}

TEST(VideoEncode, ErrorsAreTypedAndLeaveNothingBehind) {
  ScratchDir scratch;
  const std::vector<float> src = smooth_frames(3, 16, 16);
  media::VideoEncodeOptions o;
  o.preset = "ultrafast";
  // yuv420p cannot hold an odd size: refused, not padded.
  const std::vector<float> odd = smooth_frames(1, 15, 16);
  expect_error([&] { encode_video(odd, 1, 15, 16, o, false); }, proto::ErrorCode::invalid_request, "16x15");
  expect_error([&] { encode_video(src, 4, 16, 16, o, false); }, proto::ErrorCode::invalid_request, "expected 4 x 768");
  expect_error([&] { encode_video({}, 0, 16, 16, o, false); }, proto::ErrorCode::invalid_request, "empty video");
  media::VideoEncodeOptions bad = o;
  bad.preset = "turbo";  // x264 refuses it when the encoder opens
  expect_error([&] { encode_video(src, 3, 16, 16, bad, false); }, proto::ErrorCode::invalid_request, "'turbo'");
  bad = o;
  bad.crf = 60;
  expect_error([&] { encode_video(src, 3, 16, 16, bad, false); }, proto::ErrorCode::invalid_request, "crf 60");
  EXPECT_EQ(scratch.entries(), 0u) << "a failed encode left scratch files";
}

// H.264/MP4 writing and reading through FFmpeg: round trips at 16 and 24 fps
// (frame count, size, fps, PSNR >= 40 dB at the default CRF 18), rational
// fps, blobs with the index in front (+faststart), PNG sequences, typed
// errors with nothing left behind, and memory that does not grow with the
// number of frames.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>

#include "media_test_util.hpp"
#include "mmgen/media/video.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;
using testing::TempDir;

// Frame t of a smooth pattern drifting right and down (motion for the encoder).
void moving_frame(int w, int h, int t, std::vector<std::uint8_t>& rgb) {
  rgb.resize(std::size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = &rgb[(std::size_t(y) * w + x) * 3];
      const double u = x - 2.0 * t, v = y - 1.0 * t;
      p[0] = std::uint8_t(128 + 90 * std::sin(u / 11.0));
      p[1] = std::uint8_t(128 + 90 * std::cos(v / 9.0));
      p[2] = std::uint8_t(128 + 60 * std::sin((u + v) / 17.0));
    }
}

template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected " << proto::to_string(code) << " with '" << part << "'";
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

void encode_moving(const std::filesystem::path& p, int w, int h, int n, const VideoEncodeOptions& o) {
  Mp4Writer writer(p, w, h, o);
  std::vector<std::uint8_t> rgb;
  for (int t = 0; t < n; ++t) {
    moving_frame(w, h, t, rgb);
    writer.write_rgb(rgb);
  }
  EXPECT_EQ(writer.frames_written(), n);
  writer.finish();
}

TEST(MediaVideo, RoundTripAt16And24Fps) {
  for (const int fps : {16, 24}) {
    TempDir dir;
    const auto path = dir.path() / "out.mp4";
    const int w = 160, h = 96, n = 33;
    VideoEncodeOptions o;
    o.fps = {fps, 1};
    encode_moving(path, w, h, n, o);
    EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.mp4"}) << "temp file left behind";
    // Created like any file (0666 less the umask), not with a temp file's 0600.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    EXPECT_EQ(unsigned(std::filesystem::status(path).permissions()) & 0777u, 0666u & ~unsigned(mask));

    const DecodedVideo v = read_video(path);
    EXPECT_EQ(v.info.width, w);
    EXPECT_EQ(v.info.height, h);
    EXPECT_EQ(v.info.fps, (Rational{fps, 1}));
    EXPECT_EQ(v.info.codec, "h264");
    EXPECT_EQ(v.info.pix_fmt, "yuv420p");
    EXPECT_EQ(v.info.frame_count, n);
    EXPECT_NEAR(v.info.duration_s, double(n) / fps, 1e-6);
    ASSERT_EQ(int(v.frames.size()), n);
    double se_total = 0, worst = 99;
    std::vector<std::uint8_t> src;
    for (int t = 0; t < n; ++t) {
      moving_frame(w, h, t, src);
      const double p = testing::psnr(src.data(), v.frames[t].data(), src.size());
      worst = std::min(worst, p);
      se_total += std::pow(10.0, -p / 10.0);
    }
    const double mean_psnr = -10 * std::log10(se_total / n);
    std::printf("[ info ] %d fps: PSNR %.2f dB overall, worst frame %.2f dB\n", fps, mean_psnr, worst);
    EXPECT_GE(mean_psnr, 40.0);
    EXPECT_GE(worst, 40.0);
  }
}

TEST(MediaVideo, RationalFrameRate) {
  TempDir dir;
  VideoEncodeOptions o;
  o.fps = parse_fps("24000/1001");
  o.preset = "ultrafast";
  encode_moving(dir.path() / "ntsc.mp4", 64, 64, 10, o);
  const DecodedVideo v = read_video(dir.path() / "ntsc.mp4");
  EXPECT_EQ(v.info.fps, (Rational{24000, 1001}));
  EXPECT_EQ(v.frames.size(), 10u);
}

TEST(MediaVideo, ParseFps) {
  EXPECT_EQ(parse_fps("16"), (Rational{16, 1}));
  EXPECT_EQ(parse_fps("30000/1001"), (Rational{30000, 1001}));
  EXPECT_EQ(parse_fps("23.976"), (Rational{2997, 125}));
  EXPECT_EQ(parse_fps("12.5"), (Rational{25, 2}));
  EXPECT_EQ(parse_fps("48/2"), (Rational{24, 1}));
  for (const char* bad : {"", "0", "-5", "abc", "24/0", "1000", "16fps", "1.2.3", "/4"})
    expect_error([&] { parse_fps(bad); }, ErrorCode::invalid_request, "fps");
}

TEST(MediaVideo, BlobHasIndexFirstAndDecodesFromMemory) {
  VideoEncodeOptions o;
  o.preset = "veryfast";
  Mp4BlobWriter writer(64, 48, o);
  std::vector<std::uint8_t> rgb;
  for (int t = 0; t < 9; ++t) {
    moving_frame(64, 48, t, rgb);
    writer.write_rgb(rgb);
  }
  const std::vector<std::uint8_t> mp4 = writer.finish();
  ASSERT_GT(mp4.size(), 100u);
  const std::string s(mp4.begin(), mp4.end());
  EXPECT_EQ(s.substr(4, 4), "ftyp");
  const auto moov = s.find("moov"), mdat = s.find("mdat");
  ASSERT_NE(moov, std::string::npos);
  ASSERT_NE(mdat, std::string::npos);
  EXPECT_LT(moov, mdat) << "+faststart puts the index before the media data";

  VideoReader reader("result", mp4);
  EXPECT_EQ(reader.info().width, 64);
  EXPECT_EQ(reader.info().fps, (Rational{16, 1}));
  int n = 0;
  while (reader.next_rgb(rgb)) {
    ASSERT_EQ(rgb.size(), 64u * 48 * 3);
    ++n;
  }
  EXPECT_EQ(n, 9);
}

TEST(MediaVideo, PngSequence) {
  TempDir dir;
  VideoEncodeOptions o;
  o.preset = "ultrafast";
  o.frames_dir = dir.path() / "frames";  // created by the writer
  encode_moving(dir.path() / "v.mp4", 32, 16, 3, o);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(o.frames_dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"frame_00000.png", "frame_00001.png", "frame_00002.png"}));
  std::vector<std::uint8_t> src;
  moving_frame(32, 16, 2, src);
  const Image png = decode_image("frame", testing::read_bytes(o.frames_dir / "frame_00002.png"));
  EXPECT_EQ(png.pixels, src) << "PNG frames are the exact RGB input";
}

TEST(MediaVideoErrors, OddSizeNamesTheSize) {
  TempDir dir;
  expect_error([&] { Mp4Writer(dir.path() / "o.mp4", 255, 256); }, ErrorCode::invalid_request,
               "video size 255x256: yuv420p needs even width and height");
  expect_error([&] { Mp4Writer(dir.path() / "o.mp4", 256, 99); }, ErrorCode::invalid_request, "256x99");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(MediaVideoErrors, BadParameters) {
  TempDir dir;
  VideoEncodeOptions o;
  o.crf = 52;
  expect_error([&] { Mp4Writer(dir.path() / "o.mp4", 64, 64, o); }, ErrorCode::invalid_request, "crf 52");
  o = {};
  o.preset = "turbo";
  expect_error([&] { Mp4Writer(dir.path() / "o.mp4", 64, 64, o); }, ErrorCode::invalid_request, "'turbo'");
  o = {};
  o.fps = {0, 1};
  expect_error([&] { Mp4Writer(dir.path() / "o.mp4", 64, 64, o); }, ErrorCode::invalid_request, "fps");
  Mp4Writer w(dir.path() / "o.mp4", 64, 64);
  std::vector<std::uint8_t> wrong(64 * 64 * 3 - 1);
  expect_error([&] { w.write_rgb(wrong); }, ErrorCode::invalid_request, "expected 12288");
  expect_error([&] { w.finish(); }, ErrorCode::invalid_request, "no frames");
}

TEST(MediaVideoErrors, BrokenOutputPathLeavesNothing) {
  TempDir dir;
  expect_error([&] { Mp4Writer(dir.path() / "missing" / "out.mp4", 64, 64); }, ErrorCode::internal,
               "does not exist");
  EXPECT_TRUE(dir.entries().empty());

  // The destination is an existing non-empty directory: everything encodes,
  // the final rename fails, and the temp file is removed.
  std::filesystem::create_directories(dir.path() / "taken" / "x");
  {
    VideoEncodeOptions o;
    o.preset = "ultrafast";
    Mp4Writer w(dir.path() / "taken", 64, 64, o);
    std::vector<std::uint8_t> rgb;
    moving_frame(64, 64, 0, rgb);
    w.write_rgb(rgb);
    expect_error([&] { w.finish(); }, ErrorCode::internal, "cannot move the finished video");
  }
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"taken"});
}

TEST(MediaVideoErrors, AbandonedWriterLeavesNoPartialFile) {
  TempDir dir;
  {
    VideoEncodeOptions o;
    o.preset = "ultrafast";
    Mp4Writer w(dir.path() / "out.mp4", 64, 64, o);
    std::vector<std::uint8_t> rgb;
    for (int t = 0; t < 5; ++t) {
      moving_frame(64, 64, t, rgb);
      w.write_rgb(rgb);
    }
    EXPECT_EQ(dir.entries().size(), 1u);  // the hidden temp file while encoding
    // The job fails here (say, cancelled): the writer is destroyed unfinished.
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(MediaVideoErrors, CorruptInputsAreTypedErrors) {
  expect_error([] { VideoReader("upload", std::vector<std::uint8_t>(1000, 0x42)); },
               ErrorCode::invalid_request, "video 'upload'");
  TempDir dir;
  expect_error([&] { VideoReader(dir.path() / "nope.mp4"); }, ErrorCode::invalid_request, "cannot open");
  // A truncated MP4 (index in front, media cut off) fails or yields fewer frames, never crashes.
  VideoEncodeOptions o;
  o.preset = "ultrafast";
  Mp4BlobWriter writer(64, 64, o);
  std::vector<std::uint8_t> rgb;
  for (int t = 0; t < 8; ++t) {
    moving_frame(64, 64, t, rgb);
    writer.write_rgb(rgb);
  }
  auto mp4 = writer.finish();
  mp4.resize(mp4.size() / 2);
  try {
    VideoReader r("half", mp4);
    int n = 0;
    while (r.next_rgb(rgb)) ++n;
    EXPECT_LT(n, 8);
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_request) << e.what();
  }
}

// VmRSS of this process in kB.
long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

TEST(MediaVideoStreaming, MemoryDoesNotGrowWithFrameCount) {
  TempDir dir;
  const int w = 256, h = 256, n = 200, warmup = 60;
  Mp4Writer writer(dir.path() / "long.mp4", w, h);
  std::vector<std::uint8_t> rgb;
  long base = 0, peak = 0;
  for (int t = 0; t < n; ++t) {
    moving_frame(w, h, t, rgb);
    writer.write_rgb(rgb);
    // After the encoder's lookahead and the muxer's buffers are full.
    if (t == warmup) base = rss_kb();
    if (t > warmup) peak = std::max(peak, rss_kb());
  }
  writer.finish();
  ASSERT_GT(base, 0);
  const long growth_kb = peak - base;
  const long per_frame_kb = long(w) * h * 3 / 1024;
  std::printf("[ info ] RSS after %d frames %ld kB, peak growth over the next %d frames %ld kB "
              "(keeping frames would add ~%ld kB)\n",
              warmup, base, n - warmup - 1, growth_kb, per_frame_kb * (n - warmup - 1));
  // Holding on to the RGB frames would grow by ~28 MB here.
  EXPECT_LT(growth_kb, 8 * 1024);
  EXPECT_EQ(read_video(dir.path() / "long.mp4").frames.size(), std::size_t(n));
}

}  // namespace
}  // namespace mmgen::media

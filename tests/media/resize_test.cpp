// PIL-equivalent resizing: properties that hold for any correct resampler,
// and (when the venv has Pillow) bit-exact agreement with Image.resize for
// every filter on noise, smooth, gray and RGBA images, down and up. Also
// prints how far OpenCV's nearest equivalents are from PIL (the figures
// quoted in resize.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "media_test_util.hpp"
#include "mmgen/media/resize.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

constexpr ResampleFilter kAll[] = {ResampleFilter::nearest, ResampleFilter::box,
                                   ResampleFilter::bilinear, ResampleFilter::hamming,
                                   ResampleFilter::bicubic, ResampleFilter::lanczos};

TEST(MediaResize, ConstantImagesStayConstant) {
  const Image flat(23, 17, 3, 77);
  for (auto f : kAll)
    for (auto [w, h] : {std::pair{5, 4}, {50, 40}, {23, 3}, {1, 1}}) {
      const Image r = resize(flat, w, h, f);
      ASSERT_EQ(r.width, w);
      ASSERT_EQ(r.height, h);
      for (auto v : r.pixels) ASSERT_EQ(v, 77) << int(f) << " " << w << "x" << h;
    }
}

TEST(MediaResize, BoxHalvingAveragesThroughAn8BitIntermediate) {
  Image src(4, 2, 1);
  src.pixels = {0, 1, 10, 20, 2, 3, 30, 41};
  const Image r = resize(src, 2, 1, ResampleFilter::box);
  // Rows first, each rounded half up to 8 bits as PIL stores them:
  // row 0: 0.5 -> 1, 15; row 1: 2.5 -> 3, 35.5 -> 36. Then columns:
  // (1+3)/2 = 2, (15+36)/2 = 25.5 -> 26 (a float average would give 25).
  EXPECT_EQ(r.pixels, (std::vector<std::uint8_t>{2, 26}));
}

TEST(MediaResize, NearestDoublingRepeatsPixels) {
  Image src(2, 1, 1);
  src.pixels = {5, 9};
  EXPECT_EQ(resize(src, 4, 2, ResampleFilter::nearest).pixels,
            (std::vector<std::uint8_t>{5, 5, 9, 9, 5, 5, 9, 9}));
}

TEST(MediaResize, SameSizeIsACopyAndBadSizesAreErrors) {
  const Image im = testing::noise(9, 7, 3, 3);
  EXPECT_EQ(resize(im, 9, 7, ResampleFilter::lanczos), im);
  EXPECT_THROW(resize(im, 0, 7, ResampleFilter::lanczos), proto::ProtocolError);
  EXPECT_THROW(resample_filter_from_name("cubic"), proto::ProtocolError);
  EXPECT_EQ(resample_filter_from_name("bicubic"), ResampleFilter::bicubic);
}

TEST(MediaResize, TransparentPixelsDoNotBleedColour) {
  // Left half opaque red, right half transparent green: resized premultiplied,
  // the edge stays red (only its alpha falls).
  Image im(8, 1, 4);
  for (int x = 0; x < 8; ++x) {
    std::uint8_t* p = im.row(0) + 4 * x;
    if (x < 4) { p[0] = 255; p[1] = 0; p[2] = 0; p[3] = 255; }
    else       { p[0] = 0; p[1] = 255; p[2] = 0; p[3] = 0; }
  }
  const Image r = resize(im, 3, 1, ResampleFilter::lanczos);
  const std::uint8_t* mid = r.row(0) + 4;
  EXPECT_GT(mid[3], 0);
  EXPECT_LT(mid[3], 255);
  EXPECT_GE(mid[0], 250);
  EXPECT_LE(mid[1], 5);
}

Image load(const std::filesystem::path& p, const std::string& name) {
  const auto bytes = testing::read_bytes(p);
  if (name.ends_with("_l")) return decode_mask(name, bytes);
  DecodeOptions o;
  if (name.ends_with("_rgba")) o.alpha = AlphaMode::keep;
  return decode_image(name, bytes, o);
}

// Mean and max |a - b|.
std::pair<double, int> diff_stats(const Image& a, const Image& b) {
  double sum = 0;
  for (std::size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return {sum / double(a.pixels.size()), testing::max_abs_diff(a, b)};
}

Image cv_resize(const Image& src, int w, int h, int interp) {
  cv::Mat in(src.height, src.width, CV_8UC(src.channels), const_cast<std::uint8_t*>(src.pixels.data()));
  cv::Mat out;
  cv::resize(in, out, cv::Size(w, h), 0, 0, interp);
  Image r(w, h, src.channels);
  std::memcpy(r.pixels.data(), out.data, r.pixels.size());
  return r;
}

TEST(MediaResize, MatchesPillowBitForBit) {
  const auto py = testing::reference_python();
  if (!py) GTEST_SKIP() << "no python with numpy and Pillow (set MMGEN_PYTHON)";
  testing::TempDir dir;
  ASSERT_EQ(0, testing::run_python(*py, "pil_resize_ref.py", {dir.path().string()}));
  std::ifstream manifest(dir.path() / "manifest.txt");
  std::string line;
  int checked = 0;
  while (std::getline(manifest, line)) {
    std::istringstream in(line);
    std::string name, filter;
    int w = 0, h = 0;
    in >> name >> filter >> w >> h;
    const Image src = load(dir.path() / ("in_" + name + ".png"), name);
    const std::string out = "out_" + name + "_" + filter + "_" + std::to_string(w) + "x" + std::to_string(h);
    const Image pil = load(dir.path() / (out + ".png"), name);
    const Image mine = resize(src, w, h, resample_filter_from_name(filter));
    ASSERT_EQ(mine.width, pil.width) << out;
    ASSERT_EQ(mine.height, pil.height) << out;
    ASSERT_EQ(mine.channels, pil.channels) << out;
    EXPECT_EQ(testing::max_abs_diff(mine, pil), 0) << out;
    ++checked;
  }
  EXPECT_EQ(checked, 4 * 6 * 5);

  // How far OpenCV's filters are from PIL's (informational; ours is 0 above).
  const Image src = load(dir.path() / "in_noise_rgb.png", "noise_rgb");
  struct Cmp { const char* what; int w, h, interp; const char* pil_file; };
  const Cmp cmps[] = {
      {"INTER_LANCZOS4 vs LANCZOS, down", 102, 76, cv::INTER_LANCZOS4, "out_noise_rgb_lanczos_102x76"},
      {"INTER_AREA vs LANCZOS, down", 102, 76, cv::INTER_AREA, "out_noise_rgb_lanczos_102x76"},
      {"INTER_LANCZOS4 vs LANCZOS, up", 385, 288, cv::INTER_LANCZOS4, "out_noise_rgb_lanczos_385x288"},
      {"INTER_CUBIC vs BICUBIC, up", 385, 288, cv::INTER_CUBIC, "out_noise_rgb_bicubic_385x288"},
  };
  for (const auto& c : cmps) {
    const Image pil = load(dir.path() / (std::string(c.pil_file) + ".png"), "noise_rgb");
    const auto [mean, mx] = diff_stats(cv_resize(src, c.w, c.h, c.interp), pil);
    std::printf("[ info ] OpenCV %s: max |diff| %d, mean %.1f\n", c.what, mx, mean);
    EXPECT_GT(mx, 0) << c.what;  // OpenCV is not a substitute, hence our resampler
  }
}

}  // namespace
}  // namespace mmgen::media

// EXIF orientation: JPEGs (and a PNG eXIf chunk) carrying each of the eight
// orientations, crafted here, decode upright: checked against transforms
// built from OpenCV's flip/rotate, against OpenCV's own IMREAD_COLOR (which
// applies the tag for JPEG), and, when the venv has Pillow, against PIL's
// ImageOps.exif_transpose.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "media_test_util.hpp"
#include "mmgen/media/image.hpp"

namespace mmgen::media {
namespace {

using Bytes = std::vector<std::uint8_t>;

// TIFF block "II*\0", IFD0 with one SHORT entry 0x0112 = orientation.
Bytes exif_tiff(int orientation, bool big_endian) {
  if (!big_endian)
    return {'I', 'I', 42, 0, 8, 0, 0, 0,  1, 0,  0x12, 0x01, 3, 0, 1, 0, 0, 0,
            std::uint8_t(orientation), 0, 0, 0,  0, 0, 0, 0};
  return {'M', 'M', 0, 42, 0, 0, 0, 8,  0, 1,  0x01, 0x12, 0, 3, 0, 0, 0, 1,
          0, std::uint8_t(orientation), 0, 0,  0, 0, 0, 0};
}

// Inserts an APP1 "Exif\0\0" segment right after SOI.
Bytes with_exif(const Bytes& jpeg, int orientation, bool big_endian = false) {
  Bytes payload = {'E', 'x', 'i', 'f', 0, 0};
  const Bytes tiff = exif_tiff(orientation, big_endian);
  payload.insert(payload.end(), tiff.begin(), tiff.end());
  const std::size_t len = payload.size() + 2;
  Bytes out;
  out.reserve(jpeg.size() + len + 2);
  for (std::uint8_t b : {jpeg[0], jpeg[1], std::uint8_t(0xFF), std::uint8_t(0xE1),
                         std::uint8_t(len >> 8), std::uint8_t(len & 0xFF)})
    out.push_back(b);
  out.insert(out.end(), payload.begin(), payload.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

std::uint32_t crc32(const std::uint8_t* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// Inserts an eXIf chunk after IHDR (8 + 25 bytes in).
Bytes png_with_exif(const Bytes& png, int orientation) {
  const Bytes tiff = exif_tiff(orientation, false);
  Bytes chunk = {0, 0, 0, std::uint8_t(tiff.size()), 'e', 'X', 'I', 'f'};
  chunk.insert(chunk.end(), tiff.begin(), tiff.end());
  const std::uint32_t crc = crc32(chunk.data() + 4, chunk.size() - 4);
  for (int s = 24; s >= 0; s -= 8) chunk.push_back(std::uint8_t(crc >> s));
  Bytes out(png.begin(), png.begin() + 33);
  out.insert(out.end(), chunk.begin(), chunk.end());
  out.insert(out.end(), png.begin() + 33, png.end());
  return out;
}

// The upright view of `im` for an orientation, built from OpenCV primitives.
Image upright(const Image& im, int orientation) {
  cv::Mat m(im.height, im.width, CV_8UC3, const_cast<std::uint8_t*>(im.pixels.data()));
  cv::Mat out;
  switch (orientation) {
    case 2: cv::flip(m, out, 1); break;
    case 3: cv::rotate(m, out, cv::ROTATE_180); break;
    case 4: cv::flip(m, out, 0); break;
    case 5: cv::transpose(m, out); break;
    case 6: cv::rotate(m, out, cv::ROTATE_90_CLOCKWISE); break;
    case 7: cv::rotate(m, out, cv::ROTATE_90_CLOCKWISE); cv::flip(out, out, 0); break;
    case 8: cv::rotate(m, out, cv::ROTATE_90_COUNTERCLOCKWISE); break;
    default: out = m.clone();
  }
  Image r(out.cols, out.rows, 3);
  for (int y = 0; y < out.rows; ++y) std::memcpy(r.row(y), out.ptr(y), r.row_bytes());
  return r;
}

Bytes base_jpeg() {
  // Asymmetric content (48 x 32, a bright top-left corner) so every orientation differs.
  Image im = testing::pattern(48, 32, 3);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 12; ++x) im.row(y)[3 * x] = 255;
  cv::Mat bgr(im.height, im.width, CV_8UC3, im.pixels.data());
  cv::cvtColor(bgr, bgr, cv::COLOR_RGB2BGR);
  Bytes out;
  cv::imencode(".jpg", bgr, out, {cv::IMWRITE_JPEG_QUALITY, 95});
  return out;
}

TEST(MediaExifOrientation, AllEightOrientationsDecodeUpright) {
  const Bytes plain = base_jpeg();
  const Image stored = decode_image("init", plain);
  for (int o = 1; o <= 8; ++o) {
    for (const bool be : {false, true}) {
      const Bytes tagged = with_exif(plain, o, be);
      const Image got = decode_image("init", tagged);
      EXPECT_EQ(got, upright(stored, o)) << "orientation " << o << (be ? " (MM)" : " (II)");
      // OpenCV's IMREAD_COLOR applies the tag itself: it must agree.
      cv::Mat cv_bgr = cv::imdecode(tagged, cv::IMREAD_COLOR);
      cv::Mat cv_rgb;
      cv::cvtColor(cv_bgr, cv_rgb, cv::COLOR_BGR2RGB);
      ASSERT_EQ(cv_rgb.cols, got.width) << o;
      ASSERT_EQ(cv_rgb.rows, got.height) << o;
      EXPECT_EQ(0, std::memcmp(cv_rgb.data, got.pixels.data(), got.pixels.size())) << o;
    }
    // Turned off on request: stored pixel order.
    DecodeOptions raw;
    raw.apply_exif_orientation = false;
    EXPECT_EQ(decode_image("init", with_exif(plain, o), raw), stored);
  }
}

TEST(MediaExifOrientation, MasksAreTurnedToo) {
  const Bytes tagged = with_exif(base_jpeg(), 6);
  const Image mask = decode_mask("mask", tagged);
  EXPECT_EQ(mask.width, 32);
  EXPECT_EQ(mask.height, 48);
}

TEST(MediaExifOrientation, PngExifChunk) {
  const Image src = testing::pattern(12, 7, 3);
  cv::Mat bgr(src.height, src.width, CV_8UC3, const_cast<std::uint8_t*>(src.pixels.data()));
  cv::Mat tmp;
  cv::cvtColor(bgr, tmp, cv::COLOR_RGB2BGR);
  Bytes png;
  ASSERT_TRUE(cv::imencode(".png", tmp, png));
  for (int o = 1; o <= 8; ++o)
    EXPECT_EQ(decode_image("init", png_with_exif(png, o)), upright(src, o)) << o;
}

TEST(MediaExifOrientation, MatchesPillowExifTranspose) {
  const auto py = testing::reference_python();
  if (!py) GTEST_SKIP() << "no python with numpy and Pillow (set MMGEN_PYTHON)";
  testing::TempDir dir;
  const Bytes plain = base_jpeg();
  for (int o = 1; o <= 8; ++o)
    testing::write_bytes(dir.path() / ("o" + std::to_string(o) + ".jpg"), with_exif(plain, o));
  ASSERT_EQ(0, testing::run_python(*py, "pil_exif_ref.py", {dir.path().string()}));
  int worst = 0;
  for (int o = 1; o <= 8; ++o) {
    const std::string n = "o" + std::to_string(o);
    const Image mine = decode_image("init", testing::read_bytes(dir.path() / (n + ".jpg")));
    const Image pil = decode_image("pil", testing::read_bytes(dir.path() / (n + ".png")));
    ASSERT_EQ(pil.width, mine.width) << o;
    ASSERT_EQ(pil.height, mine.height) << o;
    // Pillow bundles its own libjpeg-turbo; the IDCT may differ by a level or two.
    const int diff = testing::max_abs_diff(pil, mine);
    worst = std::max(worst, diff);
    EXPECT_LE(diff, 2) << "orientation " << o;
  }
  std::printf("[ info ] vs Pillow exif_transpose: max |diff| %d over 8 orientations\n", worst);
}

}  // namespace
}  // namespace mmgen::media

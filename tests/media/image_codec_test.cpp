// Decoding and encoding of still images: every format from bytes made in the
// test by OpenCV, round trips, alpha and mask handling, and typed errors for
// corrupt, truncated and oversized inputs.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "media_test_util.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;
using testing::pattern;
using testing::psnr;
using Bytes = std::vector<std::uint8_t>;

cv::Mat to_bgr_mat(const Image& im) {
  cv::Mat m(im.height, im.width, CV_8UC(im.channels), const_cast<std::uint8_t*>(im.pixels.data()));
  cv::Mat out;
  if (im.channels == 3) cv::cvtColor(m, out, cv::COLOR_RGB2BGR);
  else if (im.channels == 4) cv::cvtColor(m, out, cv::COLOR_RGBA2BGRA);
  else out = m.clone();
  return out;
}

Bytes cv_encode(const Image& im, const std::string& ext, std::vector<int> params = {}) {
  Bytes out;
  EXPECT_TRUE(cv::imencode(ext, to_bgr_mat(im), out, params)) << ext;
  return out;
}

// Runs f, expecting a ProtocolError with `code` whose message contains `part`.
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

TEST(MediaImageDecode, LosslessFormatsDecodeExactly) {
  const Image src = pattern(37, 23, 3);
  for (const std::string ext : {".png", ".bmp", ".tiff", ".ppm"}) {
    const Image got = decode_image("init", cv_encode(src, ext));
    EXPECT_EQ(got, src) << ext;
  }
}

TEST(MediaImageDecode, LossyFormatsDecodeClose) {
  const Image src = pattern(64, 48, 3);
  const Image jpg = decode_image("init", cv_encode(src, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95}));
  ASSERT_EQ(jpg.width, 64);
  ASSERT_EQ(jpg.height, 48);
  ASSERT_EQ(jpg.channels, 3);
  EXPECT_GT(psnr(jpg, src), 35.0);
  const Image webp = decode_image("init", cv_encode(src, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}));
  ASSERT_EQ(webp.width, 64);
  EXPECT_GT(psnr(webp, src), 30.0);
  // Quality > 100 is lossless WebP.
  EXPECT_EQ(decode_image("init", cv_encode(src, ".webp", {cv::IMWRITE_WEBP_QUALITY, 101})), src);
}

TEST(MediaImageDecode, GrayBecomesRgbAndStaysGrayAsMask) {
  const Image gray = pattern(20, 10, 1);
  const Bytes png = cv_encode(gray, ".png");
  const Image rgb = decode_image("init", png);
  ASSERT_EQ(rgb.channels, 3);
  for (std::size_t i = 0; i < gray.pixels.size(); ++i) {
    EXPECT_EQ(rgb.pixels[3 * i], gray.pixels[i]);
    EXPECT_EQ(rgb.pixels[3 * i + 2], gray.pixels[i]);
  }
  EXPECT_EQ(decode_mask("mask", png), gray);
}

TEST(MediaImageDecode, AlphaModes) {
  Image rgba = pattern(16, 8, 4);
  rgba.pixels[3] = 0;     // pixel 0 fully transparent
  rgba.pixels[7] = 255;   // pixel 1 opaque
  rgba.pixels[11] = 100;  // pixel 2 partial
  const Bytes png = cv_encode(rgba, ".png");

  DecodeOptions keep;
  keep.alpha = AlphaMode::keep;
  EXPECT_EQ(decode_image("init", png, keep), rgba);

  DecodeOptions drop;
  drop.alpha = AlphaMode::drop;
  const Image dropped = decode_image("init", png, drop);
  ASSERT_EQ(dropped.channels, 3);
  for (std::size_t p = 0; p < 16 * 8; ++p)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(dropped.pixels[3 * p + c], rgba.pixels[4 * p + c]);

  const Image white = decode_image("init", png);  // default: composite on white
  ASSERT_EQ(white.channels, 3);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(white.pixels[c], 255);                     // transparent -> white
    EXPECT_EQ(white.pixels[3 + c], rgba.pixels[4 + c]);  // opaque -> unchanged
    const int v = rgba.pixels[8 + c];
    EXPECT_EQ(white.pixels[6 + c], (v * 100 + 255 * 155 + 127) / 255);
  }
  // An opaque source asked to keep alpha gets alpha 255.
  const Image rgb4 = decode_image("init", cv_encode(pattern(4, 4, 3), ".png"), keep);
  ASSERT_EQ(rgb4.channels, 4);
  EXPECT_EQ(rgb4.pixels[3], 255);
}

TEST(MediaImageDecode, SixteenBitKeepsTheHighByte) {
  cv::Mat m(3, 5, CV_16UC3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x) m.at<cv::Vec3w>(y, x) = cv::Vec3w(x * 4000 + 255, y * 9000 + 128, 65535);
  Bytes png;
  ASSERT_TRUE(cv::imencode(".png", m, png));
  const Image got = decode_image("init", png);
  EXPECT_EQ(got.row(1)[3 * 2 + 0], 65535 >> 8);            // R was channel 2 (BGR)
  EXPECT_EQ(got.row(1)[3 * 2 + 1], (9000 + 128) >> 8);
  EXPECT_EQ(got.row(1)[3 * 2 + 2], (2 * 4000 + 255) >> 8);
}

TEST(MediaImageDecode, MaskFromColourUsesPilLuma) {
  Image rgb(3, 1, 3);
  const std::uint8_t px[9] = {255, 0, 0, 0, 255, 0, 10, 200, 90};
  std::copy(px, px + 9, rgb.pixels.begin());
  const Image mask = decode_mask("mask", cv_encode(rgb, ".png"));
  ASSERT_EQ(mask.channels, 1);
  // PIL: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16
  EXPECT_EQ(mask.pixels[0], (19595 * 255 + 0x8000) >> 16);
  EXPECT_EQ(mask.pixels[1], (38470 * 255 + 0x8000) >> 16);
  EXPECT_EQ(mask.pixels[2], (19595 * 10 + 38470 * 200 + 7471 * 90 + 0x8000) >> 16);
}

TEST(MediaImageDecode, MaskBinarizesAtHalf) {
  Image gray(4, 1, 1);
  gray.pixels = {0, 127, 128, 255};
  const Bytes png = cv_encode(gray, ".png");
  EXPECT_EQ(decode_mask("mask", png).pixels, (std::vector<std::uint8_t>{0, 127, 128, 255}));
  EXPECT_EQ(decode_mask("mask", png, {}, true).pixels, (std::vector<std::uint8_t>{0, 0, 255, 255}));
}

TEST(MediaImageDecode, MaskSizeCheck) {
  const Image mask(64, 48, 1);
  EXPECT_NO_THROW(check_mask_size("mask", mask, "init", 64, 48));
  expect_error([&] { check_mask_size("mask", mask, "init", 64, 64); }, ErrorCode::invalid_request,
               "mask 'mask' is 64x48 but image 'init' is 64x64");
  expect_error([&] { check_mask_size("mask", Image(64, 48, 3), "init", 64, 48); },
               ErrorCode::invalid_request, "one channel");
}

// ---- errors ----------------------------------------------------------------------
TEST(MediaImageDecodeErrors, GarbageAndEmpty) {
  const Bytes junk = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  expect_error([&] { decode_image("init", junk); }, ErrorCode::invalid_request,
               "image 'init': not a decodable PNG/JPEG/WebP image (11 bytes)");
  expect_error([&] { decode_image("ref", Bytes{}); }, ErrorCode::invalid_request,
               "image 'ref': not a decodable");
  expect_error([&] { decode_mask("mask", junk); }, ErrorCode::invalid_request, "image 'mask'");
}

TEST(MediaImageDecodeErrors, TruncatedFilesOfEveryFormat) {
  const Image src = pattern(64, 64, 3);
  const std::vector<std::pair<std::string, std::vector<int>>> formats = {
      {".png", {}}, {".jpg", {}}, {".webp", {}}, {".bmp", {}}, {".tiff", {}}};
  for (const auto& [ext, params] : formats) {
    const Bytes full = cv_encode(src, ext, params);
    for (const double keep : {0.02, 0.5, 0.9}) {
      const Bytes cut(full.begin(), full.begin() + std::ptrdiff_t(full.size() * keep));
      try {
        decode_image("init", cut);
        ADD_FAILURE() << ext << " cut to " << cut.size() << " of " << full.size() << " decoded";
      } catch (const ProtocolError& e) {
        EXPECT_EQ(e.code(), ErrorCode::invalid_request) << ext << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find("image 'init'"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(MediaImageDecodeErrors, CorruptPngData) {
  Bytes png = cv_encode(pattern(32, 32, 3), ".png");
  // Flip bytes in the middle of the compressed data: the zlib/CRC checks fail.
  for (std::size_t i = png.size() / 2; i < png.size() / 2 + 16; ++i) png[i] ^= 0x5A;
  expect_error([&] { decode_image("init", png); }, ErrorCode::invalid_request, "corrupt");
}

// Headers claiming huge sizes are refused before any pixel is decoded.
TEST(MediaImageDecodeErrors, DecompressionBombsAreRefusedFromTheHeader) {
  // PNG: signature + IHDR 100000 x 100000 (no pixel data at all).
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
               0x00, 0x01, 0x86, 0xA0, 0x00, 0x01, 0x86, 0xA0, 8, 2, 0, 0, 0, 0, 0, 0, 0};
  expect_error([&] { decode_image("init", png); }, ErrorCode::too_large,
               "image 'init': 100000x100000 exceeds the limit of 8192x8192");
  // JPEG: SOI + SOF0 60000 x 60000.
  Bytes jpg = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 8, 0xEA, 0x60, 0xEA, 0x60, 3,
               1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1};
  expect_error([&] { decode_image("init", jpg); }, ErrorCode::too_large, "60000x60000");
  // WebP VP8X canvas 16384 x 16384.
  Bytes webp = {'R', 'I', 'F', 'F', 30, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'X',
                10, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0x3F, 0, 0xFF, 0x3F, 0};
  expect_error([&] { decode_image("init", webp); }, ErrorCode::too_large, "16384x16384");
  // A real image over caller-set limits.
  DecodeOptions small;
  small.max_width = 32;
  small.max_height = 32;
  small.max_pixels = 32 * 32;
  const Bytes real = cv_encode(pattern(40, 10, 3), ".png");
  expect_error([&] { decode_image("init", real, small); }, ErrorCode::too_large, "40x10");
  small.max_width = 64;
  expect_error([&] { decode_image("init", cv_encode(pattern(40, 30, 3), ".png"), small); },
               ErrorCode::too_large, "pixels");
}

// ---- encoding ---------------------------------------------------------------------
TEST(MediaImageEncode, PngRoundTripIsExactAtEveryLevel) {
  for (const int channels : {1, 3, 4}) {
    const Image src = testing::noise(31, 17, channels, 7);
    for (const int level : {0, 1, 9}) {
      const Bytes png = encode_png(src, level);
      DecodeOptions o;
      if (channels == 4) o.alpha = AlphaMode::keep;
      const Image back = channels == 1 ? decode_mask("out", png) : decode_image("out", png, o);
      EXPECT_EQ(back, src) << channels << " channels, level " << level;
    }
  }
}

TEST(MediaImageEncode, PngLevelOneIsCheapAndStillValid) {
  const Image preview = pattern(64, 64, 3);
  const Bytes fast = encode_png(preview, 1);
  const Bytes small = encode_png(preview, 9);
  EXPECT_GE(fast.size(), small.size());
  EXPECT_EQ(decode_image("preview", fast), preview);
}

TEST(MediaImageEncode, JpegAndWebpRoundTripPsnr) {
  const Image src = pattern(96, 64, 3, 2);
  EXPECT_GT(psnr(decode_image("out", encode_jpeg(src, 95)), src), 35.0);
  EXPECT_GT(psnr(decode_image("out", encode_webp(src, 90)), src), 30.0);
  EXPECT_EQ(decode_image("out", encode_webp(src, 101)), src);
  const Image lo = decode_image("out", encode_jpeg(src, 10));
  EXPECT_LT(psnr(lo, src), psnr(decode_image("out", encode_jpeg(src, 95)), src));
}

TEST(MediaImageEncode, ViewsWithStrideEncodeTheSubImage) {
  const Image big = pattern(40, 30, 3);
  // The 10x5 block at (4, 2) seen through a strided view.
  const ImageView view(big.row(2) + 4 * 3, 10, 5, 3, big.row_bytes());
  const Image got = decode_image("crop", encode_png(view));
  ASSERT_EQ(got.width, 10);
  ASSERT_EQ(got.height, 5);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 30; ++x) ASSERT_EQ(got.row(y)[x], big.row(y + 2)[12 + x]);
}

TEST(MediaImageEncode, BadArgumentsAreTypedErrors) {
  const Image rgba = pattern(8, 8, 4);
  expect_error([&] { encode_jpeg(rgba); }, ErrorCode::invalid_request, "no alpha in JPEG");
  expect_error([&] { encode_jpeg(pattern(8, 8, 3), 0); }, ErrorCode::invalid_request, "JPEG quality 0");
  expect_error([&] { encode_png(pattern(8, 8, 3), 10); }, ErrorCode::invalid_request, "compression");
  expect_error([&] { encode_png(Image{}); }, ErrorCode::invalid_request, "empty");
  expect_error([&] { image_format_from_name("gif"); }, ErrorCode::invalid_request, "'gif'");
  EXPECT_EQ(image_format_from_name("jpg"), ImageFormat::jpeg);
  EXPECT_EQ(mime_type(ImageFormat::webp), "image/webp");
  EXPECT_EQ(decode_image("x", encode_image(pattern(6, 6, 3), ImageFormat::png, 1)), pattern(6, 6, 3));
}

}  // namespace
}  // namespace mmgen::media

// Encoding through OpenCV's imencode (which wants BGR(A) order).
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "mmgen/media/image.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

void check_view(ImageView v, std::string_view fmt, bool alpha_ok) {
  if (!v.data || v.width <= 0 || v.height <= 0)
    throw ProtocolError(ErrorCode::invalid_request, std::string(fmt) + " encode: empty image");
  const bool ok = v.channels == 1 || v.channels == 3 || (alpha_ok && v.channels == 4);
  if (!ok)
    throw ProtocolError(ErrorCode::invalid_request,
                        std::string(fmt) + " encode: " + std::to_string(v.channels) +
                            " channels not supported" + (alpha_ok ? "" : " (no alpha in JPEG)"));
}

void check_range(std::string_view what, int v, int lo, int hi) {
  if (v < lo || v > hi)
    throw ProtocolError(ErrorCode::invalid_request, std::string(what) + " " + std::to_string(v) +
                                                        " is outside " + std::to_string(lo) +
                                                        ".." + std::to_string(hi));
}

// RGB(A) -> BGR(A) copy; gray is passed through as a view.
cv::Mat to_bgr(ImageView v) {
  const cv::Mat src(v.height, v.width, CV_8UC(v.channels), const_cast<std::uint8_t*>(v.data), v.stride);
  if (v.channels == 1) return src;
  cv::Mat dst(v.height, v.width, CV_8UC(v.channels));
  for (int y = 0; y < v.height; ++y) {
    const std::uint8_t* s = v.row(y);
    std::uint8_t* d = dst.ptr<std::uint8_t>(y);
    for (int x = 0; x < v.width; ++x, s += v.channels, d += v.channels) {
      d[0] = s[2]; d[1] = s[1]; d[2] = s[0];
      if (v.channels == 4) d[3] = s[3];
    }
  }
  return dst;
}

std::vector<std::uint8_t> encode(ImageView v, const char* ext, std::string_view fmt,
                                 const std::vector<int>& params) {
  std::vector<std::uint8_t> out;
  bool ok = false;
  try {
    ok = cv::imencode(ext, to_bgr(v), out, params);
  } catch (const cv::Exception& e) {
    throw ProtocolError(ErrorCode::internal, std::string(fmt) + " encode failed: " + e.msg);
  }
  if (!ok || out.empty())
    throw ProtocolError(ErrorCode::internal, std::string(fmt) + " encode failed");
  return out;
}

}  // namespace

std::vector<std::uint8_t> encode_png(ImageView v, int compression) {
  check_view(v, "PNG", true);
  check_range("PNG compression level", compression, 0, 9);
  return encode(v, ".png", "PNG", {cv::IMWRITE_PNG_COMPRESSION, compression});
}

std::vector<std::uint8_t> encode_jpeg(ImageView v, int quality) {
  check_view(v, "JPEG", false);
  check_range("JPEG quality", quality, 1, 100);
  return encode(v, ".jpg", "JPEG", {cv::IMWRITE_JPEG_QUALITY, quality});
}

std::vector<std::uint8_t> encode_webp(ImageView v, int quality) {
  check_view(v, "WebP", true);
  check_range("WebP quality", quality, 1, 101);
  return encode(v, ".webp", "WebP", {cv::IMWRITE_WEBP_QUALITY, quality});
}

std::vector<std::uint8_t> encode_image(ImageView v, ImageFormat f, int quality) {
  switch (f) {
    case ImageFormat::png: return encode_png(v, quality);
    case ImageFormat::jpeg: return encode_jpeg(v, quality);
    case ImageFormat::webp: return encode_webp(v, quality);
  }
  throw ProtocolError(ErrorCode::invalid_request, "unknown image format");
}

}  // namespace mmgen::media

// Decoding: header probe and limits first, then OpenCV's imdecode with
// IMREAD_UNCHANGED (keeps alpha and bit depth, and leaves EXIF orientation
// to us so every format and alpha mode gets it the same way).
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <cstdint>
#include <string>

#include "image_ops.hpp"
#include "image_probe.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::media {
namespace {

using proto::ErrorCode;
using proto::ProtocolError;

[[noreturn]] void fail(ErrorCode code, std::string_view name, const std::string& what,
                       std::size_t n) {
  throw ProtocolError(code, "image '" + std::string(name) + "': " + what + " (" +
                                std::to_string(n) + " bytes)");
}

void check_limits(std::string_view name, std::uint64_t w, std::uint64_t h, const DecodeOptions& o,
                  std::size_t n) {
  if (w == 0 || h == 0) fail(ErrorCode::invalid_request, name, "image has no pixels", n);
  if (w > std::uint64_t(o.max_width) || h > std::uint64_t(o.max_height) || w * h > o.max_pixels)
    fail(ErrorCode::too_large, name,
         std::to_string(w) + "x" + std::to_string(h) + " exceeds the limit of " +
             std::to_string(o.max_width) + "x" + std::to_string(o.max_height) + " (" +
             std::to_string(o.max_pixels) + " pixels)",
         n);
}

// Probe, check, decode. Returns 8-bit pixels with 1..4 channels in OpenCV order
// (gray, gray+alpha, BGR, BGRA) and the EXIF orientation to apply.
cv::Mat decode_raw(std::string_view name, std::span<const std::uint8_t> bytes,
                   const DecodeOptions& opts, int& orientation) {
  const std::size_t n = bytes.size();
  if (n > std::size_t(INT32_MAX)) fail(ErrorCode::too_large, name, "input over 2 GiB", n);
  const detail::ImageProbe probe = detail::probe_image(bytes);
  if (probe.format == detail::SourceFormat::unknown)
    fail(ErrorCode::invalid_request, name, "not a decodable PNG/JPEG/WebP image", n);
  const std::string fmt(detail::format_name(probe.format));
  if (!probe.size_known)
    fail(ErrorCode::invalid_request, name, "corrupt or truncated " + fmt + " header", n);
  check_limits(name, probe.width, probe.height, opts, n);
  if (probe.truncated) fail(ErrorCode::invalid_request, name, "truncated " + fmt + " data", n);

  cv::Mat decoded;
  try {
    const cv::Mat buf(1, int(n), CV_8U, const_cast<std::uint8_t*>(bytes.data()));
    decoded = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    fail(ErrorCode::invalid_request, name, "corrupt " + fmt + " data: " + e.msg, n);
  }
  if (decoded.empty()) fail(ErrorCode::invalid_request, name, "corrupt or truncated " + fmt + " data", n);
  // The decoder, not the header we read, has the last word on size.
  check_limits(name, std::uint64_t(decoded.cols), std::uint64_t(decoded.rows), opts, n);

  cv::Mat out;
  if (decoded.depth() == CV_8U) {
    out = decoded;
  } else if (decoded.depth() == CV_16U) {
    // PIL reads 16-bit PNG/TIFF colour as its high byte (truncation, not rounding).
    out.create(decoded.size(), CV_8UC(decoded.channels()));
    const int cols = decoded.cols * decoded.channels();
    for (int y = 0; y < decoded.rows; ++y) {
      const auto* s = decoded.ptr<std::uint16_t>(y);
      auto* d = out.ptr<std::uint8_t>(y);
      for (int x = 0; x < cols; ++x) d[x] = std::uint8_t(s[x] >> 8);
    }
  } else {
    fail(ErrorCode::unsupported, name, fmt + " with non-8/16-bit samples is not supported", n);
  }
  if (out.channels() < 1 || out.channels() > 4)
    fail(ErrorCode::unsupported, name, fmt + " with " + std::to_string(out.channels()) +
                                           " channels is not supported", n);
  orientation = opts.apply_exif_orientation ? probe.orientation : 1;
  return out;
}

}  // namespace

Image decode_image(std::string_view name, std::span<const std::uint8_t> bytes,
                   const DecodeOptions& opts) {
  int orientation = 1;
  const cv::Mat m = decode_raw(name, bytes, opts, orientation);
  const int cin = m.channels();
  const bool has_alpha = cin == 2 || cin == 4;
  const int cout = opts.alpha == AlphaMode::keep ? 4 : 3;
  Image img(m.cols, m.rows, cout);
  for (int y = 0; y < m.rows; ++y) {
    const std::uint8_t* s = m.ptr<std::uint8_t>(y);
    std::uint8_t* d = img.row(y);
    for (int x = 0; x < m.cols; ++x, s += cin, d += cout) {
      std::uint8_t r, g, b;
      if (cin <= 2) {
        r = g = b = s[0];
      } else {
        b = s[0]; g = s[1]; r = s[2];
      }
      const unsigned a = has_alpha ? s[cin - 1] : 255u;
      if (opts.alpha == AlphaMode::composite_white && a != 255) {
        // Rounded blend over white: (c a + 255 (255 - a)) / 255.
        auto over = [a](unsigned c) { return std::uint8_t((c * a + 255u * (255u - a) + 127u) / 255u); };
        r = over(r); g = over(g); b = over(b);
      }
      d[0] = r; d[1] = g; d[2] = b;
      if (cout == 4) d[3] = std::uint8_t(a);
    }
  }
  return detail::apply_orientation(img, orientation);
}

Image decode_mask(std::string_view name, std::span<const std::uint8_t> bytes,
                  const DecodeOptions& opts, bool binarize) {
  int orientation = 1;
  const cv::Mat m = decode_raw(name, bytes, opts, orientation);
  const int cin = m.channels();
  Image mask(m.cols, m.rows, 1);
  for (int y = 0; y < m.rows; ++y) {
    const std::uint8_t* s = m.ptr<std::uint8_t>(y);
    std::uint8_t* d = mask.row(y);
    for (int x = 0; x < m.cols; ++x, s += cin)
      d[x] = cin <= 2 ? s[0] : detail::pil_luma(s[2], s[1], s[0]);
  }
  Image out = detail::apply_orientation(mask, orientation);
  if (binarize) binarize_mask(out);
  return out;
}

}  // namespace mmgen::media

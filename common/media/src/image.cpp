// Image basics, mask helpers and format names.
#include "mmgen/media/image.hpp"

#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::media {

using proto::ErrorCode;
using proto::ProtocolError;

Image::Image(int w, int h, int c, std::uint8_t fill)
    : width(w), height(h), channels(c), pixels(std::size_t(w) * h * c, fill) {}

void binarize_mask(Image& mask) {
  // diffusers: x / 255 < 0.5 -> 0 else 1; 127.5 splits the bytes at 128.
  for (auto& v : mask.pixels) v = v >= 128 ? 255 : 0;
}

void check_mask_size(std::string_view mask_name, const Image& mask, std::string_view image_name,
                     int width, int height) {
  if (mask.channels != 1)
    throw ProtocolError(ErrorCode::invalid_request,
                        "mask '" + std::string(mask_name) + "' must have one channel, has " +
                            std::to_string(mask.channels));
  if (mask.width != width || mask.height != height)
    throw ProtocolError(ErrorCode::invalid_request,
                        "mask '" + std::string(mask_name) + "' is " + std::to_string(mask.width) +
                            "x" + std::to_string(mask.height) + " but image '" +
                            std::string(image_name) + "' is " + std::to_string(width) + "x" +
                            std::to_string(height));
}

ImageFormat image_format_from_name(std::string_view name) {
  if (name == "png" || name == "PNG") return ImageFormat::png;
  if (name == "jpeg" || name == "jpg" || name == "JPEG" || name == "JPG") return ImageFormat::jpeg;
  if (name == "webp" || name == "WEBP" || name == "WebP") return ImageFormat::webp;
  throw ProtocolError(ErrorCode::invalid_request,
                      "image format '" + std::string(name) + "' is not one of png, jpeg, webp");
}

std::string_view mime_type(ImageFormat f) {
  switch (f) {
    case ImageFormat::png: return "image/png";
    case ImageFormat::jpeg: return "image/jpeg";
    case ImageFormat::webp: return "image/webp";
  }
  return "application/octet-stream";
}

std::string_view file_extension(ImageFormat f) {
  switch (f) {
    case ImageFormat::png: return "png";
    case ImageFormat::jpeg: return "jpg";
    case ImageFormat::webp: return "webp";
  }
  return "bin";
}

}  // namespace mmgen::media

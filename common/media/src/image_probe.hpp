// Reads an encoded image's container header without decoding pixels: format,
// dimensions (for the decompression-bomb check) and EXIF orientation.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace mmgen::media::detail {

enum class SourceFormat { unknown, png, jpeg, webp, bmp, tiff, pnm };
std::string_view format_name(SourceFormat f);

struct ImageProbe {
  SourceFormat format = SourceFormat::unknown;
  bool size_known = false;  // false: the header is cut short or malformed
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  int orientation = 1;      // EXIF 1..8; 1 when absent or invalid
  bool truncated = false;   // JPEG: no EOI after the scan (libjpeg would pad with grey)
};

ImageProbe probe_image(std::span<const std::uint8_t> bytes);

// Orientation tag (0x0112) of a TIFF-structured block (the EXIF payload after
// "Exif\0\0"); 1 when absent, unreadable or out of range.
int exif_orientation(std::span<const std::uint8_t> tiff);

}  // namespace mmgen::media::detail

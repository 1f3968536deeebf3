// Pixel-level helpers shared by decode and resize.
#pragma once

#include "mmgen/media/image.hpp"

namespace mmgen::media::detail {

// EXIF orientation 1..8 undone, as PIL's ImageOps.exif_transpose:
// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
// 7 transverse, 8 rotate 90 counter-clockwise.
Image apply_orientation(const Image& src, int orientation);

// PIL's RGBA <-> RGBa (premultiplied) conversions, in place.
void premultiply_alpha(Image& rgba);
void unpremultiply_alpha(Image& rgba);

// PIL's ITU-R 601-2 luma, L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
inline std::uint8_t pil_luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  return std::uint8_t((19595u * r + 38470u * g + 7471u * b + 0x8000u) >> 16);
}

}  // namespace mmgen::media::detail

#include "image_ops.hpp"

#include <cstring>

namespace mmgen::media::detail {

Image apply_orientation(const Image& src, int orientation) {
  if (orientation < 2 || orientation > 8) return src;
  const bool swap = orientation >= 5;  // 5..8 exchange width and height
  const int w = src.width, h = src.height, c = src.channels;
  Image out(swap ? h : w, swap ? w : h, c);
  // For each output pixel (x, y), the source pixel it shows.
  for (int y = 0; y < out.height; ++y) {
    std::uint8_t* dst = out.row(y);
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
        default: break;
      }
      std::memcpy(dst + std::size_t(x) * c, src.row(sy) + std::size_t(sx) * c, std::size_t(c));
    }
  }
  return out;
}

void premultiply_alpha(Image& im) {
  for (std::size_t i = 0; i + 3 < im.pixels.size(); i += 4) {
    const unsigned a = im.pixels[i + 3];
    for (int k = 0; k < 3; ++k) {
      const unsigned t = im.pixels[i + k] * a + 128;  // PIL's MULDIV255
      im.pixels[i + k] = std::uint8_t(((t >> 8) + t) >> 8);
    }
  }
}

void unpremultiply_alpha(Image& im) {
  for (std::size_t i = 0; i + 3 < im.pixels.size(); i += 4) {
    const unsigned a = im.pixels[i + 3];
    if (a == 0 || a == 255) continue;
    for (int k = 0; k < 3; ++k) {
      const unsigned v = 255u * im.pixels[i + k] / a;  // truncating, as PIL
      im.pixels[i + k] = std::uint8_t(v > 255 ? 255 : v);
    }
  }
}

}  // namespace mmgen::media::detail

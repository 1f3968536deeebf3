// Still images for the image and video services: decode uploaded bytes into
// 8-bit RGB(A)/gray pixels and encode results to PNG/JPEG/WebP, through
// OpenCV's imgcodecs. Torch-free.
//
// Every failure is a mmgen::proto::ProtocolError naming the input:
//   invalid_request  not an image we read, corrupt/truncated data, bad option
//   too_large        header dimensions above the limits (checked BEFORE the
//                    pixels are decoded, so a decompression bomb costs nothing)
//   unsupported      a pixel format we do not convert (float/HDR samples)
// Formats read: PNG, JPEG, WebP (still), BMP, TIFF (first page), PNM. Other
// formats OpenCV knows are refused because their size cannot be checked first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace mmgen::media {

// Interleaved 8-bit pixels, row-major, no row padding.
// channels: 1 (gray / mask), 3 (RGB), 4 (RGBA, straight alpha).
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<std::uint8_t> pixels;  // width * height * channels bytes

  Image() = default;
  Image(int w, int h, int c, std::uint8_t fill = 0);
  std::size_t row_bytes() const { return std::size_t(width) * std::size_t(channels); }
  std::uint8_t* row(int y) { return pixels.data() + std::size_t(y) * row_bytes(); }
  const std::uint8_t* row(int y) const { return pixels.data() + std::size_t(y) * row_bytes(); }
  bool operator==(const Image&) const = default;
};

// A borrowed image, e.g. a frame inside a larger buffer. stride 0 = packed.
struct ImageView {
  const std::uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int channels = 0;
  std::size_t stride = 0;  // bytes between rows

  ImageView() = default;
  ImageView(const std::uint8_t* d, int w, int h, int c, std::size_t s = 0)
      : data(d), width(w), height(h), channels(c), stride(s ? s : std::size_t(w) * c) {}
  ImageView(const Image& im)  // NOLINT(google-explicit-constructor): views are cheap
      : ImageView(im.pixels.data(), im.width, im.height, im.channels) {}
  const std::uint8_t* row(int y) const { return data + std::size_t(y) * stride; }
};

// What to do with an alpha channel on decode.
enum class AlphaMode {
  composite_white,  // RGB: blend over white (what a viewer shows)
  drop,             // RGB: discard alpha, keep stored colours (PIL convert("RGB"),
                    //      which the diffusers image processors use)
  keep,             // RGBA always (alpha 255 where the source has none)
};

struct DecodeOptions {
  int max_width = 8192;
  int max_height = 8192;
  std::uint64_t max_pixels = 8192ull * 8192ull;
  AlphaMode alpha = AlphaMode::composite_white;
  // EXIF Orientation (JPEG APP1, PNG eXIf, WebP EXIF) applied as PIL's
  // ImageOps.exif_transpose does. OpenCV is told to ignore it; we apply it.
  bool apply_exif_orientation = true;
};

// Decodes `bytes` (the input called `name` in messages) to RGB or RGBA.
Image decode_image(std::string_view name, std::span<const std::uint8_t> bytes,
                   const DecodeOptions& opts = {});

// Decodes a mask to one channel: gray sources as they are, colour sources by
// PIL's convert("L") luma (299/587/114, fixed point), alpha ignored as PIL does.
// binarize: values >= 128 become 255, others 0 — diffusers' `do_binarize`
// (x/255 >= 0.5). Resize first and binarize afterwards if the reference does.
Image decode_mask(std::string_view name, std::span<const std::uint8_t> bytes,
                  const DecodeOptions& opts = {}, bool binarize = false);
void binarize_mask(Image& mask);

// invalid_request "mask 'mask' is 64x48 but image 'init' is 64x64" unless the
// mask is one channel of exactly width x height.
void check_mask_size(std::string_view mask_name, const Image& mask, std::string_view image_name,
                     int width, int height);

// ---- encoding ------------------------------------------------------------------
enum class ImageFormat { png, jpeg, webp };
ImageFormat image_format_from_name(std::string_view name);  // png|jpeg|jpg|webp
std::string_view mime_type(ImageFormat f);                   // image/png ...
std::string_view file_extension(ImageFormat f);              // png, jpg, webp

// PNG: compression 0..9 (zlib level; 1 is the cheap choice for previews).
std::vector<std::uint8_t> encode_png(ImageView img, int compression = 3);
// JPEG: quality 1..100; gray or RGB only (no alpha in JPEG).
std::vector<std::uint8_t> encode_jpeg(ImageView img, int quality = 95);
// WebP: quality 1..100 lossy, 101 lossless (OpenCV's convention).
std::vector<std::uint8_t> encode_webp(ImageView img, int quality = 90);
// png: `quality` is the compression level; jpeg/webp: the quality.
std::vector<std::uint8_t> encode_image(ImageView img, ImageFormat f, int quality);

}  // namespace mmgen::media

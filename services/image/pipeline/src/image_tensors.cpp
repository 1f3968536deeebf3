// Pixel and latent layout conversions (image_tensors.hpp). Read beside
// diffusers' image_processor.py (VaeImageProcessor) and the Qwen-Image
// pipelines' _pack_latents / _unpack_latents.
#include "mmgen/image/image_tensors.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/where.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "mmgen/media/resize.hpp"

namespace mmgen::image {

namespace {

// PIL's RGB -> L: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
media::Image to_gray(const media::Image& src) {
  if (src.channels == 1) return src;
  media::Image out(src.width, src.height, 1);
  const std::size_t n = std::size_t(src.width) * std::size_t(src.height);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = src.pixels.data() + i * std::size_t(src.channels);
    out.pixels[i] = static_cast<std::uint8_t>((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
  }
  return out;
}

// 8-bit interleaved -> float32 [C, H, W] in [0, 1] (np.float32(x) / 255).
at::Tensor to_unit_chw(const media::Image& img) {
  at::Tensor hwc = at::from_blob(const_cast<std::uint8_t*>(img.pixels.data()),
                                 {img.height, img.width, img.channels}, at::kByte);
  return (hwc.to(at::kFloat) / 255.0f).permute({2, 0, 1}).contiguous();
}

}  // namespace

at::Tensor image_to_vae_input(const media::Image& rgb, int width, int height) {
  if (rgb.channels != 3) {
    throw std::invalid_argument("image must be RGB, got " + std::to_string(rgb.channels) + " channels");
  }
  const media::Image sized = (rgb.width == width && rgb.height == height)
                                 ? rgb
                                 : media::resize(rgb, width, height, media::ResampleFilter::lanczos);
  return (to_unit_chw(sized) * 2.0f - 1.0f).unsqueeze(0).unsqueeze(2);  // [1, 3, 1, H, W]
}

at::Tensor mask_to_tensor(const media::Image& mask, int width, int height) {
  if (mask.channels != 1 && mask.channels != 3) {
    throw std::invalid_argument("mask must be grayscale or RGB, got " + std::to_string(mask.channels) +
                                " channels");
  }
  media::Image gray = to_gray(mask);
  if (gray.width != width || gray.height != height) {
    gray = media::resize(gray, width, height, media::ResampleFilter::lanczos);
  }
  const at::Tensor unit = to_unit_chw(gray).unsqueeze(0);  // [1, 1, H, W]
  return (unit >= 0.5f).to(at::kFloat);
}

at::Tensor pack_latents(const at::Tensor& latents, std::int64_t batch, std::int64_t channels, std::int64_t h,
                        std::int64_t w) {
  return latents.reshape({batch, channels, h / 2, 2, w / 2, 2})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({batch, (h / 2) * (w / 2), channels * 4});
}

at::Tensor unpack_latents(const at::Tensor& tokens, std::int64_t h, std::int64_t w) {
  const std::int64_t B = tokens.size(0);
  const std::int64_t C = tokens.size(2) / 4;
  return tokens.reshape({B, h / 2, w / 2, C, 2, 2}).permute({0, 3, 1, 4, 2, 5}).reshape({B, C, 1, h, w});
}

at::Tensor vae_output_to_unit_rgb(const at::Tensor& decoded) {
  return (decoded.to(at::kFloat) * 0.5f + 0.5f).clamp(0.0, 1.0).permute({0, 2, 3, 1}).contiguous();
}

media::Image unit_rgb_to_image(const at::Tensor& hwc) {
  const at::Tensor u8 = (hwc.to(at::kFloat) * 255.0f).round().clamp(0, 255).to(at::kByte).contiguous();
  media::Image out(static_cast<int>(u8.size(1)), static_cast<int>(u8.size(0)), 3);
  std::memcpy(out.pixels.data(), u8.data_ptr(), out.pixels.size());
  return out;
}

}  // namespace mmgen::image

// Pixels <-> tensors and latents <-> transformer tokens, as diffusers'
// VaeImageProcessor and the Qwen-Image pipelines convert them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "mmgen/media/image.hpp"

namespace mmgen::image {

// VaeImageProcessor.preprocess of an RGB picture: PIL-exact LANCZOS resize to
// width x height, /255, then 2x - 1. Returns [1, 3, 1, H, W] float32 (the
// pipelines' unsqueeze(2) for the VAE's frame axis).
at::Tensor image_to_vae_input(const media::Image& rgb, int width, int height);

// The inpaint pipeline's mask: grayscale (PIL convert("L") weights), LANCZOS
// resize, /255, binarised at 0.5. Returns [1, 1, H, W] float32 of 0/1.
at::Tensor mask_to_tensor(const media::Image& mask, int width, int height);

// _pack_latents: [B, C, 1 | -, h, w] (or [B, 1, C, h, w]) viewed as
// [B, C, h/2, 2, w/2, 2] -> [B, (h/2)(w/2), 4C].
at::Tensor pack_latents(const at::Tensor& latents, std::int64_t batch, std::int64_t channels, std::int64_t h,
                        std::int64_t w);
// _unpack_latents: [B, (h/2)(w/2), 4C] -> [B, C, 1, h, w].
at::Tensor unpack_latents(const at::Tensor& tokens, std::int64_t h, std::int64_t w);

// VaeImageProcessor.postprocess(output_type="np") before 8-bit quantisation:
// [B, 3, H, W] in [-1, 1] -> [B, H, W, 3] float32 of (x * 0.5 + 0.5).clamp(0, 1).
at::Tensor vae_output_to_unit_rgb(const at::Tensor& decoded);

// [H, W, 3] float in [0, 1] -> 8-bit RGB (numpy_to_pil: (x * 255).round()).
media::Image unit_rgb_to_image(const at::Tensor& hwc);

}  // namespace mmgen::image

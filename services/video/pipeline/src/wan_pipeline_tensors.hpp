// Pixel and latent conversions of the Wan pipelines (private to
// mmgen_wan_pipeline): the first-frame image as diffusers' VideoProcessor
// prepares it, the image condition of WanImageToVideoPipeline.prepare_latents,
// the TI2V first-frame re-blend and the decode + postprocess_video("np").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/media/image.hpp"

namespace mmgen::video {

// VideoProcessor.preprocess(image, height, width) of an RGB picture: PIL-exact
// LANCZOS resize to width x height (none when the size already matches), /255
// in float32, then 2x - 1. Returns [1, 3, H, W] float32 on the CPU.
at::Tensor image_to_video_input(const media::Image& rgb, std::int64_t width, std::int64_t height);

// WanImageToVideoPipeline.prepare_latents' condition for `image` [1, 3, H, W]
// float32: the VAE posterior mode of the first frame (expand_timesteps, TI2V)
// or of the first frame followed by num_frames - 1 black frames (A14B),
// normalised as (z - mean) * (1 / std) in float32. TI2V returns [1, z, 1, h, w];
// A14B prepends the 4-channel frame mask (latent frame 0 ones, the rest zeros)
// and returns [1, 4 + z, T, h, w]. On the image's device, float32.
at::Tensor encode_condition(const diffusion::WanVae& vae, const at::Tensor& image, std::int64_t num_frames,
                            bool expand_timesteps, std::int64_t scale_factor_temporal);

// The TI2V re-blend (1 - m) * condition + m * latents with m = 0 on latent
// frame 0 and 1 elsewhere: frame 0 replaced by the condition [1, z, 1, h, w].
// With a 0/1 mask the reference's arithmetic gives exactly these values.
at::Tensor blend_first_frame(const at::Tensor& latents, const at::Tensor& condition);

// latents [1, z, T, h, w] (normalised) -> denormalise -> VAE decode (latent
// frame by latent frame) -> (x * 0.5 + 0.5).clamp(0, 1) in the VAE's dtype ->
// [1 + 4(T - 1), H, W, 3] float32 on the CPU.
at::Tensor decode_video(const diffusion::WanVae& vae, const at::Tensor& latents);

}  // namespace mmgen::video

// Pixel and latent conversions of the Wan pipelines (wan_pipeline_tensors.hpp).
// Read beside diffusers' image_processor.py (VaeImageProcessor.preprocess /
// postprocess), video_processor.py and pipeline_wan_i2v.py's prepare_latents.
#include "wan_pipeline_tensors.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

#include <stdexcept>
#include <string>

#include "mmgen/media/resize.hpp"

namespace mmgen::video {

at::Tensor image_to_video_input(const media::Image& rgb, std::int64_t width, std::int64_t height) {
  if (rgb.channels != 3) {
    throw std::invalid_argument("image must be RGB, got " + std::to_string(rgb.channels) + " channels");
  }
  const int W = static_cast<int>(width), H = static_cast<int>(height);
  const media::Image sized =
      (rgb.width == W && rgb.height == H) ? rgb : media::resize(rgb, W, H, media::ResampleFilter::lanczos);
  // pil_to_numpy: np.array(img).astype(np.float32) / 255.0; then 2x - 1.
  const at::Tensor hwc = at::from_blob(const_cast<std::uint8_t*>(sized.pixels.data()), {H, W, 3}, at::kByte);
  const at::Tensor unit = hwc.to(at::kFloat) / 255.0f;
  return (unit * 2.0f - 1.0f).permute({2, 0, 1}).unsqueeze(0).contiguous();
}

at::Tensor encode_condition(const diffusion::WanVae& vae, const at::Tensor& image, std::int64_t num_frames,
                            bool expand_timesteps, std::int64_t scale_factor_temporal) {
  const at::Tensor first = image.unsqueeze(2);  // [1, 3, 1, H, W]
  at::Tensor video = first;
  if (!expand_timesteps) {
    // The first frame, then black (zero) frames up to num_frames.
    const at::Tensor rest = at::zeros({first.size(0), first.size(1), num_frames - 1, first.size(3), first.size(4)},
                                      first.options());
    video = at::cat({first, rest}, 2);
  }
  // retrieve_latents(sample_mode="argmax"): the posterior mode, no draw.
  at::Tensor z = vae.encode(video.to(vae.device(), vae.dtype())).mode().to(image.device(), at::kFloat);
  video.reset();
  z = vae.normalize(z);  // (z - mean) * (1 / std), float32
  if (expand_timesteps) return z;

  // mask_lat_size: 1 for the given first frame (repeated over the first
  // temporal group of scale_factor_temporal frames), 0 for the rest, folded
  // to [1, scale_factor_temporal, T, h, w] — ones exactly on latent frame 0.
  const std::int64_t T = z.size(2), h = z.size(3), w = z.size(4);
  at::Tensor mask = at::zeros({z.size(0), scale_factor_temporal, T, h, w}, z.options());
  mask.narrow(2, 0, 1).fill_(1.0);
  return at::cat({mask, z}, 1);
}

at::Tensor blend_first_frame(const at::Tensor& latents, const at::Tensor& condition) {
  at::Tensor out = latents.clone();
  out.narrow(2, 0, 1).copy_(condition);
  return out;
}

at::Tensor decode_video(const diffusion::WanVae& vae, const at::Tensor& latents) {
  const at::Tensor z = vae.denormalize(latents.to(vae.device(), vae.dtype()));
  at::Tensor video = vae.decode(z);  // [1, 3, F, H, W] in [-1, 1]
  // postprocess_video(output_type="np"): per video, frames first; denormalize
  // (x * 0.5 + 0.5).clamp(0, 1) in the decoder's dtype, then float32 numpy.
  video = (video.select(0, 0) * 0.5 + 0.5).clamp(0.0, 1.0);
  return video.permute({1, 2, 3, 0}).to(at::kCPU, at::kFloat).contiguous();
}

}  // namespace mmgen::video

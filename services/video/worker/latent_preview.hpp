// Cheap previews for PROGRESS events: a linear latent -> RGB projection of
// the middle latent frame of the step's clean-latent estimate, one pixel per
// latent cell (1/8 or 1/16 of the frame size), no VAE decode per step.
//
// The projection is fitted once at load, by least squares between random
// latents and their VAE decode (WanPipeline::decode_preview) averaged over
// each cell, so it suits whichever VAE the folder holds (Wan 2.1's z 16 or
// Wan 2.2's z 48) instead of a table of constants written for one of them.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "mmgen/video/wan_pipeline.hpp"

namespace mmgen::video {

class VideoLatentPreviewer {
 public:
  explicit VideoLatentPreviewer(const WanPipeline& pipeline);

  // denoised: [1, z, T, h, w] (the StepCallback's x0 estimate) -> a w x h PNG
  // of latent frame T / 2.
  std::string render_png(const at::Tensor& denoised) const;
  // The same frame as [h, w, 3] float32 in [0, 1] (tests).
  at::Tensor render(const at::Tensor& denoised) const;

  const at::Tensor& weight() const { return weight_; }  // [3, z]
  const at::Tensor& bias() const { return bias_; }      // [3]

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

}  // namespace mmgen::video

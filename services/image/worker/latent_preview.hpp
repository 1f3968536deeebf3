// Cheap previews for PROGRESS events: a linear latent -> RGB projection
// applied to the step's clean-latent estimate, one pixel per latent cell
// (1/8 of the image size), no VAE decode.
//
// The projection is fitted once at start-up, by least squares between random
// latents and their VAE decode averaged over each cell, so it suits whichever
// VAE the folder holds (a fine-tuned VAE moves the colours) instead of a table
// of constants written for one of them.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "mmgen/image/qwenimage_pipeline.hpp"

namespace mmgen::image {

class LatentPreviewer {
 public:
  explicit LatentPreviewer(const QwenImagePipeline& pipeline);

  // packed: [B, (h/2)(w/2), 4C] transformer-space latents of an image of
  // latent grid h x w; renders the first image of the batch as a w x h PNG.
  std::string render_png(const at::Tensor& packed, std::int64_t h, std::int64_t w) const;

  const at::Tensor& weight() const { return weight_; }  // [3, C]
  const at::Tensor& bias() const { return bias_; }      // [3]

 private:
  at::Tensor weight_;
  at::Tensor bias_;
};

}  // namespace mmgen::image

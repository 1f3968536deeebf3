// Qwen-Image's 3-axis rotary positions (diffusers' QwenEmbedRope with
// scale_rope=True, theta 10000), as position rows for mmgen::ops' multi-axis
// tables. Image token (f, y, x) of the i-th image in a sample sits at
//   frame  = i + f
//   height = y - (h - h/2)      (centred: -(h - h/2) .. h/2 - 1)
//   width  = x - (w - w/2)
// and text token j at (s + j) on all three axes, s = max over the images of
// max(h/2, w/2), so text follows the largest image's positive half.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "mmgen/ops.hpp"

namespace mmgen::image {

// One image's latent patch grid: frames x height x width tokens.
struct ImageShape {
  std::int64_t frames = 1;
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::int64_t tokens() const { return frames * height * width; }
  bool operator==(const ImageShape&) const = default;
};

// Positions [txt_len + sum(tokens), 3] int64 (frame, height, width), text rows
// first as in the joint attention sequence, then the images in order.
at::Tensor qwenimage_rope_positions(const std::vector<ImageShape>& images, std::int64_t txt_len);

// cos/sin tables [txt_len + sum(tokens), sum(axes_dims) / 2] float32 on `device`,
// each axis with its own frequencies over axes_dims[a] (angles in float32 as
// the reference's rope_params), for ops::rope(..., RopeStyle::Interleaved).
ops::RopeTables qwenimage_rope_tables(const std::vector<ImageShape>& images, std::int64_t txt_len,
                                      const std::vector<std::int64_t>& axes_dims, c10::Device device);

}  // namespace mmgen::image

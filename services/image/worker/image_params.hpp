// Job params and input blobs of the `image` service -> a pipeline request.
// Keys (clients/README.md): prompt, negative_prompt, cfg, width, height,
// steps, count, seed, strength, previews, preview_every, format, quality,
// tiling, edit_style, max_sequence_length;
// blobs init, mask (and image, for edit).
#pragma once

#include <cstdint>
#include <vector>

#include "mmgen/image/qwenimage_pipeline.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/value.hpp"
#include "mmgen/worker.hpp"

namespace mmgen::image {

struct ImageJob {
  ImageRequest request;
  bool seed_given = false;
  std::int64_t preview_every = 0;  // 0: no previews
  media::ImageFormat format = media::ImageFormat::png;
  int quality = 95;  // JPEG / WebP
  // VAE tiling: "auto" tiles images above kAutoTileArea pixels, "on" always,
  // "off" never (as diffusers without enable_tiling()).
  enum class Tiling { automatic, on, off } tiling = Tiling::automatic;
};
inline constexpr std::int64_t kAutoTileArea = 1536 * 1536;

// blob "image" (1-3 of them, in order) makes an edit job; param edit_style:
// auto | edit | edit_plus. Throws ProtocolError(invalid_request) naming the
// bad key or blob.
ImageJob parse_image_job(const Params& params, const std::vector<worker::Input>& inputs);

}  // namespace mmgen::image

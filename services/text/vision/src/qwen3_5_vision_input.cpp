// Prompt side of Qwen3.5 image input (qwen3_5_vision_input.hpp). Read beside
// transformers' processing_qwen3_vl.py (placeholder expansion) and
// modeling_qwen3_5.py: Qwen3_5Model.get_rope_index, get_vision_position_ids,
// get_placeholder_mask + masked_scatter in forward, compute_3d_position_ids
// (rope deltas for decoding). The image processor itself is
// mmgen::image::preprocess (services/image/vision), which Qwen3.5 shares with
// Qwen2-VL (Qwen2VLImageProcessor(Pil)) with other settings.
#include "mmgen/text/qwen3_5_vision_input.hpp"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/index_select.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::text {

namespace {

[[noreturn]] void bad_input(const std::string& what) {
  throw proto::ProtocolError(proto::ErrorCode::invalid_request, "Qwen3.5 image input: " + what);
}

struct Grid {
  std::int64_t t, h, w;  // in merged tokens (h, w divided by the merge size)
};

std::vector<Grid> merged_grids(const at::Tensor& grid_thw, std::int64_t merge) {
  std::vector<Grid> out;
  if (!grid_thw.defined() || grid_thw.numel() == 0) return out;
  if (grid_thw.dim() != 2 || grid_thw.size(1) != 3 || !at::isIntegralType(grid_thw.scalar_type(), false)) {
    bad_input("grid_thw must be [num_images, 3] integers, got " + std::string(c10::str(grid_thw.sizes())));
  }
  const at::Tensor g = grid_thw.to(at::kCPU, at::kLong).contiguous();
  const auto* p = g.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < g.size(0); ++i) {
    const std::int64_t t = p[3 * i], h = p[3 * i + 1], w = p[3 * i + 2];
    if (t <= 0 || h <= 0 || w <= 0 || h % merge != 0 || w % merge != 0 || t > (1 << 16) || h > (1 << 16) ||
        w > (1 << 16)) {
      bad_input("grid_thw row " + std::to_string(i) + " (" + std::to_string(t) + ", " + std::to_string(h) + ", " +
                std::to_string(w) + ") is not a grid of whole " + std::to_string(merge) + "x" +
                std::to_string(merge) + " merge blocks");
    }
    out.push_back(Grid{t, h / merge, w / merge});
  }
  return out;
}

}  // namespace

// ============================== processor ==============================

image::QwenImageProcessorOptions qwen3_5_processor_defaults() {
  image::QwenImageProcessorOptions o;
  o.patch_size = 16;
  o.temporal_patch_size = 2;
  o.merge_size = 2;
  o.min_pixels = 65536;     // size.shortest_edge
  o.max_pixels = 16777216;  // size.longest_edge
  o.image_mean = {0.5, 0.5, 0.5};
  o.image_std = {0.5, 0.5, 0.5};
  return o;
}

image::QwenImageProcessorOptions load_qwen3_5_processor(const std::filesystem::path& folder,
                                                        const Qwen3_5VisionConfig& vision) {
  std::error_code ec;
  const std::filesystem::path file = std::filesystem::is_regular_file(folder, ec)
                                         ? folder
                                         : folder / "preprocessor_config.json";
  image::QwenImageProcessorOptions o = std::filesystem::exists(file, ec)
                                           ? image::QwenImageProcessorOptions::load(file)
                                           : qwen3_5_processor_defaults();
  if (o.patch_size != vision.patch_size || o.temporal_patch_size != vision.temporal_patch_size ||
      o.merge_size != vision.spatial_merge_size) {
    throw std::invalid_argument(
        "Qwen3.5 image processor: patch_size / temporal_patch_size / merge_size (" + std::to_string(o.patch_size) +
        ", " + std::to_string(o.temporal_patch_size) + ", " + std::to_string(o.merge_size) +
        ") disagree with the vision tower's config (" + std::to_string(vision.patch_size) + ", " +
        std::to_string(vision.temporal_patch_size) + ", " + std::to_string(vision.spatial_merge_size) + ")");
  }
  return o;
}

image::ProcessedImages preprocess_images(std::span<const media::ImageView> images,
                                         const image::QwenImageProcessorOptions& opts) {
  return image::preprocess(images, opts);
}

// ============================== placeholders ==============================

std::vector<std::int64_t> image_token_counts(const at::Tensor& grid_thw, const Qwen3_5VisionConfig& vision) {
  std::vector<std::int64_t> out;
  for (const Grid& g : merged_grids(grid_thw, vision.spatial_merge_size)) out.push_back(g.t * g.h * g.w);
  return out;
}

std::vector<std::int64_t> expand_image_placeholders(std::span<const std::int64_t> prompt_ids,
                                                    const at::Tensor& grid_thw, const Qwen3_5VisionConfig& vision) {
  const std::vector<std::int64_t> counts = image_token_counts(grid_thw, vision);
  const auto placeholders = std::size_t(std::count(prompt_ids.begin(), prompt_ids.end(), vision.image_token_id));
  if (placeholders != counts.size()) {
    bad_input("the prompt has " + std::to_string(placeholders) + " image placeholder(s) (<|image_pad|>, id " +
              std::to_string(vision.image_token_id) + ") but " + std::to_string(counts.size()) +
              " image(s) were given");
  }
  if (std::find(prompt_ids.begin(), prompt_ids.end(), vision.video_token_id) != prompt_ids.end()) {
    bad_input("the prompt holds a video placeholder (id " + std::to_string(vision.video_token_id) +
              "); video input is not supported");
  }
  std::vector<std::int64_t> out;
  std::size_t image = 0;
  for (std::int64_t id : prompt_ids) {
    if (id == vision.image_token_id) {
      out.insert(out.end(), std::size_t(counts[image++]), id);
    } else {
      out.push_back(id);
    }
  }
  return out;
}

// ============================== positions ==============================

MropePositions qwen3_5_rope_index(std::span<const std::int64_t> ids, const at::Tensor& grid_thw,
                                  const Qwen3_5VisionConfig& vision) {
  const std::vector<Grid> grids = merged_grids(grid_thw, vision.spatial_merge_size);
  const auto T = std::int64_t(ids.size());
  at::Tensor positions = at::empty({3, T}, at::TensorOptions().dtype(at::kLong));
  std::int64_t* row[3] = {positions.data_ptr<std::int64_t>(), positions.data_ptr<std::int64_t>() + T,
                          positions.data_ptr<std::int64_t>() + 2 * T};
  std::int64_t pos = 0;  // the next position (current_pos)
  std::int64_t max_pos = -1;
  std::size_t image = 0;
  for (std::int64_t i = 0; i < T;) {
    if (ids[std::size_t(i)] != vision.image_token_id) {
      for (auto* r : row) r[i] = pos;
      max_pos = std::max(max_pos, pos);
      ++pos, ++i;
      continue;
    }
    // One maximal run of image tokens is one image (the reference groups
    // mm_token_type_ids the same way; the template's vision_start / end
    // tokens always separate two images).
    std::int64_t end = i;
    while (end < T && ids[std::size_t(end)] == vision.image_token_id) ++end;
    if (image >= grids.size()) {
      bad_input("the prompt has more image token runs than images (" + std::to_string(grids.size()) + ")");
    }
    const Grid g = grids[image];
    if (end - i != g.t * g.h * g.w) {
      bad_input("image " + std::to_string(image) + " has " + std::to_string(end - i) + " tokens in the prompt but " +
                std::to_string(g.t * g.h * g.w) + " from its grid");
    }
    std::int64_t k = i;
    for (std::int64_t a = 0; a < g.t; ++a) {
      for (std::int64_t b = 0; b < g.h; ++b) {
        for (std::int64_t c = 0; c < g.w; ++c, ++k) {
          row[0][k] = pos + a;  // frame index (time_interval 1 for still images)
          row[1][k] = pos + b;
          row[2][k] = pos + c;
        }
      }
    }
    max_pos = std::max({max_pos, pos + g.t - 1, pos + g.h - 1, pos + g.w - 1});
    pos += std::max(g.h, g.w);  // the reference advances by the spatial extent only
    ++image;
    i = end;
  }
  if (image != grids.size()) {
    bad_input(std::to_string(grids.size()) + " image(s) but the prompt has " + std::to_string(image) +
              " image token run(s)");
  }
  return MropePositions{positions, max_pos + 1 - T};
}

// ============================== embeddings ==============================

MultimodalPrompt build_multimodal_prompt(std::span<const std::int64_t> prompt_ids, const at::Tensor& embed_tokens,
                                         const at::Tensor& image_embeds, const at::Tensor& grid_thw,
                                         const Qwen3_5VisionConfig& vision) {
  if (!embed_tokens.defined() || embed_tokens.dim() != 2) bad_input("embed_tokens must be [V, H]");
  const std::int64_t V = embed_tokens.size(0), H = embed_tokens.size(1);
  MultimodalPrompt out;
  out.input_ids = expand_image_placeholders(prompt_ids, grid_thw, vision);
  const auto T = std::int64_t(out.input_ids.size());
  std::int64_t num_image_tokens = 0;
  for (std::int64_t id : out.input_ids) {
    if (id < 0 || id >= V) bad_input("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                                     std::to_string(V) + ")");
    num_image_tokens += id == vision.image_token_id;
  }
  if (num_image_tokens > 0) {
    if (!image_embeds.defined() || image_embeds.dim() != 2 || image_embeds.size(0) != num_image_tokens ||
        image_embeds.size(1) != H) {
      bad_input("image_embeds must be [" + std::to_string(num_image_tokens) + ", " + std::to_string(H) +
                "] (the images' tokens x the language model's hidden size), got " +
                (image_embeds.defined() ? std::string(c10::str(image_embeds.sizes())) : std::string("undefined")));
    }
  }

  // Text rows from the table; image rows, in order, from the tower (the
  // reference's masked_scatter after casting the features to the embeddings' dtype).
  std::vector<std::int64_t> ids = out.input_ids;
  const at::Tensor ids_t =
      at::from_blob(ids.data(), {T}, at::TensorOptions().dtype(at::kLong)).to(embed_tokens.device());
  out.inputs_embeds = embed_tokens.index_select(0, ids_t);  // [T, H], a fresh tensor
  if (num_image_tokens > 0) {
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < T; ++i) {
      if (out.input_ids[std::size_t(i)] == vision.image_token_id) rows.push_back(i);
    }
    const at::Tensor rows_t = at::from_blob(rows.data(), {std::int64_t(rows.size())},
                                            at::TensorOptions().dtype(at::kLong))
                                  .to(embed_tokens.device());
    out.inputs_embeds.index_copy_(0, rows_t, image_embeds.to(embed_tokens.device(), embed_tokens.scalar_type()));
  }
  MropePositions pos = qwen3_5_rope_index(out.input_ids, grid_thw, vision);
  out.positions = pos.positions.to(embed_tokens.device());
  out.rope_delta = pos.rope_delta;
  return out;
}

}  // namespace mmgen::text

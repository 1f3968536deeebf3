// The Qwen2-VL image processor as the edit pipelines run it, and the
// pipelines' own resize of the condition image before it.
//
// Reference: transformers 5.23 models/qwen2_vl/image_processing_pil_qwen2_vl.py
// (Qwen2VLImageProcessorPil: without torchvision, which the pinned
// environment lacks, `Qwen2VLImageProcessor` / AutoImageProcessor resolve to
// it) and diffusers pipelines/qwenimage/pipeline_qwenimage_edit(_plus).py.
// Per image:
//   1. to RGB as PIL does: gray replicated, RGBA composited over white
//      (Image.alpha_composite, integer arithmetic);
//   2. smart_resize: both sides multiples of patch_size * merge_size (28),
//      area within [min_pixels, max_pixels], aspect kept; resized with PIL's
//      BICUBIC on 8-bit pixels (mmgen::media::resize is bit-exact with PIL);
//   3. x * rescale_factor in float64 -> float32, then (x - mean) / std in float32;
//   4. patchify: 2x2 merge blocks in raster order, each block's four patches
//      in raster order, each patch's features (C, T, P, P) with the still
//      image repeated over the temporal_patch_size frames.
// Before the processor the pipelines resize the input to a pixel budget with
// diffusers' VaeImageProcessor.resize (PIL LANCZOS): 1024² for
// QwenImageEditPipeline, 384² per image for QwenImageEditPlusPipeline.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <utility>
#include <vector>

#include "mmgen/media/image.hpp"
#include "mmgen/media/resize.hpp"

namespace cv {
class Mat;
}

namespace mmgen::image {

// preprocessor_config.json of a Qwen2VLImageProcessor (the pipeline's
// processor/ folder). Defaults are the class's; the published Qwen-Image-Edit
// file sets min_pixels 3136 and max_pixels 12845056.
struct QwenImageProcessorOptions {
  std::int64_t min_pixels = 56 * 56;         // size.shortest_edge
  std::int64_t max_pixels = 28 * 28 * 1280;  // size.longest_edge
  std::int64_t patch_size = 14;
  std::int64_t temporal_patch_size = 2;
  std::int64_t merge_size = 2;
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};   // OPENAI_CLIP_STD
  media::ResampleFilter resample = media::ResampleFilter::bicubic;          // PIL code 3

  std::int64_t factor() const { return patch_size * merge_size; }
  std::int64_t patch_dim() const { return 3 * temporal_patch_size * patch_size * patch_size; }
  // std::invalid_argument naming the field for a non-positive size, min > max,
  // a zero std.
  void validate() const;

  // <path>/preprocessor_config.json, or the file itself. "min_pixels" /
  // "max_pixels" override "size" {"shortest_edge", "longest_edge"} (or the
  // older {"min_pixels", "max_pixels"}), as the reference's constructor does;
  // "resample" is PIL's integer code. io::LoadError(bad_config) naming the key.
  static QwenImageProcessorOptions load(const std::filesystem::path& path);
};

struct ProcessedImages {
  at::Tensor pixel_values;  // [N, 3·T·P·P] float32, N = sum over images of h·w (in patches)
  at::Tensor grid_thw;      // [num_images, 3] int64: (1, h, w) in patches
};

// How many <|image_pad|> tokens the processor's text side expands each image's
// one placeholder into: t·h·w / merge_size² per grid_thw row.
std::vector<std::int64_t> image_token_counts(const at::Tensor& grid_thw, std::int64_t merge_size);

// The reference's smart_resize: returns (height, width). Python's round()
// (half to even), floor and ceil on the same double arithmetic.
// ProtocolError(invalid_request) when the aspect ratio exceeds 200 or a side is < 1.
std::pair<std::int64_t, std::int64_t> smart_resize(std::int64_t height, std::int64_t width, std::int64_t factor,
                                                   std::int64_t min_pixels, std::int64_t max_pixels);

// 8-bit images with 1 (gray), 3 (RGB) or 4 (RGBA) channels. Throws
// ProtocolError(invalid_request) for an empty list, an empty image, another
// channel count, an extreme aspect ratio, or (do_resize off) sides that are
// not multiples of patch_size * merge_size; std::invalid_argument for bad options.
ProcessedImages preprocess(std::span<const media::ImageView> images, const QwenImageProcessorOptions& opts);
ProcessedImages preprocess(const media::ImageView& image, const QwenImageProcessorOptions& opts);
// A uint8 tensor [H, W, C] (C = 1, 3, 4), channels in RGB(A) order, any device.
ProcessedImages preprocess(const at::Tensor& image_hwc, const QwenImageProcessorOptions& opts);
// A CV_8UC1 / CV_8UC3 / CV_8UC4 matrix whose channels are in RGB(A) order (as
// mmgen::media decodes; convert OpenCV's usual BGR with cv::cvtColor first).
ProcessedImages preprocess(const cv::Mat& image_rgb, const QwenImageProcessorOptions& opts);

// ---- the pipelines' condition image ------------------------------------------

inline constexpr std::int64_t kEditConditionArea = 1024 * 1024;     // QwenImageEditPipeline
inline constexpr std::int64_t kEditPlusConditionArea = 384 * 384;  // QwenImageEditPlusPipeline (CONDITION_IMAGE_SIZE)

// diffusers' calculate_dimensions: width = sqrt(area · ratio), height = width /
// ratio, each rounded (half to even) to a multiple of 32. Returns (width, height).
// ProtocolError(invalid_request) when a side rounds to 0.
std::pair<std::int64_t, std::int64_t> calculate_dimensions(double target_area, double ratio);

// The image the pipeline hands the processor: resized with PIL LANCZOS (the
// VaeImageProcessor default) to calculate_dimensions(target_area, width /
// height) of the input. Channels are kept (RGBA stays RGBA, as the PIL image does).
media::Image condition_image(const media::ImageView& image, std::int64_t target_area);

}  // namespace mmgen::image

// Image input for the Qwen3.5 language model: the image processor's settings,
// placeholder expansion, the embedding scatter and the interleaved M-RoPE
// positions — what transformers' Qwen3VLProcessor (text side) and
// Qwen3_5Model.forward / get_rope_index do between the chat template and the
// language model.
//
// The chat template renders each image as
//   <|vision_start|><|image_pad|><|vision_end|>
// with ONE <|image_pad|>; the processor repeats it t·h·w / merge² times (the
// image's merged token count) and the model overwrites those rows of the
// token embeddings with the tower's output, image after image.
//
// Positions (get_rope_index, images only): text tokens count up by one on all
// three rows; the tokens of an image with merged grid (t, h', w') starting at
// position s get (s + frame, s + row, s + column); the text after it resumes
// at s + max(h', w'). rope_delta = max(position) + 1 - T; a token at sequence
// index p >= T (decode) then has position p + rope_delta on all three rows,
// which is what transformers uses for generated tokens. The language model
// applies the rows as interleaved M-RoPE (mrope_section [11, 11, 10]).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "mmgen/image/qwen_image_processor.hpp"
#include "mmgen/text/qwen3_5_vision.hpp"

namespace mmgen::text {

// The Qwen2-VL image processor as Qwen3.5's published preprocessor_config.json
// sets it: patch 16 (factor 32 with the 2x2 merge), mean = std = (0.5, 0.5,
// 0.5), pixel budget [65536, 16777216] (size.shortest_edge / longest_edge),
// bicubic resize, rescale 1/255. preprocess() is mmgen::image::preprocess
// (PIL-exact resize; gray / RGBA converted to RGB as PIL does).
image::QwenImageProcessorOptions qwen3_5_processor_defaults();
// <folder>/preprocessor_config.json when present, read as transformers reads it
// (image::QwenImageProcessorOptions::load: keys missing from the file take the
// Qwen2VLImageProcessor class defaults, as in the reference), else the Qwen3.5
// defaults above. io::LoadError(bad_config) naming
// the key for a malformed file. Throws std::invalid_argument when its
// patch_size / temporal_patch_size / merge_size disagree with the tower's config.
image::QwenImageProcessorOptions load_qwen3_5_processor(const std::filesystem::path& folder,
                                                        const Qwen3_5VisionConfig& vision);

// Images (8-bit, 1 / 3 / 4 channels) -> pixel_values [N, 1536] float32 and
// grid_thw [I, 3]; ProtocolError(invalid_request) for an empty list, an empty
// image, another channel count or an aspect ratio beyond 200.
image::ProcessedImages preprocess_images(std::span<const media::ImageView> images,
                                         const image::QwenImageProcessorOptions& opts);

// Merged tokens per image: t·h·w / merge² per grid_thw row.
std::vector<std::int64_t> image_token_counts(const at::Tensor& grid_thw, const Qwen3_5VisionConfig& vision);

// The prompt with each single image_token_id repeated to its image's token
// count (image i takes grid_thw row i). ProtocolError(invalid_request) when
// the number of image_token_id in prompt_ids differs from the number of
// images, or when the prompt holds video_token_id (video input is not
// supported).
std::vector<std::int64_t> expand_image_placeholders(std::span<const std::int64_t> prompt_ids,
                                                    const at::Tensor& grid_thw, const Qwen3_5VisionConfig& vision);

struct MropePositions {
  at::Tensor positions;     // [3, T] int64 (CPU)
  std::int64_t rope_delta;  // max(positions) + 1 - T
};
// get_rope_index for one unpadded sequence of EXPANDED ids (each image one run
// of image_token_id of its token count). ProtocolError(invalid_request) when
// the runs and grid_thw rows disagree. Without images: 0..T-1 on every row, delta 0.
MropePositions qwen3_5_rope_index(std::span<const std::int64_t> input_ids, const at::Tensor& grid_thw,
                                  const Qwen3_5VisionConfig& vision);

struct MultimodalPrompt {
  std::vector<std::int64_t> input_ids;  // expanded: the ids the sequence holds (length T)
  at::Tensor inputs_embeds;             // [T, H] in embed_tokens' dtype, on its device
  at::Tensor positions;                 // [3, T] int64, on embed_tokens' device
  std::int64_t rope_delta = 0;          // decode token at index p >= T: position p + rope_delta
};

// The whole prompt side in one call. prompt_ids: the chat template's ids with
// one image_token_id per image; embed_tokens: the language model's table
// [V, H] (Qwen3_5Model::embed_tokens()); image_embeds: the tower's output for
// the same images [sum of token counts, H]; grid_thw as the processor gave it.
// Text rows are the embedding rows of their ids; image rows are image_embeds
// (cast to the table's dtype) in order. ProtocolError(invalid_request) for a
// placeholder / image count mismatch, ids outside the vocabulary, or
// image_embeds of the wrong shape.
MultimodalPrompt build_multimodal_prompt(std::span<const std::int64_t> prompt_ids, const at::Tensor& embed_tokens,
                                         const at::Tensor& image_embeds, const at::Tensor& grid_thw,
                                         const Qwen3_5VisionConfig& vision);

}  // namespace mmgen::text

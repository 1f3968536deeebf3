// M-RoPE positions of a Qwen2.5-VL prompt that holds images: transformers'
// Qwen2_5_VLModel.get_rope_index (images only). Text tokens count up by one
// on all three rows; each run of image placeholder tokens takes the image's
// merged grid (t, h / m, w / m): row 0 the frame, row 1 the grid row, row 2
// the grid column, all offset by the position where the run starts; the text
// after it resumes at start + max(h, w) / m.
//
// Which positions the image pipelines actually use: diffusers 0.42.1's
// QwenImageEdit(Plus)Pipeline calls the text encoder without
// mm_token_type_ids, and transformers 5.23 then computes no M-RoPE index and
// uses 0..T-1 on all three rows (sequential positions, images included). This
// function is the model's own rule (what transformers uses when the processor's
// mm_token_type_ids are passed, e.g. in generation).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>

namespace mmgen::image {

struct MropeIndex {
  at::Tensor positions;      // [3, T] int64
  std::int64_t delta = 0;    // max(positions) + 1 - T (the reference's mrope_position_deltas)
};

// input_ids [T] int64 (one unpadded sequence); image_grid_thw [I, 3] int64 in
// patches, one row per run of image_token_id in order. Throws
// ProtocolError(invalid_request) when the runs and the grids disagree (count,
// or a run's length != t·h·w / m²), or for malformed tensors.
MropeIndex qwen2_5_vl_rope_index(const at::Tensor& input_ids, const at::Tensor& image_grid_thw,
                                 std::int64_t image_token_id, std::int64_t spatial_merge_size);

}  // namespace mmgen::image

// The Qwen3.5 vision tower (transformers 5.23 models/qwen3_5/modeling_qwen3_5.py,
// Qwen3_5VisionModel), which turns the image processor's patches into the
// embeddings that replace a prompt's <|image_pad|> tokens. Member names are
// the checkpoint keys under "model.visual." (transformers 5 save_pretrained,
// the published Qwen3.5 files) or "visual.":
//
//   patch_embed.proj        Conv3d C -> E, kernel = stride = (T, P, P), with bias
//   pos_embed               Embedding [num_position_embeddings, E]: a square
//                           learned table resampled bilinearly (align_corners)
//                           to each image's patch grid
//   blocks.N.norm1 / norm2  LayerNorm(E), eps 1e-6
//   blocks.N.attn.qkv/proj  Linear E -> 3E / E -> E with bias; 2D (row, column)
//                           rotary on q, k; full attention within each image
//   blocks.N.mlp.linear_fc1 / linear_fc2   E -> I -> E, hidden_act (GELU-tanh as published)
//   merger.norm             LayerNorm(E) before the 2x2 merge
//   merger.linear_fc1/fc2   4E -> 4E, GELU (erf), 4E -> out_hidden_size
//
// Unlike Qwen2.5-VL there is no window attention, and unlike Qwen3-VL no
// deepstack mergers (Qwen3_5VisionModel has neither; their keys are not in
// the checkpoints). Patches stay in the processor's order (2x2 merge blocks in
// raster order) from start to end, so the merged output is in raster order.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "mmgen/io/checkpoint.hpp"

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::text {

// vision_config of a Qwen3_5ForConditionalGeneration / Qwen3_5Moe... config.json
// with the defaults of transformers' Qwen3_5VisionConfig, plus the outer
// config's vision token ids (defaults: Qwen3_5Config's).
struct Qwen3_5VisionConfig {
  std::int64_t depth = 27;
  std::int64_t hidden_size = 1152;
  std::string hidden_act = "gelu_pytorch_tanh";
  std::int64_t intermediate_size = 4304;
  std::int64_t num_heads = 16;
  std::int64_t in_channels = 3;
  std::int64_t patch_size = 16;
  std::int64_t spatial_merge_size = 2;
  std::int64_t temporal_patch_size = 2;
  std::int64_t out_hidden_size = 3584;
  std::int64_t num_position_embeddings = 2304;  // 48 x 48
  double rope_theta = 10000.0;                  // rope_parameters (axial)

  std::int64_t image_token_id = 248056;         // <|image_pad|>
  std::int64_t video_token_id = 248057;         // <|video_pad|>
  std::int64_t vision_start_token_id = 248053;  // <|vision_start|>
  std::int64_t vision_end_token_id = 248054;    // <|vision_end|>

  std::int64_t head_dim() const { return hidden_size / num_heads; }
  std::int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  std::int64_t merge_unit() const { return spatial_merge_size * spatial_merge_size; }
  // Side of the square position table: int(sqrt(num_position_embeddings)).
  std::int64_t num_grid_per_side() const;

  // <folder>/config.json (or the file): the outer config with "vision_config".
  // LoadError(bad_config) naming the key for a missing vision_config, a
  // non-positive size, hidden_size not divisible by num_heads, a head_dim not
  // a multiple of 4, a non-square position table; LoadError(unsupported) for
  // an activation other than gelu_pytorch_tanh / gelu / gelu_new / silu or a
  // rope type other than axial.
  static Qwen3_5VisionConfig load(const std::filesystem::path& path);
  static Qwen3_5VisionConfig from_hf(const io::HfConfig& cfg);
};

// Bilinear resampling of the position table to a batch of grids
// (vision_utils.get_vision_interpolation_indices_and_weights, bilinear,
// align_corners=True, merge-block patch order): per patch four table rows
// and float32 weights, taps ordered (top-left, top-right, bottom-left,
// bottom-right).
struct PositionInterpolation {
  at::Tensor indices;  // [N, 4] int64 into pos_embed
  at::Tensor weights;  // [N, 4] float32
};
PositionInterpolation interpolate_positions(const Qwen3_5VisionConfig& cfg, const at::Tensor& grid_thw);

struct VisionLinear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]
  at::Tensor operator()(const at::Tensor& x) const;
};

struct VisionLayerNorm {
  at::Tensor weight, bias;  // [E]
  double eps = 1e-6;        // fixed in the reference
  at::Tensor operator()(const at::Tensor& x) const;
};

struct Qwen3_5VisionPatchEmbed {  // patch_embed
  // proj.weight [E, C, T, P, P], kept flattened to [E, C·T·P·P]: a Conv3d
  // whose stride equals its kernel, over one patch, is this matmul.
  VisionLinear proj;
};

struct Qwen3_5VisionAttention {  // blocks.N.attn
  VisionLinear qkv;   // [3E, E]: q, k, v stacked, each split into heads
  VisionLinear proj;  // [E, E]
};

struct Qwen3_5VisionMlp {  // blocks.N.mlp
  VisionLinear linear_fc1;  // [I, E]
  VisionLinear linear_fc2;  // [E, I]
};

struct Qwen3_5VisionBlock {  // blocks.N
  VisionLayerNorm norm1, norm2;
  Qwen3_5VisionAttention attn;
  Qwen3_5VisionMlp mlp;
};

struct Qwen3_5VisionPatchMerger {  // merger (use_postshuffle_norm = False)
  VisionLayerNorm norm;     // [E], applied before the 2x2 merge
  VisionLinear linear_fc1;  // [4E, 4E]
  VisionLinear linear_fc2;  // [out_hidden_size, 4E]
};

class Qwen3_5VisionModel {
 public:
  // Loads <folder>/config.json and the model's safetensors (single or
  // sharded), the tower's tensors only (language model, lm_head and mtp.*
  // are skipped), floating tensors converted to opts.dtype on opts.device.
  // Throws io::LoadError naming the file and tensor for a missing /
  // misshapen / unexpected tensor under the tower's prefix.
  static Qwen3_5VisionModel load(const std::filesystem::path& folder, const io::LoadOptions& opts);
  // Takes "<prefix>patch_embed.proj.*", "<prefix>pos_embed.weight",
  // "<prefix>blocks.N....", "<prefix>merger...." from an open loader (the caller
  // skips the rest and calls finish()).
  Qwen3_5VisionModel(const Qwen3_5VisionConfig& cfg, io::WeightLoader& weights, const std::string& prefix);
  // "model.visual." when the checkpoint has it (transformers 5), else "visual.".
  static std::string key_prefix(const io::WeightLoader& weights);

  // pixel_values [N, C·T·P·P] (the processor's output; any floating dtype,
  // cast to the model's); grid_thw [I, 3] integer (t, h, w in patches) with
  // sum(t·h·w) = N. Returns the merged embeddings [N / 4, out_hidden_size],
  // image after image, each in raster order, in the model dtype — the
  // reference's pooler_output. ProtocolError(invalid_request) for inconsistent
  // shapes or a malformed grid.
  at::Tensor forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw) const;

  const Qwen3_5VisionConfig& config() const { return cfg_; }
  c10::ScalarType dtype() const { return patch_embed.proj.weight.scalar_type(); }
  c10::Device device() const { return patch_embed.proj.weight.device(); }

  Qwen3_5VisionPatchEmbed patch_embed;
  at::Tensor pos_embed;  // pos_embed.weight [num_position_embeddings, E]
  std::vector<Qwen3_5VisionBlock> blocks;
  Qwen3_5VisionPatchMerger merger;

 private:
  at::Tensor attention(const Qwen3_5VisionAttention& a, const at::Tensor& x, const at::Tensor& cos,
                       const at::Tensor& sin, const std::vector<std::int64_t>& cu_seqlens) const;
  at::Tensor mlp(const Qwen3_5VisionMlp& m, const at::Tensor& x) const;

  Qwen3_5VisionConfig cfg_;
};

}  // namespace mmgen::text

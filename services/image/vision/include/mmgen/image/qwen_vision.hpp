// The Qwen2.5-VL vision tower (transformers' modeling_qwen2_5_vl.py,
// Qwen2_5_VisionTransformerPretrainedModel), which turns the image processor's
// patches into the embeddings that replace the <|image_pad|> tokens of an
// edit prompt. Member names are the checkpoint keys under "visual."
// (published) or "model.visual." (transformers 5 save_pretrained):
//
//   patch_embed.proj           Conv3d C -> E, kernel = stride = (T, P, P), no bias
//   blocks.N.norm1 / norm2     RMSNorm(E), eps 1e-6
//   blocks.N.attn.qkv / proj   Linear E -> 3E / E -> E, with bias; 2D rotary on q, k
//   blocks.N.mlp.{gate,up,down}_proj   SwiGLU with bias
//   merger.ln_q                RMSNorm(E) before the 2x2 merge
//   merger.mlp.0 / mlp.2       Linear 4E -> 4E, GELU (erf), Linear 4E -> out_hidden_size
//
// Attention runs inside windows of window_size pixels (in merged-token units)
// except in fullatt_block_indexes, where it spans each image (each frame).
// Tokens are reordered window by window before the blocks and the merged
// output is put back in raster order, as the reference does.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "mmgen/io/checkpoint.hpp"

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::image {

// vision_config of a Qwen2_5_VLForConditionalGeneration config.json, with the
// defaults of transformers' Qwen2_5_VLVisionConfig (the published Qwen-Image
// text encoder overrides most: depth 32, hidden 1280, out 3584, window 112).
struct QwenVisionConfig {
  std::int64_t depth = 32;
  std::int64_t hidden_size = 3584;
  std::string hidden_act = "silu";
  std::int64_t intermediate_size = 3420;
  std::int64_t num_heads = 16;
  std::int64_t in_channels = 3;  // published as "in_chans"
  std::int64_t patch_size = 14;
  std::int64_t spatial_merge_size = 2;
  std::int64_t temporal_patch_size = 2;
  std::int64_t tokens_per_second = 4;
  std::int64_t window_size = 112;
  std::int64_t out_hidden_size = 3584;
  std::vector<std::int64_t> fullatt_block_indexes = {7, 15, 23, 31};
  double rope_theta = 10000.0;  // rope_parameters.rope_theta (axial rope)

  // Token ids of the outer config, which the prompt side needs with the tower.
  std::int64_t image_token_id = 151655;
  std::int64_t video_token_id = 151656;
  std::int64_t vision_start_token_id = 151652;
  std::int64_t vision_end_token_id = 151653;

  std::int64_t head_dim() const { return hidden_size / num_heads; }
  // Features of one flattened patch: C * T * P * P (1176 as published).
  std::int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  std::int64_t merge_unit() const { return spatial_merge_size * spatial_merge_size; }
  bool is_full_attention(std::int64_t block) const;

  // <folder>/config.json (or the file itself): the outer Qwen2.5-VL config
  // with its "vision_config". LoadError(bad_config) naming the key when a
  // value is missing, mistyped or inconsistent (e.g. hidden_size not divisible
  // by num_heads, a head_dim not divisible by 4, a fullatt index >= depth);
  // LoadError(unsupported) for an activation other than silu.
  static QwenVisionConfig load(const std::filesystem::path& path);
  // From the outer config (reads its "vision_config" and token ids).
  static QwenVisionConfig from_hf(const io::HfConfig& cfg);
};

// One image's patch grid: frames (temporal patches), rows and columns of patches.
struct VisionGrid {
  std::int64_t t, h, w;
};

// grid_thw [I, 3] integers on any device, checked: t, h, w positive, h and w
// multiples of merge_size, each at most 65,536. Throws
// ProtocolError(invalid_request) whose message starts with `who`. Shared by
// the Qwen2.5-VL and Qwen3.5 towers, whose processors emit the same grid.
std::vector<VisionGrid> read_vision_grid(const at::Tensor& grid_thw, std::int64_t merge_size, std::string_view who);

// How the tower lays out the patches of a batch of images (vision_utils.py:
// get_vision_position_ids, get_vision_attention_seqlens, get_vision_window_index).
// Patch n of the processor's output belongs to merge block n / 4.
struct VisionLayout {
  at::Tensor position_ids;   // [N, 2] int64: (row, column) of each patch, raster order
  at::Tensor window_index;   // [N / 4] int64: merge blocks in window order (all images)
  std::vector<std::int64_t> cu_seqlens;         // full attention: one segment per image frame
  std::vector<std::int64_t> cu_window_seqlens;  // window attention, in window order, no empty windows
};
// grid_thw [I, 3] int64 on any device. Throws ProtocolError(invalid_request) for a
// grid that is not [I, 3], has a non-positive entry, or h / w not divisible by
// the merge size.
VisionLayout vision_layout(const QwenVisionConfig& cfg, const at::Tensor& grid_thw);

struct VisionLinear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out]
  at::Tensor operator()(const at::Tensor& x) const;
};

struct VisionRMSNorm {
  at::Tensor weight;  // [E]
  double eps = 1e-6;  // fixed in the reference (not read from the config)
  at::Tensor operator()(const at::Tensor& x) const;
};

struct VisionAttention {  // blocks.N.attn
  VisionLinear qkv;   // [3E, E]: q, k, v stacked, each split into heads
  VisionLinear proj;  // [E, E]
};

struct VisionMlp {  // blocks.N.mlp
  // gate_proj and up_proj [I, E] with their biases, stacked at load into one
  // [2I, E] matmul whose output silu_and_mul splits (act(gate(x)) * up(x)).
  VisionLinear gate_up_proj;
  VisionLinear down_proj;  // [E, I]
  at::Tensor operator()(const at::Tensor& x) const;
};

struct VisionBlock {  // blocks.N
  VisionRMSNorm norm1, norm2;
  VisionAttention attn;
  VisionMlp mlp;
};

struct PatchMerger {  // merger
  VisionRMSNorm ln_q;  // [E]
  VisionLinear mlp_0;  // merger.mlp.0: [4E, 4E]
  VisionLinear mlp_2;  // merger.mlp.2: [out_hidden_size, 4E]
};

class QwenVisionTower {
 public:
  // Loads <folder>/config.json and the model's safetensors (single or
  // sharded), the tower's tensors only (the language model and lm_head are
  // skipped), every floating tensor converted to opts.dtype on opts.device.
  // Accepts both "visual." and "model.visual." keys. Throws io::LoadError
  // naming the file and tensor for a missing / misshapen / unexpected tensor.
  static QwenVisionTower load(const std::filesystem::path& folder, const io::LoadOptions& opts);
  // Takes "<prefix>patch_embed.proj.weight", "<prefix>blocks.N....", "<prefix>merger...."
  // from an open loader (the caller calls finish()).
  QwenVisionTower(const QwenVisionConfig& cfg, io::WeightLoader& weights, const std::string& prefix);
  // "model.visual." when the checkpoint has it (transformers 5), else "visual.".
  static std::string key_prefix(const io::WeightLoader& weights);

  // pixel_values [N, C·T·P·P] float (the processor's output, any floating dtype,
  // cast to the model's); grid_thw [I, 3] int64 (t, h, w in patches per image)
  // with sum(t·h·w) = N. Returns the merged embeddings [N / 4, out_hidden_size]
  // in raster order, image after image, in the model dtype.
  // ProtocolError(invalid_request) for inconsistent shapes.
  at::Tensor forward(const at::Tensor& pixel_values, const at::Tensor& grid_thw) const;

  const QwenVisionConfig& config() const { return cfg_; }
  c10::ScalarType dtype() const { return patch_embed_proj_.scalar_type(); }
  c10::Device device() const { return patch_embed_proj_.device(); }

 private:
  at::Tensor attention(const VisionAttention& a, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       const std::vector<std::int64_t>& cu_seqlens) const;

  QwenVisionConfig cfg_;
  // patch_embed.proj.weight [E, C, T, P, P], kept flattened to [E, C·T·P·P]:
  // a stride-equal-kernel Conv3d over one patch is this matmul.
  at::Tensor patch_embed_proj_;
  std::vector<VisionBlock> blocks_;
  PatchMerger merger_;
};

}  // namespace mmgen::image

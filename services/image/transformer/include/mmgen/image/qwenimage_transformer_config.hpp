// config.json of diffusers' QwenImageTransformer2DModel as one typed struct.
// Field names are the config keys and defaults are the reference constructor's
// (the published Qwen/Qwen-Image values). Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::image {

struct QwenImageTransformerConfig {
  std::int64_t patch_size = 2;
  std::int64_t in_channels = 64;   // packed latents: 16 VAE channels x 2 x 2
  std::int64_t out_channels = 16;  // proj_out gives patch_size^2 * out_channels
  std::int64_t num_layers = 60;
  std::int64_t attention_head_dim = 128;
  std::int64_t num_attention_heads = 24;
  std::int64_t joint_attention_dim = 3584;                  // width of the text encoder's hidden states
  std::vector<std::int64_t> axes_dims_rope = {16, 56, 56};  // (frame, height, width); sums to the head dim
  // Edit-2511: reference-image tokens are modulated with the embedding of t = 0.
  bool zero_cond_t = false;

  // Accepted only when false: the reference constructor builds no guidance
  // embedder (its forward cannot take a guidance value), and the Qwen-Image-
  // Layered options (additional_t_cond embedding, layer-3D RoPE) are not ported.
  bool guidance_embeds = false;
  bool use_additional_t_cond = false;
  bool use_layer3d_rope = false;

  std::int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  std::int64_t out_dim() const { return patch_size * patch_size * out_channels; }

  // Reads <folder>/config.json (or the file). Throws io::LoadError: bad_config for
  // a wrong type or an inconsistent value, unsupported for another _class_name
  // or an option not ported (see above).
  static QwenImageTransformerConfig load(const std::filesystem::path& path);
  static QwenImageTransformerConfig from_hf(const io::HfConfig& cfg);
};

}  // namespace mmgen::image

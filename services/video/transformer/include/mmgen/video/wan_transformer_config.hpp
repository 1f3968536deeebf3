// WanTransformer3DModel's config.json (diffusers' transformer_wan.py) as one
// typed struct. Field names are the config keys and defaults are the
// reference constructor's, so a published `transformer/config.json` of
// Wan2.1-T2V/I2V, Wan2.2-T2V/I2V-A14B or Wan2.2-TI2V-5B fills it as is.
// Derived sizes (inner dim, the RoPE split of the head dim) are computed here
// in one place. Torch-free.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::video {

struct WanTransformerConfig {
  std::array<std::int64_t, 3> patch_size{1, 2, 2};  // (t, h, w)
  std::int64_t num_attention_heads = 40;
  std::int64_t attention_head_dim = 128;
  std::int64_t in_channels = 16;
  std::int64_t out_channels = 16;  // null, 0 or absent in config.json: in_channels
  std::int64_t text_dim = 4096;
  std::int64_t freq_dim = 256;
  std::int64_t ffn_dim = 13824;
  std::int64_t num_layers = 40;
  bool cross_attn_norm = true;
  // The reference reads but never acts on it: every attention has q/k RMSNorm
  // across all heads whatever it says. Kept for round-tripping only.
  std::string qk_norm = "rms_norm_across_heads";
  double eps = 1e-6;
  std::optional<std::int64_t> image_dim;          // Wan 2.1 I2V: CLIP image features (1280)
  std::optional<std::int64_t> added_kv_proj_dim;  // Wan 2.1 I2V: add_k_proj / add_v_proj input (= inner dim)
  std::int64_t rope_max_seq_len = 1024;           // rows of the reference's RoPE tables per axis
  std::optional<std::int64_t> pos_embed_seq_len;  // Wan 2.1 FLF2V: learned image pos_embed length

  // ---- derived ----
  std::int64_t inner_dim() const { return num_attention_heads * attention_head_dim; }
  std::int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }
  // RoPE features per axis: h = w = 2 * (d / 6), t takes the rest (128 -> 44/42/42).
  std::int64_t rope_h_dim() const { return 2 * (attention_head_dim / 6); }
  std::int64_t rope_w_dim() const { return rope_h_dim(); }
  std::int64_t rope_t_dim() const { return attention_head_dim - rope_h_dim() - rope_w_dim(); }
  bool has_image_embedder() const { return image_dim.has_value(); }
  bool has_added_kv() const { return added_kv_proj_dim.has_value(); }

  // Throws io::LoadError(bad_config) naming `source` and the key when a value
  // is out of range or the sizes cannot make a model.
  void validate(const std::string& source) const;

  static WanTransformerConfig from_hf(const io::HfConfig& cfg);
  // <folder>/config.json (or the file itself).
  static WanTransformerConfig load(const std::filesystem::path& path);
};

}  // namespace mmgen::video

// QwenImageTransformerConfig from config.json (qwenimage_transformer_config.hpp).
#include "mmgen/image/qwenimage_transformer_config.hpp"

#include <numeric>
#include <string>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::image {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

QwenImageTransformerConfig QwenImageTransformerConfig::load(const std::filesystem::path& path) {
  return from_hf(HfConfig::load(path));
}

QwenImageTransformerConfig QwenImageTransformerConfig::from_hf(const HfConfig& c) {
  const std::string cls = c.get_string("_class_name", "QwenImageTransformer2DModel");
  if (cls != "QwenImageTransformer2DModel") {
    throw LoadError(LoadErrorKind::unsupported,
                    c.source() + ": _class_name '" + cls + "' is not QwenImageTransformer2DModel");
  }
  QwenImageTransformerConfig cfg;
  cfg.patch_size = c.get_int("patch_size", cfg.patch_size);
  cfg.in_channels = c.get_int("in_channels", cfg.in_channels);
  // The reference takes `out_channels or in_channels`; diffusers writes every
  // constructor argument, so a null here was None there (an absent key is
  // read the same way, where the constructor would give 16).
  cfg.out_channels = c.get_int("out_channels", 0);
  if (cfg.out_channels == 0) cfg.out_channels = cfg.in_channels;
  cfg.num_layers = c.get_int("num_layers", cfg.num_layers);
  cfg.attention_head_dim = c.get_int("attention_head_dim", cfg.attention_head_dim);
  cfg.num_attention_heads = c.get_int("num_attention_heads", cfg.num_attention_heads);
  cfg.joint_attention_dim = c.get_int("joint_attention_dim", cfg.joint_attention_dim);
  cfg.axes_dims_rope = c.get_int_list("axes_dims_rope", cfg.axes_dims_rope);
  cfg.zero_cond_t = c.get_bool("zero_cond_t", false);
  cfg.guidance_embeds = c.get_bool("guidance_embeds", false);
  cfg.use_additional_t_cond = c.get_bool("use_additional_t_cond", false);
  cfg.use_layer3d_rope = c.get_bool("use_layer3d_rope", false);

  auto positive = [&](const char* key, std::int64_t v) {
    if (v <= 0) c.fail(key, "must be positive, got " + std::to_string(v));
  };
  positive("patch_size", cfg.patch_size);
  positive("in_channels", cfg.in_channels);
  positive("out_channels", cfg.out_channels);
  positive("num_layers", cfg.num_layers);
  positive("attention_head_dim", cfg.attention_head_dim);
  positive("num_attention_heads", cfg.num_attention_heads);
  positive("joint_attention_dim", cfg.joint_attention_dim);
  if (cfg.axes_dims_rope.size() != 3) {
    c.fail("axes_dims_rope",
           "must hold 3 values (frame, height, width), got " + std::to_string(cfg.axes_dims_rope.size()));
  }
  for (std::int64_t d : cfg.axes_dims_rope) {
    if (d <= 0 || d % 2 != 0) c.fail("axes_dims_rope", "values must be positive and even, got " + std::to_string(d));
  }
  const std::int64_t rope_dim = std::accumulate(cfg.axes_dims_rope.begin(), cfg.axes_dims_rope.end(), std::int64_t{0});
  if (rope_dim != cfg.attention_head_dim) {
    c.fail("axes_dims_rope", "must sum to attention_head_dim " + std::to_string(cfg.attention_head_dim) + ", got " +
                                 std::to_string(rope_dim));
  }
  const auto not_ported = [&](const char* key, bool on, const char* why) {
    if (on) throw LoadError(LoadErrorKind::unsupported, c.source() + ": '" + key + "' true is not supported: " + why);
  };
  not_ported("guidance_embeds", cfg.guidance_embeds,
             "the reference QwenImageTransformer2DModel has no guidance embedder");
  not_ported("use_additional_t_cond", cfg.use_additional_t_cond, "Qwen-Image-Layered is not ported");
  not_ported("use_layer3d_rope", cfg.use_layer3d_rope, "Qwen-Image-Layered is not ported");
  return cfg;
}

}  // namespace mmgen::image

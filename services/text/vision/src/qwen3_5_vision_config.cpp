// config.json -> Qwen3_5VisionConfig, mirroring transformers'
// configuration_qwen3_5.py (Qwen3_5VisionConfig and the outer Qwen3_5Config's
// token ids; Qwen3_5MoeConfig has the same vision part).
#include <cmath>
#include <optional>
#include <string>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "mmgen/text/qwen3_5_vision.hpp"

namespace mmgen::text {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

std::int64_t Qwen3_5VisionConfig::num_grid_per_side() const {
  return std::int64_t(std::sqrt(double(num_position_embeddings)));
}

Qwen3_5VisionConfig Qwen3_5VisionConfig::load(const std::filesystem::path& path) {
  return from_hf(HfConfig::load(path));
}

Qwen3_5VisionConfig Qwen3_5VisionConfig::from_hf(const HfConfig& top) {
  std::optional<HfConfig> vc = top.sub("vision_config");
  if (!vc) top.fail("vision_config", "is required: the checkpoint has no vision tower configuration");
  const HfConfig& v = *vc;
  Qwen3_5VisionConfig c;
  auto positive = [&](std::string_view key, std::int64_t def) {
    const std::int64_t x = v.get_int(key, def);
    if (x <= 0) v.fail(key, "must be positive, got " + std::to_string(x));
    return x;
  };
  // "num_hidden_layers" / "num_attention_heads" are the class's attribute_map aliases.
  c.depth = v.has("depth") ? v.get_int("depth") : v.get_int("num_hidden_layers", c.depth);
  if (c.depth < 0) v.fail("depth", "must not be negative");
  c.hidden_size = positive("hidden_size", c.hidden_size);
  c.hidden_act = v.get_string("hidden_act", c.hidden_act);
  c.intermediate_size = positive("intermediate_size", c.intermediate_size);
  c.num_heads = v.has("num_heads") ? positive("num_heads", c.num_heads) : positive("num_attention_heads", c.num_heads);
  c.in_channels = v.has("in_channels") ? positive("in_channels", c.in_channels) : positive("in_chans", c.in_channels);
  c.patch_size = positive("patch_size", c.patch_size);
  c.spatial_merge_size = positive("spatial_merge_size", c.spatial_merge_size);
  c.temporal_patch_size = positive("temporal_patch_size", c.temporal_patch_size);
  c.out_hidden_size = positive("out_hidden_size", c.out_hidden_size);
  c.num_position_embeddings = positive("num_position_embeddings", c.num_position_embeddings);
  if (std::optional<HfConfig> rp = v.sub("rope_parameters")) {
    c.rope_theta = rp->get_double("rope_theta", c.rope_theta);
    const std::string type = rp->get_string("rope_type", "axial");
    if (type != "axial") {
      throw LoadError(LoadErrorKind::unsupported,
                      v.source() + ": vision_config.rope_parameters.rope_type '" + type + "' (only axial)");
    }
  } else {
    c.rope_theta = v.get_double("rope_theta", c.rope_theta);
  }
  if (!(c.rope_theta > 0)) v.fail("rope_theta", "must be positive");

  if (c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "gelu" && c.hidden_act != "gelu_new" &&
      c.hidden_act != "silu") {
    throw LoadError(LoadErrorKind::unsupported, v.source() + ": vision_config.hidden_act '" + c.hidden_act +
                                                    "' is not supported (gelu_pytorch_tanh, gelu, gelu_new, silu)");
  }
  if (c.hidden_size % c.num_heads != 0) {
    v.fail("hidden_size", "must be divisible by num_heads (" + std::to_string(c.num_heads) + ")");
  }
  // The 2D rotary gives head_dim / 4 frequencies to each of row and column.
  if (c.head_dim() % 4 != 0) {
    v.fail("num_heads", "gives head_dim " + std::to_string(c.head_dim()) + ", which must be a multiple of 4");
  }
  const std::int64_t side = c.num_grid_per_side();
  if (side * side != c.num_position_embeddings) {
    v.fail("num_position_embeddings", "must be a square (the table is side x side), got " +
                                          std::to_string(c.num_position_embeddings));
  }

  // Token ids live on the outer config.
  c.image_token_id = top.get_int("image_token_id", c.image_token_id);
  c.video_token_id = top.get_int("video_token_id", c.video_token_id);
  c.vision_start_token_id = top.get_int("vision_start_token_id", c.vision_start_token_id);
  c.vision_end_token_id = top.get_int("vision_end_token_id", c.vision_end_token_id);
  return c;
}

}  // namespace mmgen::text

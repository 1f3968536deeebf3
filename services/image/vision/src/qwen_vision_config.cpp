// config.json -> QwenVisionConfig, mirroring transformers'
// configuration_qwen2_5_vl.py (Qwen2_5_VLVisionConfig and the outer
// Qwen2_5_VLConfig's token ids). Published text_encoder/config.json files
// spell the input channels "in_chans" and carry no rope parameters for the
// tower (the class default: axial rope, theta 10000).
#include <algorithm>
#include <string>

#include "mmgen/image/qwen_vision.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::image {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

bool QwenVisionConfig::is_full_attention(std::int64_t block) const {
  return std::find(fullatt_block_indexes.begin(), fullatt_block_indexes.end(), block) != fullatt_block_indexes.end();
}

QwenVisionConfig QwenVisionConfig::load(const std::filesystem::path& path) { return from_hf(HfConfig::load(path)); }

QwenVisionConfig QwenVisionConfig::from_hf(const HfConfig& top) {
  std::optional<HfConfig> vc = top.sub("vision_config");
  if (!vc) top.fail("vision_config", "is required: the checkpoint has no vision tower configuration");
  const HfConfig& v = *vc;
  QwenVisionConfig c;
  auto positive = [&](std::string_view key, std::int64_t def) {
    const std::int64_t x = v.get_int(key, def);
    if (x <= 0) v.fail(key, "must be positive, got " + std::to_string(x));
    return x;
  };
  c.depth = v.get_int("depth", c.depth);
  if (c.depth < 0) v.fail("depth", "must not be negative");
  c.hidden_size = positive("hidden_size", c.hidden_size);
  c.hidden_act = v.get_string("hidden_act", c.hidden_act);
  c.intermediate_size = positive("intermediate_size", c.intermediate_size);
  c.num_heads = positive("num_heads", c.num_heads);
  // transformers 5 writes in_channels; the published configs say in_chans.
  c.in_channels = v.has("in_channels") ? positive("in_channels", c.in_channels) : positive("in_chans", c.in_channels);
  c.patch_size = positive("patch_size", c.patch_size);
  c.spatial_merge_size = positive("spatial_merge_size", c.spatial_merge_size);
  c.temporal_patch_size = positive("temporal_patch_size", c.temporal_patch_size);
  c.tokens_per_second = v.get_int("tokens_per_second", c.tokens_per_second);
  c.window_size = positive("window_size", c.window_size);
  c.out_hidden_size = positive("out_hidden_size", c.out_hidden_size);
  c.fullatt_block_indexes = v.get_int_list("fullatt_block_indexes", c.fullatt_block_indexes);
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

  if (c.hidden_act != "silu") {
    throw LoadError(LoadErrorKind::unsupported,
                    v.source() + ": vision_config.hidden_act '" + c.hidden_act + "' is not supported (only silu)");
  }
  if (c.hidden_size % c.num_heads != 0) {
    v.fail("hidden_size", "must be divisible by num_heads (" + std::to_string(c.num_heads) + ")");
  }
  // The 2D rotary splits head_dim / 2 into a row half and a column half, each
  // of even size.
  if (c.head_dim() % 4 != 0) v.fail("num_heads", "gives head_dim " + std::to_string(c.head_dim()) +
                                                    ", which must be a multiple of 4 for the 2D rotary");
  if (c.window_size < c.spatial_merge_size * c.patch_size) {
    v.fail("window_size", "must be at least spatial_merge_size * patch_size (" +
                              std::to_string(c.spatial_merge_size * c.patch_size) + " px)");
  }
  for (std::int64_t i : c.fullatt_block_indexes) {
    if (i < 0 || i >= c.depth) {
      v.fail("fullatt_block_indexes", "holds " + std::to_string(i) + ", outside [0, depth = " +
                                          std::to_string(c.depth) + ")");
    }
  }

  // Token ids live on the outer config (text_config in transformers 5 saves
  // may repeat them; the outer ones win, as in Qwen2_5_VLConfig).
  c.image_token_id = top.get_int("image_token_id", c.image_token_id);
  c.video_token_id = top.get_int("video_token_id", c.video_token_id);
  c.vision_start_token_id = top.get_int("vision_start_token_id", c.vision_start_token_id);
  c.vision_end_token_id = top.get_int("vision_end_token_id", c.vision_end_token_id);
  return c;
}

}  // namespace mmgen::image

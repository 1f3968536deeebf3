// config.json -> WanTransformerConfig, with the defaults of diffusers'
// WanTransformer3DModel.__init__ and checks that turn sizes the reference would
// only trip over deep inside a forward into a load-time error.
#include "mmgen/video/wan_transformer_config.hpp"

#include <string>
#include <vector>

#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::video {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

namespace {

constexpr const char* kClassName = "WanTransformer3DModel";

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& why) {
  throw LoadError(LoadErrorKind::bad_config, source + ": '" + key + "' " + why);
}

void require_positive(const std::string& source, const char* key, std::int64_t v) {
  if (v <= 0) bad(source, key, "must be positive, got " + std::to_string(v));
}

}  // namespace

void WanTransformerConfig::validate(const std::string& source) const {
  for (std::int64_t p : patch_size) {
    if (p <= 0) bad(source, "patch_size", "must hold three positive integers");
  }
  require_positive(source, "num_attention_heads", num_attention_heads);
  require_positive(source, "attention_head_dim", attention_head_dim);
  require_positive(source, "in_channels", in_channels);
  require_positive(source, "out_channels", out_channels);
  require_positive(source, "text_dim", text_dim);
  require_positive(source, "ffn_dim", ffn_dim);
  require_positive(source, "num_layers", num_layers);
  require_positive(source, "rope_max_seq_len", rope_max_seq_len);
  // The sinusoid divides by freq_dim / 2.
  if (freq_dim < 2) bad(source, "freq_dim", "must be at least 2, got " + std::to_string(freq_dim));
  // Every RoPE axis rotates feature pairs: t = d - 4 * (d / 6) is even only for even d.
  if (attention_head_dim % 2 != 0 || rope_h_dim() <= 0) {
    bad(source, "attention_head_dim",
        "must be even and at least 6 for the t/h/w RoPE split, got " + std::to_string(attention_head_dim));
  }
  if (!(eps > 0.0)) bad(source, "eps", "must be positive");
  if (image_dim) require_positive(source, "image_dim", *image_dim);
  if (added_kv_proj_dim) {
    // add_k_proj reads the image embedder's output, which has the inner dim.
    if (*added_kv_proj_dim != inner_dim()) {
      bad(source, "added_kv_proj_dim",
          "must equal num_attention_heads * attention_head_dim = " + std::to_string(inner_dim()) + ", got " +
              std::to_string(*added_kv_proj_dim));
    }
    if (!image_dim) bad(source, "added_kv_proj_dim", "needs 'image_dim' (the image embedder feeds it)");
  }
  if (pos_embed_seq_len) {
    require_positive(source, "pos_embed_seq_len", *pos_embed_seq_len);
    if (!image_dim) bad(source, "pos_embed_seq_len", "needs 'image_dim'");
    if (*pos_embed_seq_len % 2 != 0) bad(source, "pos_embed_seq_len", "must be even (two images' tokens)");
  }
}

WanTransformerConfig WanTransformerConfig::from_hf(const HfConfig& cfg) {
  const std::string cls = cfg.get_string("_class_name", kClassName);
  if (cls != kClassName) {
    throw LoadError(LoadErrorKind::unsupported,
                    cfg.source() + ": '_class_name' is '" + cls + "', expected '" + kClassName + "'");
  }
  WanTransformerConfig c;
  const std::vector<std::int64_t> patch = cfg.get_int_list("patch_size", {1, 2, 2});
  if (patch.size() != 3) cfg.fail("patch_size", "must have 3 entries (t, h, w)");
  c.patch_size = {patch[0], patch[1], patch[2]};
  c.num_attention_heads = cfg.get_int("num_attention_heads", c.num_attention_heads);
  c.attention_head_dim = cfg.get_int("attention_head_dim", c.attention_head_dim);
  c.in_channels = cfg.get_int("in_channels", c.in_channels);
  // `out_channels or in_channels`. diffusers writes every key, so an absent key
  // (default 16 in the reference) is read like null here.
  c.out_channels = cfg.opt_int("out_channels").value_or(0);
  if (c.out_channels == 0) c.out_channels = c.in_channels;
  c.text_dim = cfg.get_int("text_dim", c.text_dim);
  c.freq_dim = cfg.get_int("freq_dim", c.freq_dim);
  c.ffn_dim = cfg.get_int("ffn_dim", c.ffn_dim);
  c.num_layers = cfg.get_int("num_layers", c.num_layers);
  c.cross_attn_norm = cfg.get_bool("cross_attn_norm", c.cross_attn_norm);
  c.qk_norm = cfg.get_string("qk_norm", c.qk_norm);
  c.eps = cfg.get_double("eps", c.eps);
  c.image_dim = cfg.opt_int("image_dim");
  c.added_kv_proj_dim = cfg.opt_int("added_kv_proj_dim");
  c.rope_max_seq_len = cfg.get_int("rope_max_seq_len", c.rope_max_seq_len);
  c.pos_embed_seq_len = cfg.opt_int("pos_embed_seq_len");
  c.validate(cfg.source());
  return c;
}

WanTransformerConfig WanTransformerConfig::load(const std::filesystem::path& path) {
  return from_hf(HfConfig::load(path));
}

}  // namespace mmgen::video

// config.json -> WanVaeConfig for both config classes of the family:
// AutoencoderKLWan (autoencoder_kl_wan.py) and AutoencoderKLQwenImage
// (autoencoder_kl_qwenimage.py). Defaults are the reference constructors'.
// Everything the module tree is built from is validated here, so a bad config
// fails with a message naming the key instead of a shape error deep in loading.
#include <cmath>
#include <string>

#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::diffusion {

using io::HfConfig;
using io::LoadError;
using io::LoadErrorKind;

namespace {

// The published Wan 2.1 statistics, the default of both constructors.
const std::vector<double> kWan21LatentsMean = {-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653,
                                               -0.1517, 1.5508,  0.4134,  -0.0715, 0.5517,  -0.3632,
                                               -0.1922, -0.9497, 0.2503,  -0.2921};
const std::vector<double> kWan21LatentsStd = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                                              3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160};

std::vector<double> number_list(const HfConfig& cfg, std::string_view key, std::vector<double> def) {
  const Value* v = cfg.find(key);
  if (!v) return def;
  if (!v->is_array()) cfg.fail(key, "must be a list of numbers");
  std::vector<double> out;
  for (const Value& e : v->as_array()) {
    if (!e.is_number() || !std::isfinite(e.as_double())) cfg.fail(key, "must be a list of finite numbers");
    out.push_back(e.as_double());
  }
  return out;
}

std::vector<bool> bool_list(const HfConfig& cfg, std::string_view key, std::vector<bool> def) {
  const Value* v = cfg.find(key);
  if (!v) return def;
  if (!v->is_array()) cfg.fail(key, "must be a list of booleans");
  std::vector<bool> out;
  for (const Value& e : v->as_array()) {
    if (!e.is_bool()) cfg.fail(key, "must be a list of booleans");
    out.push_back(e.as_bool());
  }
  return out;
}

void require_positive(const HfConfig& cfg, std::string_view key, std::int64_t v) {
  if (v <= 0) cfg.fail(key, "must be positive, got " + std::to_string(v));
}

}  // namespace

WanVaeConfig WanVaeConfig::from_hf(const HfConfig& cfg) {
  WanVaeConfig c;
  const std::string cls = cfg.get_string("_class_name", "");
  if (cls == "AutoencoderKLQwenImage" || (cls.empty() && cfg.has("input_channels"))) {
    c.vae_class = VaeClass::qwen_image;
  } else if (cls == "AutoencoderKLWan" || cls.empty()) {
    c.vae_class = VaeClass::wan;
  } else {
    throw LoadError(LoadErrorKind::unsupported,
                    cfg.source() + ": VAE class '" + cls +
                        "' is not supported (supported: AutoencoderKLWan, AutoencoderKLQwenImage)");
  }

  c.base_dim = cfg.get_int("base_dim", 96);
  c.z_dim = cfg.get_int("z_dim", 16);
  c.dim_mult = cfg.get_int_list("dim_mult", {1, 2, 4, 4});
  c.num_res_blocks = cfg.get_int("num_res_blocks", 2);
  c.attn_scales = number_list(cfg, "attn_scales", {});
  c.temperal_downsample = bool_list(cfg, "temperal_downsample", {false, true, true});
  c.latents_mean = number_list(cfg, "latents_mean", kWan21LatentsMean);
  c.latents_std = number_list(cfg, "latents_std", kWan21LatentsStd);
  if (cfg.get_double("dropout", 0.0) != 0.0) {
    // Inference only: dropout is the identity at eval, but say so rather than ignore a training config.
    cfg.fail("dropout", "must be 0 for inference");
  }

  if (c.vae_class == VaeClass::qwen_image) {
    c.in_channels = cfg.get_int("input_channels", 3);
    c.out_channels = c.in_channels;
    c.decoder_base_dim = c.base_dim;
    c.is_residual = false;
    c.patch_size = 1;
    // AutoencoderKLQwenImage: spatial_compression_ratio = 2 ** len(temperal_downsample).
    c.spatial_compression_ratio = std::int64_t(1) << c.temperal_downsample.size();
    c.scale_factor_spatial = c.spatial_compression_ratio;
    c.clamp_tiled_decode = false;
  } else {
    c.decoder_base_dim = cfg.get_int("decoder_base_dim", c.base_dim);
    c.is_residual = cfg.get_bool("is_residual", false);
    c.in_channels = cfg.get_int("in_channels", 3);
    c.out_channels = cfg.get_int("out_channels", 3);
    c.patch_size = cfg.get_int("patch_size", 1);
    c.scale_factor_temporal = cfg.get_int("scale_factor_temporal", 4);
    c.scale_factor_spatial = cfg.get_int("scale_factor_spatial", 8);
    c.spatial_compression_ratio = c.scale_factor_spatial;
    c.clamp_tiled_decode = true;
  }

  // ---- validation: what the module tree and the pipelines rely on.
  require_positive(cfg, "base_dim", c.base_dim);
  require_positive(cfg, c.vae_class == VaeClass::wan ? "decoder_base_dim" : "base_dim", c.decoder_base_dim);
  require_positive(cfg, "z_dim", c.z_dim);
  require_positive(cfg, "num_res_blocks", c.num_res_blocks);
  require_positive(cfg, c.vae_class == VaeClass::wan ? "in_channels" : "input_channels", c.in_channels);
  require_positive(cfg, "out_channels", c.out_channels);
  require_positive(cfg, "patch_size", c.patch_size);
  require_positive(cfg, "scale_factor_spatial", c.scale_factor_spatial);
  if (!c.attn_scales.empty()) {
    // The reference builds attention layers in the encoder for these scales but
    // its forward cannot run them (they do not take the feature cache).
    throw LoadError(LoadErrorKind::unsupported,
                    cfg.source() + ": 'attn_scales' must be empty (no published VAE of this family uses it)");
  }
  if (c.dim_mult.empty()) cfg.fail("dim_mult", "must not be empty");
  for (std::int64_t m : c.dim_mult) require_positive(cfg, "dim_mult", m);
  if (c.temperal_downsample.size() + 1 < c.dim_mult.size()) {
    cfg.fail("temperal_downsample", "needs one entry per down block but the last (" +
                                        std::to_string(c.dim_mult.size() - 1) + "), got " +
                                        std::to_string(c.temperal_downsample.size()));
  }
  if (std::int64_t(c.latents_mean.size()) != c.z_dim) {
    cfg.fail("latents_mean", "must have z_dim = " + std::to_string(c.z_dim) + " values, got " +
                                 std::to_string(c.latents_mean.size()));
  }
  if (std::int64_t(c.latents_std.size()) != c.z_dim) {
    cfg.fail("latents_std", "must have z_dim = " + std::to_string(c.z_dim) + " values, got " +
                                std::to_string(c.latents_std.size()));
  }
  for (double s : c.latents_std) {
    if (s == 0.0) cfg.fail("latents_std", "must not contain 0");
  }
  if (c.patch_size > 1 && c.in_channels % (c.patch_size * c.patch_size) != 0) {
    cfg.fail("in_channels", "must be a multiple of patch_size^2 (the patchified pixel channels)");
  }
  if (c.patch_size > 1 && c.spatial_compression_ratio % c.patch_size != 0) {
    cfg.fail("scale_factor_spatial", "must be a multiple of patch_size");
  }
  if (c.is_residual) {
    // AvgDown3D / DupUp3D regroup channels; the reference asserts divisibility.
    const std::size_t n = c.dim_mult.size();
    std::vector<std::int64_t> dims{c.base_dim};
    for (std::int64_t m : c.dim_mult) dims.push_back(c.base_dim * m);
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const std::int64_t factor = (c.temperal_downsample[i] ? 2 : 1) * 4;
      if (dims[i] * factor % dims[i + 1] != 0) {
        cfg.fail("dim_mult", "gives encoder block " + std::to_string(i) + " channels " + std::to_string(dims[i]) +
                                 " -> " + std::to_string(dims[i + 1]) +
                                 " that the AvgDown3D shortcut cannot regroup");
      }
    }
  }
  return c;
}

WanVaeConfig WanVaeConfig::load(const std::filesystem::path& folder) {
  return from_hf(HfConfig::load(folder));
}

}  // namespace mmgen::diffusion

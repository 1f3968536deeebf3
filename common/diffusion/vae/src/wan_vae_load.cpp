// Building the module tree from WanVaeConfig and the checkpoint (wan_vae.hpp).
// Mirrors the constructors of WanEncoder3d / WanDecoder3d / AutoencoderKLWan
// (and AutoencoderKLQwenImage, whose tree is the Wan 2.1 one): the same block
// order, the same channel arithmetic, the same checkpoint keys.
#include <cmath>
#include <string>

#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::diffusion {

using io::LoadError;
using io::LoadErrorKind;
using io::WeightLoader;

namespace {

std::string at_index(const std::string& prefix, std::size_t i) { return prefix + std::to_string(i) + "."; }

// nn.Conv3d / WanCausalConv3d: kernel k, padding p (time padding becomes 2 * p_t in front).
CausalConv3d conv3d(WeightLoader& w, const std::string& name, std::int64_t in, std::int64_t out,
                    std::array<std::int64_t, 3> k, std::array<std::int64_t, 3> stride = {1, 1, 1},
                    std::array<std::int64_t, 3> pad = {0, 0, 0}) {
  CausalConv3d c;
  c.weight = w.take(name + ".weight", {out, in, k[0], k[1], k[2]});
  c.bias = w.take(name + ".bias", {out});
  c.stride = stride;
  c.pad_t = 2 * pad[0];
  c.pad_h = pad[1];
  c.pad_w = pad[2];
  return c;
}

CausalConv3d conv3d_cube(WeightLoader& w, const std::string& name, std::int64_t in, std::int64_t out,
                         std::int64_t k, std::int64_t pad) {
  return conv3d(w, name, in, out, {k, k, k}, {1, 1, 1}, {pad, pad, pad});
}

FrameConv2d conv2d(WeightLoader& w, const std::string& name, std::int64_t in, std::int64_t out, std::int64_t k,
                   std::int64_t stride, std::int64_t pad) {
  FrameConv2d c;
  c.weight = w.take(name + ".weight", {out, in, k, k});
  c.bias = w.take(name + ".bias", {out});
  c.stride = stride;
  c.padding = pad;
  return c;
}

ChannelRMSNorm norm(WeightLoader& w, const std::string& name, std::int64_t dim, bool images) {
  ChannelRMSNorm n;
  // images=True (attention) stores gamma as [C, 1, 1], else [C, 1, 1, 1].
  n.gamma = images ? w.take(name + ".gamma", {dim, 1, 1}).view({dim, 1, 1, 1})
                   : w.take(name + ".gamma", {dim, 1, 1, 1});
  n.scale = std::sqrt(double(dim));
  return n;
}

ResidualBlock residual_block(WeightLoader& w, const std::string& p, std::int64_t in, std::int64_t out) {
  ResidualBlock r;
  r.norm1 = norm(w, p + "norm1", in, false);
  r.conv1 = conv3d_cube(w, p + "conv1", in, out, 3, 1);
  r.norm2 = norm(w, p + "norm2", out, false);
  r.conv2 = conv3d_cube(w, p + "conv2", out, out, 3, 1);
  if (in != out) r.conv_shortcut = conv3d_cube(w, p + "conv_shortcut", in, out, 1, 0);
  return r;
}

AttentionBlock attention_block(WeightLoader& w, const std::string& p, std::int64_t dim) {
  AttentionBlock a;
  a.norm = norm(w, p + "norm", dim, true);
  a.to_qkv.weight = w.take(p + "to_qkv.weight", {3 * dim, dim, 1, 1}).view({3 * dim, dim});
  a.to_qkv.bias = w.take(p + "to_qkv.bias", {3 * dim});
  a.proj.weight = w.take(p + "proj.weight", {dim, dim, 1, 1}).view({dim, dim});
  a.proj.bias = w.take(p + "proj.bias", {dim});
  return a;
}

Resample resample(WeightLoader& w, const std::string& p, std::int64_t dim, Resample::Mode mode,
                  std::int64_t upsample_out_dim) {
  Resample r;
  r.mode = mode;
  switch (mode) {
    case Resample::Mode::upsample2d:
      r.resample = conv2d(w, p + "resample.1", dim, upsample_out_dim, 3, 1, 1);
      break;
    case Resample::Mode::upsample3d:
      r.resample = conv2d(w, p + "resample.1", dim, upsample_out_dim, 3, 1, 1);
      r.time_conv = conv3d(w, p + "time_conv", dim, 2 * dim, {3, 1, 1}, {1, 1, 1}, {1, 0, 0});
      break;
    case Resample::Mode::downsample2d:
      r.resample = conv2d(w, p + "resample.1", dim, dim, 3, 2, 0);
      break;
    case Resample::Mode::downsample3d:
      r.resample = conv2d(w, p + "resample.1", dim, dim, 3, 2, 0);
      r.time_conv = conv3d(w, p + "time_conv", dim, dim, {3, 1, 1}, {2, 1, 1}, {0, 0, 0});
      break;
  }
  return r;
}

MidBlock mid_block(WeightLoader& w, const std::string& p, std::int64_t dim) {
  MidBlock m;
  m.resnets.push_back(residual_block(w, p + "resnets.0.", dim, dim));
  m.attentions.push_back(attention_block(w, p + "attentions.0.", dim));
  m.resnets.push_back(residual_block(w, p + "resnets.1.", dim, dim));
  return m;
}

Encoder3d encoder(const WanVaeConfig& cfg, WeightLoader& w) {
  const std::string p = "encoder.";
  const std::int64_t n = std::int64_t(cfg.dim_mult.size());
  std::vector<std::int64_t> dims{cfg.base_dim};
  for (std::int64_t m : cfg.dim_mult) dims.push_back(cfg.base_dim * m);

  Encoder3d e;
  e.conv_in = conv3d_cube(w, p + "conv_in", cfg.in_channels, dims[0], 3, 1);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t in = dims[std::size_t(i)];
    const std::int64_t out = dims[std::size_t(i) + 1];
    const bool last = i == n - 1;
    const bool temporal = !last && cfg.temperal_downsample[std::size_t(i)];
    const Resample::Mode mode = temporal ? Resample::Mode::downsample3d : Resample::Mode::downsample2d;
    if (cfg.is_residual) {
      const std::string b = at_index(p + "down_blocks.", e.down_blocks.size());
      ResidualDownBlock d;
      d.avg_shortcut = AvgDown3D{in, out, temporal ? 2 : 1, last ? 1 : 2};
      for (std::int64_t r = 0; r < cfg.num_res_blocks; ++r, in = out) {
        d.resnets.push_back(residual_block(w, at_index(b + "resnets.", std::size_t(r)), in, out));
      }
      if (!last) d.downsampler = resample(w, b + "downsampler.", out, mode, out);
      e.down_blocks.emplace_back(std::move(d));
    } else {
      for (std::int64_t r = 0; r < cfg.num_res_blocks; ++r, in = out) {
        e.down_blocks.emplace_back(residual_block(w, at_index(p + "down_blocks.", e.down_blocks.size()), in, out));
      }
      if (!last) {
        e.down_blocks.emplace_back(resample(w, at_index(p + "down_blocks.", e.down_blocks.size()), out, mode, out));
      }
    }
  }
  const std::int64_t top = dims.back();
  e.mid_block = mid_block(w, p + "mid_block.", top);
  e.norm_out = norm(w, p + "norm_out", top, false);
  e.conv_out = conv3d_cube(w, p + "conv_out", top, 2 * cfg.z_dim, 3, 1);
  return e;
}

Decoder3d decoder(const WanVaeConfig& cfg, WeightLoader& w) {
  const std::string p = "decoder.";
  const std::int64_t n = std::int64_t(cfg.dim_mult.size());
  const std::int64_t base = cfg.decoder_base_dim;
  std::vector<std::int64_t> dims{base * cfg.dim_mult.back()};
  for (auto it = cfg.dim_mult.rbegin(); it != cfg.dim_mult.rend(); ++it) dims.push_back(base * *it);
  // temperal_upsample is the whole temperal_downsample list reversed.
  const std::vector<bool> temporal_up(cfg.temperal_downsample.rbegin(), cfg.temperal_downsample.rend());

  Decoder3d d;
  d.conv_in = conv3d_cube(w, p + "conv_in", cfg.z_dim, dims[0], 3, 1);
  d.mid_block = mid_block(w, p + "mid_block.", dims[0]);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t in = dims[std::size_t(i)];
    const std::int64_t out = dims[std::size_t(i) + 1];
    // Wan 2.1: the previous block's upsampler halved the channels.
    if (i > 0 && !cfg.is_residual) in /= 2;
    const bool up = i != n - 1;
    const bool temporal = up && temporal_up[std::size_t(i)];
    const Resample::Mode mode = temporal ? Resample::Mode::upsample3d : Resample::Mode::upsample2d;
    const std::string b = at_index(p + "up_blocks.", std::size_t(i));

    UpBlock u;
    std::int64_t cur = in;
    for (std::int64_t r = 0; r <= cfg.num_res_blocks; ++r, cur = out) {
      u.resnets.push_back(residual_block(w, at_index(b + "resnets.", std::size_t(r)), cur, out));
    }
    if (cfg.is_residual && up) {
      const std::int64_t factor = (temporal ? 2 : 1) * 4;
      if (out * factor % in != 0) {
        throw LoadError(LoadErrorKind::bad_config,
                        "vae config: decoder block " + std::to_string(i) + " (" + std::to_string(in) + " -> " +
                            std::to_string(out) + " channels) cannot use the DupUp3D shortcut");
      }
      u.avg_shortcut = DupUp3D{in, out, temporal ? 2 : 1, 2};
      u.upsampler = resample(w, b + "upsampler.", out, mode, out);
    } else if (up) {
      u.upsampler = resample(w, b + "upsamplers.0.", out, mode, out / 2);
    }
    d.up_blocks.push_back(std::move(u));
  }
  const std::int64_t last = dims.back();
  d.norm_out = norm(w, p + "norm_out", last, false);
  d.conv_out = conv3d_cube(w, p + "conv_out", last, cfg.out_channels, 3, 1);
  return d;
}

}  // namespace

WanVae::WanVae(const WanVaeConfig& cfg, WeightLoader& weights, VaeParts parts)
    : cfg_(cfg), dtype_(weights.options().dtype), device_(weights.options().device) {
  if (parts.encoder) {
    encoder_ = encoder(cfg_, weights);
    quant_conv = conv3d_cube(weights, "quant_conv", 2 * cfg_.z_dim, 2 * cfg_.z_dim, 1, 0);
  } else {
    weights.skip_prefix("encoder.");
    weights.skip_prefix("quant_conv.");
  }
  if (parts.decoder) {
    decoder_ = decoder(cfg_, weights);
    post_quant_conv = conv3d_cube(weights, "post_quant_conv", cfg_.z_dim, cfg_.z_dim, 1, 0);
  } else {
    weights.skip_prefix("decoder.");
    weights.skip_prefix("post_quant_conv.");
  }
}

WanVae WanVae::load(const std::filesystem::path& folder, const io::LoadOptions& opts, VaeParts parts) {
  // Errors keep their kind and gain the component's name, so a pipeline that
  // loads several components reports which one failed.
  std::string component = "vae";
  try {
    const WanVaeConfig cfg = WanVaeConfig::load(folder);
    component = cfg.vae_class == VaeClass::qwen_image ? "vae (AutoencoderKLQwenImage)" : "vae (AutoencoderKLWan)";
    const io::Checkpoint ckpt = io::Checkpoint::open(folder, "diffusion_pytorch_model");
    WeightLoader weights(ckpt, opts);
    WanVae vae(cfg, weights, parts);
    weights.finish();
    return vae;
  } catch (const LoadError& e) {
    throw LoadError(e.kind(), component + ": " + e.what());
  }
}

}  // namespace mmgen::diffusion

// The causal-3D VAE family shared by the image and the video service, ported
// from diffusers' autoencoder_kl_wan.py (AutoencoderKLWan) and
// autoencoder_kl_qwenimage.py (AutoencoderKLQwenImage).
//
//   Wan 2.1        z 16, 8x spatial / 4x temporal, plain down/up blocks.
//   Wan 2.2        z 48, patchify 2 then 8x more (16x), residual down/up blocks
//                  with AvgDown3D / DupUp3D shortcuts, decoder wider than encoder.
//   Qwen-Image     a fine-tune of the Wan 2.1 VAE. Its module tree and checkpoint
//                  keys are exactly Wan 2.1's, so one implementation serves both;
//                  the config differs only in spelling (`input_channels`, no
//                  patch/residual fields) and diffusers' Qwen-Image tiled decode
//                  does not clamp its output (the untiled one does).
//
// Member names are the checkpoint keys (encoder.down_blocks.N.conv1.weight ...),
// so vae/diffusion_pytorch_model.safetensors loads 1:1. Video tensors are
// [B, C, T, H, W]; an image is a one-frame video.
//
// Encode runs frame 0, then chunks of 4 frames; decode runs one latent frame at
// a time; a per-call feature cache carries the last two frames of every causal
// convolution's input from chunk to chunk, exactly as the reference does, so the
// results equal the reference's chunked computation and decode memory does not
// grow with the number of frames (only the output does). The model is immutable
// after loading: concurrent calls are safe.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mmgen/io/checkpoint.hpp"

namespace mmgen::io {
class HfConfig;
}

namespace mmgen::diffusion {

// ============================== config ==============================

enum class VaeClass { wan, qwen_image };  // AutoencoderKLWan | AutoencoderKLQwenImage

// config.json of a vae/ folder; defaults as the reference constructors.
struct WanVaeConfig {
  VaeClass vae_class = VaeClass::wan;
  std::int64_t base_dim = 96;
  std::int64_t decoder_base_dim = 96;  // null in config.json -> base_dim
  std::int64_t z_dim = 16;
  std::vector<std::int64_t> dim_mult{1, 2, 4, 4};
  std::int64_t num_res_blocks = 2;
  std::vector<double> attn_scales;  // must be empty (see EncoderLayer)
  std::vector<bool> temperal_downsample{false, true, true};  // (sic) the reference's spelling
  std::vector<double> latents_mean;  // z_dim values
  std::vector<double> latents_std;   // z_dim values
  bool is_residual = false;          // Wan 2.2 down/up blocks
  std::int64_t in_channels = 3;      // Qwen-Image: input_channels (also its out channels)
  std::int64_t out_channels = 3;
  std::int64_t patch_size = 1;       // null -> 1 (no patchify)
  std::int64_t scale_factor_temporal = 4;
  std::int64_t scale_factor_spatial = 8;

  // Derived. Wan: scale_factor_spatial; Qwen-Image: 2^len(temperal_downsample).
  std::int64_t spatial_compression_ratio = 8;
  // Qwen-Image's tiled decode returns unclamped pixels (its untiled decode clamps).
  bool clamp_tiled_decode = true;

  // From a parsed config.json; throws io::LoadError(bad_config / unsupported)
  // naming the file and key.
  static WanVaeConfig from_hf(const io::HfConfig& cfg);
  static WanVaeConfig load(const std::filesystem::path& folder);  // <folder>/config.json
};

// diffusers' enable_tiling(): tiles of tile_sample_min_* pixels every
// tile_sample_stride_* pixels, blended linearly over the overlap. Used when the
// input is larger than a tile (same test as the reference).
struct TilingOptions {
  bool enabled = false;
  std::int64_t tile_sample_min_height = 256;
  std::int64_t tile_sample_min_width = 256;
  std::int64_t tile_sample_stride_height = 192;
  std::int64_t tile_sample_stride_width = 192;
};

// ============================== modules ==============================

// Conv3d whose time padding is all in front (2 * padding_t frames); the frames
// in front come from the feature cache when there is one. A single frame with
// no cache (images, a video's first chunk) runs as a 2-D convolution with the
// last temporal tap, the only one that meets data rather than padding zeros.
struct CausalConv3d {
  at::Tensor weight;  // [O, I, kt, kh, kw]
  at::Tensor bias;    // [O]
  std::array<std::int64_t, 3> stride{1, 1, 1};
  std::int64_t pad_t = 0;  // frames in front (reference: 2 * padding[0])
  std::int64_t pad_h = 0, pad_w = 0;
  // x: [B, I, T, H, W]; cache: [B, I, <=2, H, W] or undefined -> [B, O, T', H', W'].
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& cache = at::Tensor()) const;
};

// The resamplers' nn.Conv2d, applied to every frame. Time is folded into the
// batch as the reference does: on CPU a 2-D convolution over the folded frames
// measured up to 2x faster than the equivalent (1, k, k) Conv3d, and a single
// frame folds without a copy.
struct FrameConv2d {
  at::Tensor weight;  // [O, I, k, k]
  at::Tensor bias;    // [O]
  std::int64_t stride = 1, padding = 0;
  // What runs on the folded frames first: resample.0 of the checkpoint.
  enum class Before { nothing, upsample_nearest_2x, zero_pad_right_bottom };
  // x: [B, I, T, H, W] -> [B, O, T, H', W'] (a strided view when T > 1).
  at::Tensor operator()(const at::Tensor& x, Before before) const;
};

// WanRMS_norm: L2-normalise over channels, times sqrt(C) and gamma (no bias in
// any published checkpoint).
struct ChannelRMSNorm {
  at::Tensor gamma;  // [C, 1, 1, 1] (stored [C, 1, 1] for attention, reshaped)
  double scale = 1.0;
  at::Tensor operator()(const at::Tensor& x) const;  // [B, C, T, H, W]
};

// Per-call state of the causal convolutions: slot i belongs to the i-th cached
// convolution in forward order (the reference's feat_cache / feat_idx).
struct FeatureCache {
  enum class State : std::uint8_t { empty, replicate, frames };  // replicate = the reference's "Rep"
  std::vector<at::Tensor> slots;
  std::vector<State> states;
  std::size_t next = 0;
  // False for the call's last chunk: no later chunk reads the slots, so the
  // convolutions skip storing their input's tail (for one image that is a
  // copy of every convolution's input, kept until decode returns).
  bool keep = true;
  std::size_t take();  // index of the next slot, growing the table on first use
  void start_chunk(bool last = false) {
    next = 0;
    keep = !last;
  }
};

struct ResidualBlock {  // WanResidualBlock
  ChannelRMSNorm norm1, norm2;
  CausalConv3d conv1, conv2;
  std::optional<CausalConv3d> conv_shortcut;  // 1x1x1 when in_dim != out_dim
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache) const;
};

// A 1x1 Conv2d of the checkpoint ([O, I, 1, 1]) applied to channels-last rows.
struct PointwiseConv {
  at::Tensor weight;  // [O, I]
  at::Tensor bias;    // [O]
  at::Tensor operator()(const at::Tensor& x) const;  // [..., I] -> [..., O]
};

struct AttentionBlock {  // WanAttentionBlock: one head over each frame's pixels
  ChannelRMSNorm norm;   // gamma stored [C, 1, 1]
  PointwiseConv to_qkv;  // C -> 3C
  PointwiseConv proj;    // C -> C
  at::Tensor operator()(const at::Tensor& x) const;  // [B, C, T, H, W] -> same
};

struct Resample {  // WanResample
  enum class Mode { upsample2d, upsample3d, downsample2d, downsample3d };
  Mode mode = Mode::upsample2d;
  FrameConv2d resample;    // resample.1 (resample.0 is the Upsample / ZeroPad2d, no weights)
  CausalConv3d time_conv;  // 3d modes only
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache) const;
};

struct MidBlock {  // WanMidBlock (num_layers 1)
  std::vector<ResidualBlock> resnets;      // 2
  std::vector<AttentionBlock> attentions;  // 1
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache) const;
};

// Wan 2.2 shortcuts: space/time to channels and back, without weights.
struct AvgDown3D {
  std::int64_t in_channels = 0, out_channels = 0, factor_t = 1, factor_s = 1;
  at::Tensor operator()(const at::Tensor& x) const;
};
struct DupUp3D {
  std::int64_t in_channels = 0, out_channels = 0, factor_t = 1, factor_s = 1;
  at::Tensor operator()(const at::Tensor& x, bool first_chunk) const;
};

struct ResidualDownBlock {  // WanResidualDownBlock (Wan 2.2 encoder)
  AvgDown3D avg_shortcut;
  std::vector<ResidualBlock> resnets;
  std::optional<Resample> downsampler;
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache) const;
};

struct UpBlock {  // WanUpBlock (upsamplers.0) or WanResidualUpBlock (upsampler + avg_shortcut)
  std::vector<ResidualBlock> resnets;
  std::optional<Resample> upsampler;
  std::optional<DupUp3D> avg_shortcut;
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache, bool first_chunk) const;
};

// Wan 2.1 / Qwen-Image: resnets and resamples in one flat list; Wan 2.2: residual down blocks.
// (attn_scales would add attention layers here, but the reference cannot run
// them — its encoder passes the cache to them — so a config with any is refused.)
using EncoderLayer = std::variant<ResidualBlock, Resample, ResidualDownBlock>;

struct Encoder3d {  // WanEncoder3d; outputs 2 * z_dim channels (mean, logvar)
  CausalConv3d conv_in;
  std::vector<EncoderLayer> down_blocks;
  MidBlock mid_block;
  ChannelRMSNorm norm_out;
  CausalConv3d conv_out;
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache) const;
};

struct Decoder3d {  // WanDecoder3d
  CausalConv3d conv_in;
  MidBlock mid_block;
  std::vector<UpBlock> up_blocks;
  ChannelRMSNorm norm_out;
  CausalConv3d conv_out;
  at::Tensor operator()(const at::Tensor& x, FeatureCache* cache, bool first_chunk) const;
};

// ============================== model ==============================

// DiagonalGaussianDistribution over the latents.
struct LatentDist {
  at::Tensor mean;    // [B, z, T', h, w]
  at::Tensor logvar;  // same, clamped to [-30, 20]
  const at::Tensor& mode() const { return mean; }
  at::Tensor std() const;  // exp(0.5 * logvar)
  // mean + std * noise; noise has mean's shape.
  at::Tensor sample(const at::Tensor& noise) const;
  // As latent_dist.sample(generator): noise drawn with `gen` (a CPU generator)
  // in mean's dtype, then moved to mean's device.
  at::Tensor sample(at::Generator gen) const;
};

struct VaeParts {  // what to load: a text-to-video pipeline needs only the decoder
  bool encoder = true;
  bool decoder = true;
};

class WanVae {
 public:
  // Loads <folder>/config.json and <folder>/diffusion_pytorch_model.safetensors
  // (or its shards). Throws io::LoadError naming the component, file and tensor
  // for a bad config or a missing / misshapen / unexpected tensor.
  static WanVae load(const std::filesystem::path& folder, const io::LoadOptions& opts = {}, VaeParts parts = {});
  WanVae(const WanVaeConfig& cfg, io::WeightLoader& weights, VaeParts parts = {});

  // x: [B, 3, F, H, W] pixels in [-1, 1] with F = 4n + 1 (3 = in_channels /
  // patch_size^2) -> posterior over [B, z, n + 1, H / s, W / s], s =
  // spatial_compression_ratio. Converted to the model's dtype and device first.
  // Throws std::invalid_argument for another shape (Wan 2.2: H, W multiples of 16).
  LatentDist encode(const at::Tensor& x) const;
  // z: [B, z, T, h, w] -> [B, 3, 4(T - 1) + 1, h * s, w * s], clamped to
  // [-1, 1] (except Qwen-Image's tiled decode, unclamped as in diffusers).
  at::Tensor decode(const at::Tensor& z) const;

  // The pipelines' latent normalisation with the config's latents_mean/std.
  // normalize: (x - mean) * (1 / std) as the Wan pipelines write it;
  // normalize_div: (x - mean) / std as Qwen-Image edit writes it;
  // denormalize: z / (1 / std) + mean, before decode in every pipeline.
  at::Tensor normalize(const at::Tensor& x) const;
  at::Tensor normalize_div(const at::Tensor& x) const;
  at::Tensor denormalize(const at::Tensor& z) const;

  // Not thread-safe against running encode/decode calls. Throws
  // std::invalid_argument for sizes <= 0, strides under s pixels or tiles
  // smaller than their stride.
  void set_tiling(const TilingOptions& t);
  const TilingOptions& tiling() const { return tiling_; }

  const WanVaeConfig& config() const { return cfg_; }
  c10::ScalarType dtype() const { return dtype_; }
  c10::Device device() const { return device_; }
  bool has_encoder() const { return encoder_.has_value(); }
  bool has_decoder() const { return decoder_.has_value(); }

 private:
  at::Tensor encode_untiled(const at::Tensor& x) const;  // pixels -> [B, 2z, T', h, w]
  at::Tensor encode_tiled(const at::Tensor& x) const;    // patchified pixels -> same
  at::Tensor decode_untiled(const at::Tensor& z) const;
  at::Tensor decode_tiled(const at::Tensor& z) const;
  at::Tensor latent_stat(const std::vector<double>& v, const at::Tensor& like) const;

  WanVaeConfig cfg_;
  TilingOptions tiling_;
  c10::ScalarType dtype_ = c10::ScalarType::Float;
  c10::Device device_ = c10::Device(c10::DeviceType::CPU);
  std::optional<Encoder3d> encoder_;
  std::optional<Decoder3d> decoder_;
  CausalConv3d quant_conv;       // 1x1x1, 2z -> 2z
  CausalConv3d post_quant_conv;  // 1x1x1, z -> z
};

}  // namespace mmgen::diffusion

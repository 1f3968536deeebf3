// The Wan video pipelines, as diffusers' WanPipeline (text-to-video) and
// WanImageToVideoPipeline (image-to-video) run them, over one loaded folder:
//
//   encode the prompt and, for CFG, the negative prompt (umT5)
//   -> seeded initial latents [1, z, (F-1)/4 + 1, H/s, W/s]
//      (I2V: the first frame's VAE latents as the condition: the A14B
//       36-channel input [noise | 4-channel frame mask | image latents], or
//       TI2V-5B's expand_timesteps first latent frame with per-token
//       timesteps 0 there and t elsewhere, re-blended every step)
//   -> UniPC / flow-match Euler loop; with transformer_2 and boundary_ratio
//      the high-noise expert (`transformer`, guidance_scale) runs while
//      t >= boundary_ratio * num_train_timesteps, then the low-noise expert
//      (`transformer_2`, guidance_scale_2)
//   -> VAE decode (one latent frame at a time) -> pixels in [0, 1].
//
// Same seed and settings as diffusers with a CPU generator => the same pixels
// (the random draws happen in the reference's order).
//
// Supported folders (published diffusers layouts): Wan2.1-T2V-1.3B/14B,
// Wan2.2-T2V-A14B, Wan2.2-I2V-A14B, Wan2.2-TI2V-5B. Wan 2.1 I2V/FLF2V (a CLIP
// `image_encoder/` and a transformer with image_dim) is refused at load with
// io::LoadError(unsupported).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "mmgen/io/checkpoint.hpp"
#include "mmgen/media/image.hpp"

namespace mmgen::video {

// The negative prompt the official Wan 2.1 / 2.2 repositories use when the
// user gives none (wan/configs/shared_config.py, sample_neg_prompt). diffusers'
// pipelines use "" instead; WanPipeline follows diffusers (nullopt => ""), and
// the worker fills this in when a job has no negative prompt.
extern const std::string_view kWanDefaultNegativePrompt;

// What a folder can do, from model_index.json and the transformer configs.
enum class WanMode { text_to_video, image_to_video };

struct WanLoadOptions {
  io::LoadOptions model;  // dtype / device of every component (float32 modules stay float32)
  // The VAE's dtype when it should differ (the Wan model cards load the VAE in
  // float32 next to a bfloat16 transformer); nullopt: model.dtype.
  std::optional<c10::ScalarType> vae_dtype;
  // Text-to-video-only folders need only the VAE decoder; set false to load
  // the encoder anyway (it is always loaded when the folder can do I2V).
  bool vae_decoder_only_for_t2v = true;
};

struct VideoRequest {
  std::string prompt;
  // nullopt: "" as in diffusers (see kWanDefaultNegativePrompt). Used only
  // with CFG (a guidance scale > 1).
  std::optional<std::string> negative_prompt;
  // CFG runs (for both experts) when guidance_scale > 1: diffusers decides it
  // from guidance_scale alone, so guidance_scale_2 = 1 still runs the
  // unconditional pass and guidance_scale <= 1 turns CFG off for both.
  double guidance_scale = 5.0;            // transformer (high noise / the only expert)
  std::optional<double> guidance_scale_2; // transformer_2 (low noise); two-expert folders only; default guidance_scale
  std::int64_t num_frames = 81;           // 4n + 1
  std::int64_t width = 0;                 // 0: diffusers' default 832; a multiple of size_multiple()
  std::int64_t height = 0;                // 0: diffusers' default 480; a multiple of size_multiple()
  std::int64_t steps = 50;
  std::uint64_t seed = 0;
  std::optional<double> flow_shift;       // per-job scheduler shift (UniPC flow_shift / FlowMatchEuler shift)
  // RGB first frame: image-to-video. Resized to width x height as diffusers'
  // VideoProcessor.preprocess does (PIL LANCZOS), then mapped to [-1, 1].
  std::optional<media::Image> image;
  std::int64_t max_sequence_length = 512;
};

// Called after every denoising step (1-based step of total) with that step's
// estimate of the clean latents x0 [1, z, T, h, w] float32 (normalised latent
// space, the I2V first frame already blended in; decode_preview() turns one
// latent frame of it into pixels). Throwing from it (e.g. on cancellation)
// abandons the job; the pipeline keeps no state between jobs.
using StepCallback = std::function<void(std::int64_t step, std::int64_t total, const at::Tensor& denoised)>;

class WanPipeline {
 public:
  // A diffusers pipeline folder as published: model_index.json (transformer,
  // optional transformer_2, boundary_ratio, expand_timesteps), scheduler/
  // (UniPCMultistepScheduler or FlowMatchEulerDiscreteScheduler by
  // _class_name), vae/, text_encoder/, tokenizer/, transformer/,
  // transformer_2/. Throws io::LoadError naming the component, file and tensor.
  static WanPipeline load(const std::filesystem::path& folder, const WanLoadOptions& opts = {});

  WanPipeline(WanPipeline&&) noexcept;
  WanPipeline& operator=(WanPipeline&&) noexcept;
  ~WanPipeline();

  // Checks every parameter first (std::invalid_argument naming it), then runs.
  // Returns [F, H, W, 3] float32 in [0, 1]: diffusers' output_type "np" values
  // before 8-bit quantisation. Thread-compatible: concurrent generate() calls
  // on one pipeline are safe (no state is shared between jobs).
  at::Tensor generate(const VideoRequest& req, const StepCallback& on_step = {}) const;

  // What a request resolves to before anything runs (width/height defaults,
  // guidance_scale_2 default); throws std::invalid_argument naming a bad
  // parameter: num_frames not 4n + 1, width/height not positive multiples of
  // size_multiple(), steps < 1, guidance scales < 0 or not finite,
  // guidance_scale_2 without a second expert, flow_shift <= 0,
  // max_sequence_length < 1, an image for a text-only folder or none for an
  // image-only folder, an image that is empty or not RGB.
  VideoRequest validated(const VideoRequest& req) const;

  // x0 latents as handed to the StepCallback -> one frame [H, W, 3] float32
  // in [0, 1] of latent frame `latent_frame` (0 = the video's first frame),
  // decoded on its own (not the exact frame of the final video, whose decode
  // carries the causal cache across frames: a preview).
  at::Tensor decode_preview(const at::Tensor& denoised, std::int64_t latent_frame = 0) const;

  bool supports(WanMode mode) const;
  bool two_experts() const;
  std::optional<double> boundary_ratio() const;
  bool expand_timesteps() const;
  // width and height must be multiples of this: vae spatial factor x patch (16 or 32).
  std::int64_t size_multiple() const;
  std::int64_t vae_scale_factor_spatial() const;
  std::int64_t vae_scale_factor_temporal() const;
  std::int64_t latent_channels() const;  // vae z_dim
  // The official repositories' output frame rate: 24 for TI2V-5B
  // (expand_timesteps), 16 for the others.
  std::int64_t default_fps() const;
  c10::ScalarType dtype() const;
  c10::Device device() const;

 private:
  struct Impl;
  explicit WanPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmgen::video

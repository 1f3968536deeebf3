// The Qwen-Image pipelines, as diffusers' QwenImagePipeline,
// QwenImageImg2ImgPipeline and QwenImageInpaintPipeline run them:
//
//   encode the prompt (and the negative prompt for true CFG)
//   -> seeded initial latents (img2img / inpaint: the init image's latents
//      noised to the first timestep) -> flow-match Euler loop with the
//      transformer (true CFG with norm rescale; inpaint re-blends the kept
//      region after every step) -> VAE decode -> pixels in [0, 1].
//
// Same seed and settings as diffusers with a CPU generator => the same
// pixels (the random draws happen in the reference's order).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mmgen/diffusion/flow_match_euler.hpp"
#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/image/prompt_encoder.hpp"
#include "mmgen/image/qwenimage_transformer.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/media/image.hpp"

namespace mmgen::image {

enum class ImageMode { text_to_image, img2img, inpaint, edit };

// How an edit prompt sees its images: QwenImageEditPipeline (one image, 1 MP
// for both the VL encoder and the VAE) or QwenImageEditPlusPipeline
// (Edit-2509/2511: up to 3 images, "Picture i:" prefixes, 384² per image
// for the VL encoder and 1 MP each for the VAE). automatic: the folder's
// model_index.json class, and Plus whenever more than one image is given.
enum class EditStyle { automatic, edit, edit_plus };

struct ImageRequest {
  ImageMode mode = ImageMode::text_to_image;
  std::string prompt;
  std::optional<std::string> negative_prompt;  // true CFG runs only with one
  double true_cfg_scale = 4.0;                 // reference default
  std::optional<double> guidance_scale;        // guidance-distilled transformers only
  std::int64_t width = 0;                      // 0: the reference default, 1024
  std::int64_t height = 0;
  std::int64_t steps = 50;
  std::uint64_t seed = 0;
  std::int64_t images = 1;  // images per prompt
  double strength = 0.6;    // img2img / inpaint
  std::optional<media::Image> init_image;  // RGB; img2img / inpaint
  std::optional<media::Image> mask;        // inpaint: white = repaint
  std::vector<media::Image> edit_images;   // edit: 1-3 RGB reference images, in order
  EditStyle edit_style = EditStyle::automatic;
  std::int64_t max_sequence_length = 512;
};

// Called after every denoising step (1-based step of total) with the
// step's estimate of the clean latents, x0 = x_t - sigma_t * v (packed, for
// previews; see latent_grid()). Throwing from it (e.g. on cancellation)
// abandons the job; the pipeline keeps no state between jobs.
using StepCallback = std::function<void(std::int64_t step, std::int64_t total, const at::Tensor& denoised)>;

class QwenImagePipeline {
 public:
  // A diffusers pipeline folder as published (model_index.json, scheduler/,
  // text_encoder/, tokenizer/, transformer/, vae/). Throws io::LoadError
  // naming the component, file and tensor.
  static QwenImagePipeline load(const std::filesystem::path& folder, const io::LoadOptions& opts);

  // Checks every parameter first (std::invalid_argument naming it), then
  // runs. Returns [images, H, W, 3] float32 in [0, 1], before quantisation.
  // An edit's default size is the (last) input image's aspect at 1 MP.
  at::Tensor generate(const ImageRequest& req, const StepCallback& on_step = {}) const;

  // The latent grid of a W x H image is (H / s, W / s), s = vae_scale_factor()
  // (8 for the published VAE); packed latents hold (H / 2s)(W / 2s) tokens.
  std::int64_t vae_scale_factor() const { return vae_scale_factor_; }
  // VAE tiling (diffusers' enable_tiling) for the next jobs: large images
  // then encode/decode tile by tile, in memory that does not grow with the
  // image area. Not thread-safe against a running generate().
  void set_vae_tiling(const diffusion::TilingOptions& t) { vae_.set_tiling(t); }
  const QwenImageTransformer& transformer() const { return transformer_; }
  const diffusion::WanVae& vae() const { return vae_; }

  // What a request resolves to before anything runs (width/height defaults);
  // throws std::invalid_argument naming a bad parameter.
  ImageRequest validated(const ImageRequest& req) const;

 private:
  QwenImagePipeline(PromptEncoder encoder, QwenImageTransformer transformer, diffusion::WanVae vae,
                    diffusion::FlowMatchEulerConfig scheduler, bool edit_plus_folder);

  // Edit conditioning: prompt embeddings (cond, and uncond for true CFG),
  // the reference images' packed latents and their patch grids.
  struct EditInputs {
    PromptEmbeds cond;
    std::optional<PromptEmbeds> uncond;
    at::Tensor image_latents;  // [B, sum of tokens, 4C]
    std::vector<ImageShape> shapes;
  };
  EditInputs prepare_edit(const ImageRequest& req, bool do_cfg) const;
  bool plus_style(const ImageRequest& req) const;

  at::Tensor denoise_prediction(const at::Tensor& latents, const at::Tensor& timestep, const PromptEmbeds& cond,
                                const std::optional<PromptEmbeds>& uncond, double true_cfg_scale,
                                const std::vector<std::vector<ImageShape>>& img_shapes,
                                std::int64_t keep_tokens) const;
  at::Tensor encode_image_latents(const media::Image& rgb, int width, int height, at::Generator& gen) const;
  at::Tensor decode(const at::Tensor& latents, std::int64_t h, std::int64_t w) const;

  PromptEncoder encoder_;
  QwenImageTransformer transformer_;
  diffusion::WanVae vae_;
  diffusion::FlowMatchEulerConfig scheduler_config_;
  std::int64_t vae_scale_factor_ = 8;
  bool edit_plus_folder_ = false;  // model_index.json: QwenImageEditPlusPipeline
};

}  // namespace mmgen::image

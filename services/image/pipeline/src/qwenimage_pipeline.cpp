// Qwen-Image pipelines (qwenimage_pipeline.hpp). Read beside diffusers'
// pipelines/qwenimage/pipeline_qwenimage.py, pipeline_qwenimage_img2img.py
// and pipeline_qwenimage_inpaint.py: same order of random draws, same dtypes.
#include "mmgen/image/qwenimage_pipeline.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/upsample_nearest2d.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "mmgen/diffusion/noise.hpp"
#include "mmgen/image/image_tensors.hpp"
#include "mmgen/image/qwen_image_processor.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"

namespace mmgen::image {

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// Rows of a batch repeated `n` times each (prompt 0 ×n, prompt 1 ×n, ...).
at::Tensor repeat_rows(const at::Tensor& t, std::int64_t n) {
  return n == 1 ? t : at::cat(std::vector<at::Tensor>(static_cast<std::size_t>(n), t), 0);
}

}  // namespace

QwenImagePipeline::QwenImagePipeline(PromptEncoder encoder, QwenImageTransformer transformer, diffusion::WanVae vae,
                                     diffusion::FlowMatchEulerConfig scheduler, bool edit_plus_folder)
    : encoder_(std::move(encoder)),
      transformer_(std::move(transformer)),
      vae_(std::move(vae)),
      scheduler_config_(std::move(scheduler)),
      edit_plus_folder_(edit_plus_folder) {
  vae_scale_factor_ = std::int64_t{1} << vae_.config().temperal_downsample.size();
}

QwenImagePipeline QwenImagePipeline::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  if (!std::filesystem::is_regular_file(folder / "model_index.json")) {
    throw io::LoadError(io::LoadErrorKind::missing,
                        (folder / "model_index.json").string() + ": not a diffusers pipeline folder");
  }
  const std::string pipeline_class = io::HfConfig::load(folder / "model_index.json").get_string("_class_name", "");
  auto scheduler = diffusion::FlowMatchEulerConfig::load(folder / "scheduler");
  auto transformer = QwenImageTransformer::load(folder / "transformer", opts);
  auto vae = diffusion::WanVae::load(folder / "vae", opts);
  auto encoder = PromptEncoder::load(folder, opts);
  return QwenImagePipeline(std::move(encoder), std::move(transformer), std::move(vae), std::move(scheduler),
                           pipeline_class == "QwenImageEditPlusPipeline");
}

ImageRequest QwenImagePipeline::validated(const ImageRequest& in) const {
  ImageRequest r = in;
  const std::int64_t multiple = vae_scale_factor_ * 2;
  if (r.mode == ImageMode::edit) {
    if (r.edit_images.empty() || r.edit_images.size() > 3) {
      bad("edit takes 1 to 3 images, got " + std::to_string(r.edit_images.size()));
    }
    if (!encoder_.has_vision()) {
      bad("this pipeline folder has no vision encoder (processor/ and the text encoder's visual tower): it "
          "cannot edit");
    }
    if (r.edit_images.size() > 1 && r.edit_style == EditStyle::edit) {
      bad("the single-image edit style takes one image; use edit_plus for several");
    }
    for (const auto& img : r.edit_images) {
      if (img.channels != 3 || img.width < 1 || img.height < 1) bad("edit images must be non-empty RGB images");
    }
    // Default size: the (last) image's aspect at 1 MP, floored to the multiple.
    const auto& last = r.edit_images.back();
    const auto [cw, ch] = calculate_dimensions(1024.0 * 1024.0, double(last.width) / double(last.height));
    if (r.width == 0) r.width = cw / multiple * multiple;
    if (r.height == 0) r.height = ch / multiple * multiple;
  }
  if (r.width == 0) r.width = 128 * vae_scale_factor_;  // default_sample_size * vae_scale_factor
  if (r.height == 0) r.height = 128 * vae_scale_factor_;
  for (auto [name, v] : {std::pair{"width", r.width}, std::pair{"height", r.height}}) {
    if (v < multiple || v > 8192 || v % multiple != 0) {
      bad(std::string(name) + " must be a multiple of " + std::to_string(multiple) + " in [" +
          std::to_string(multiple) + ", 8192], got " + std::to_string(v));
    }
  }
  if (r.steps < 1 || r.steps > 1000) bad("steps must be in [1, 1000], got " + std::to_string(r.steps));
  if (r.steps < 2 && scheduler_config_.shift_terminal && *scheduler_config_.shift_terminal != 0.0) {
    // The reference's shift_terminal stretch divides 0 by 0 on a one-step schedule.
    bad("steps must be at least 2 with this scheduler (shift_terminal), got 1");
  }
  if (r.images < 1 || r.images > 16) bad("images must be in [1, 16], got " + std::to_string(r.images));
  if (!std::isfinite(r.true_cfg_scale) || r.true_cfg_scale < 0 || r.true_cfg_scale > 100) {
    bad("true_cfg_scale must be in [0, 100]");
  }
  if (r.max_sequence_length < 1 || r.max_sequence_length > PromptEncoder::kTokenizerMaxLength) {
    bad("max_sequence_length must be in [1, 1024], got " + std::to_string(r.max_sequence_length));
  }
  if (r.mode == ImageMode::img2img || r.mode == ImageMode::inpaint) {
    if (!r.init_image) bad("an init image is required for img2img and inpainting");
    if (!(r.strength >= 0.0 && r.strength <= 1.0)) bad("strength must be in [0, 1]");
    // get_timesteps keeps int(N * strength) steps (at least one must remain).
    const auto t_start = static_cast<std::int64_t>(std::max(r.steps - std::min(r.steps * r.strength,
                                                                               double(r.steps)), 0.0));
    if (r.steps - t_start < 1) {
      bad("strength " + std::to_string(r.strength) + " with " + std::to_string(r.steps) +
          " steps leaves no denoising step");
    }
  }
  if (r.mode == ImageMode::inpaint) {
    if (!r.mask) bad("inpainting needs a mask image");
    if (r.mask->width != r.init_image->width || r.mask->height != r.init_image->height) {
      bad("mask is " + std::to_string(r.mask->width) + "x" + std::to_string(r.mask->height) +
          " but the image is " + std::to_string(r.init_image->width) + "x" + std::to_string(r.init_image->height));
    }
  }
  return r;
}

at::Tensor QwenImagePipeline::encode_image_latents(const media::Image& rgb, int width, int height,
                                                   at::Generator& gen) const {
  // _encode_vae_image: retrieve_latents(sample_mode="sample") draws from the
  // posterior with the job's generator, then (z - mean) * (1 / std).
  const at::Tensor pixels = image_to_vae_input(rgb, width, height).to(vae_.device(), vae_.dtype());
  const diffusion::LatentDist dist = vae_.encode(pixels);
  return vae_.normalize(dist.sample(gen));  // [1, z, 1, h, w]
}

at::Tensor QwenImagePipeline::denoise_prediction(const at::Tensor& latents, const at::Tensor& timestep,
                                                 const PromptEmbeds& cond, const std::optional<PromptEmbeds>& uncond,
                                                 double true_cfg_scale,
                                                 const std::vector<std::vector<ImageShape>>& img_shapes,
                                                 std::int64_t keep_tokens) const {
  at::Tensor pred = transformer_.forward(latents, cond.embeds, cond.mask, timestep, img_shapes)
                        .slice(1, 0, keep_tokens);
  if (!uncond) return pred;
  const at::Tensor neg = transformer_.forward(latents, uncond->embeds, uncond->mask, timestep, img_shapes)
                             .slice(1, 0, keep_tokens);
  // True CFG, then rescale each token's prediction to the conditional norm.
  const at::Tensor comb = neg + true_cfg_scale * (pred - neg);
  const at::Tensor cond_norm = at::linalg_vector_norm(pred, 2, {-1}, true);
  const at::Tensor comb_norm = at::linalg_vector_norm(comb, 2, {-1}, true);
  return comb * (cond_norm / comb_norm);
}

at::Tensor QwenImagePipeline::decode(const at::Tensor& latents, std::int64_t h, std::int64_t w) const {
  const at::Tensor z = vae_.denormalize(unpack_latents(latents, h, w).to(vae_.dtype()));
  const at::Tensor frames = vae_.decode(z);  // [B, 3, 1, H, W]
  return vae_output_to_unit_rgb(frames.select(2, 0));
}

bool QwenImagePipeline::plus_style(const ImageRequest& req) const {
  switch (req.edit_style) {
    case EditStyle::edit: return false;
    case EditStyle::edit_plus: return true;
    case EditStyle::automatic: break;
  }
  return edit_plus_folder_ || req.edit_images.size() > 1;
}

QwenImagePipeline::EditInputs QwenImagePipeline::prepare_edit(const ImageRequest& req, bool do_cfg) const {
  EditInputs e;
  const bool plus = plus_style(req);
  // What the VL encoder sees and what the VAE encodes, per image.
  std::vector<media::Image> condition;
  std::vector<at::Tensor> latents;
  for (const auto& img : req.edit_images) {
    const double ratio = double(img.width) / double(img.height);
    const auto [vw, vh] = calculate_dimensions(1024.0 * 1024.0, ratio);
    if (plus) {
      condition.push_back(condition_image(img, kEditPlusConditionArea));
    } else {
      condition.push_back(condition_image(img, kEditConditionArea));  // also the VAE's input, as in the reference
    }
    const media::Image& vae_src = plus ? img : condition.back();
    const at::Tensor px = image_to_vae_input(vae_src, static_cast<int>(vw), static_cast<int>(vh))
                              .to(vae_.device(), vae_.dtype());
    // _encode_vae_image of the edit pipelines: the posterior mode (no draw),
    // normalised as (z - mean) / std.
    const at::Tensor z = vae_.normalize_div(vae_.encode(px).mode());  // [1, z, 1, hh, ww]
    const std::int64_t hh = z.size(3), ww = z.size(4);
    latents.push_back(pack_latents(repeat_rows(z, req.images), req.images, z.size(1), hh, ww));
    e.shapes.push_back(ImageShape{1, hh / 2, ww / 2});
  }
  e.image_latents = at::cat(latents, 1);

  std::string prompt = req.prompt;
  const PromptTemplate* tmpl = &kEditTemplate;
  std::string prefix;
  if (plus) {
    tmpl = &kEditPlusTemplate;
    for (std::size_t i = 0; i < req.edit_images.size(); ++i) {
      prefix += "Picture " + std::to_string(i + 1) + ": <|vision_start|><|image_pad|><|vision_end|>";
    }
  }
  e.cond = encoder_.encode_with_images(prefix + prompt, condition, *tmpl, req.images);
  if (do_cfg) e.uncond = encoder_.encode_with_images(prefix + *req.negative_prompt, condition, *tmpl, req.images);
  return e;
}

at::Tensor QwenImagePipeline::generate(const ImageRequest& in, const StepCallback& on_step) const {
  const ImageRequest req = validated(in);
  const std::int64_t B = req.images;  // one prompt per job
  const std::int64_t W = req.width, H = req.height;
  const std::int64_t h = 2 * (H / (vae_scale_factor_ * 2));  // latent grid
  const std::int64_t w = 2 * (W / (vae_scale_factor_ * 2));
  const std::int64_t C = transformer_.config().in_channels / 4;

  // Prompts. True CFG only with a negative prompt and a scale above 1.
  const bool do_cfg = req.negative_prompt.has_value() && req.true_cfg_scale > 1.0;
  std::optional<EditInputs> edit;
  PromptEmbeds cond;
  std::optional<PromptEmbeds> uncond;
  if (req.mode == ImageMode::edit) {
    edit = prepare_edit(req, do_cfg);
    cond = edit->cond;
    uncond = edit->uncond;
  } else {
    cond = encoder_.encode({req.prompt}, req.max_sequence_length, B);
    if (do_cfg) uncond = encoder_.encode({*req.negative_prompt}, req.max_sequence_length, B);
  }
  const at::ScalarType dtype = cond.embeds.scalar_type();
  const c10::Device device = transformer_.device();

  // Schedule: sigmas = linspace(1, 1/N, N), mu from the image token count.
  diffusion::FlowMatchEulerDiscreteScheduler scheduler(scheduler_config_);
  scheduler.set_timesteps_qwen_image(req.steps, (h / 2) * (w / 2));
  std::vector<float> timesteps = scheduler.timesteps_vector();

  at::Generator gen = diffusion::cpu_generator(req.seed);
  at::Tensor latents;        // packed [B, (h/2)(w/2), 4C]
  at::Tensor image_latents;  // inpaint: the init image's packed latents
  at::Tensor noise;          // inpaint: the packed initial noise
  at::Tensor mask;           // inpaint: packed 0/1 repaint mask
  if (req.mode == ImageMode::text_to_image || req.mode == ImageMode::edit) {
    scheduler.set_begin_index(0);
    latents = pack_latents(diffusion::randn_tensor({B, 1, C, h, w}, gen, dtype, device), B, C, h, w);
  } else {
    const diffusion::StrengthSchedule s = scheduler.apply_strength(req.strength);
    timesteps = s.timesteps;
    // prepare_latents: the image's posterior sample first, then the noise.
    const at::Tensor img = repeat_rows(
        encode_image_latents(*req.init_image, static_cast<int>(W), static_cast<int>(H), gen).to(dtype), B);
    const at::Tensor img_t = img.transpose(1, 2);  // [B, 1, z, h, w]
    const at::Tensor raw_noise = diffusion::randn_tensor({B, 1, C, h, w}, gen, dtype, device);
    const std::vector<float> first(static_cast<std::size_t>(B), timesteps.front());
    latents = pack_latents(scheduler.scale_noise(img_t, first, raw_noise), B, C, h, w);
    if (req.mode == ImageMode::inpaint) {
      noise = pack_latents(raw_noise, B, C, h, w);
      image_latents = pack_latents(img_t, B, C, h, w);
      // The reference also VAE-encodes the masked image here (one more
      // posterior draw), but QwenImageInpaintPipeline never reads the result
      // and draws nothing after it, so it is skipped.
      const at::Tensor m = mask_to_tensor(*req.mask, static_cast<int>(W), static_cast<int>(H));
      const at::Tensor small = at::upsample_nearest2d(m, {h, w}).to(device, dtype);  // [1, 1, h, w]
      mask = pack_latents(repeat_rows(small, B).repeat({1, C, 1, 1}), B, C, h, w);
    }
  }

  std::vector<ImageShape> shapes{ImageShape{1, h / 2, w / 2}};
  if (edit) shapes.insert(shapes.end(), edit->shapes.begin(), edit->shapes.end());
  const std::vector<std::vector<ImageShape>> img_shapes(static_cast<std::size_t>(B), shapes);
  const std::int64_t noisy_tokens = latents.size(1);
  const auto total = static_cast<std::int64_t>(timesteps.size());
  for (std::int64_t i = 0; i < total; ++i) {
    const float t = timesteps[static_cast<std::size_t>(i)];
    // timestep = t.expand(B).to(latents.dtype) / 1000
    const at::Tensor timestep = at::full({B}, t, at::TensorOptions().dtype(dtype).device(device)) / 1000;
    // Edit: the reference images' tokens follow the noisy ones; only the
    // noisy tokens' prediction is kept (before CFG, as the reference slices).
    const at::Tensor input = edit ? at::cat({latents, edit->image_latents}, 1) : latents;
    const at::Tensor pred =
        denoise_prediction(input, timestep, cond, uncond, req.true_cfg_scale, img_shapes, noisy_tokens);
    at::Tensor denoised;  // for the callback only: flow matching's x0 = x_t - sigma_t * v
    if (on_step) denoised = latents - (t / 1000.0f) * pred;
    latents = scheduler.step(pred, t, latents);
    if (req.mode == ImageMode::inpaint) {
      at::Tensor keep = image_latents;
      if (i < total - 1) keep = scheduler.scale_noise(image_latents, {timesteps[static_cast<std::size_t>(i + 1)]},
                                                      noise);
      latents = (1 - mask) * keep + mask * latents;
    }
    if (on_step) on_step(i + 1, total, denoised);
  }
  return decode(latents, h, w);
}

}  // namespace mmgen::image

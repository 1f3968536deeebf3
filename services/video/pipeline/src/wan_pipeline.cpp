// The Wan video pipelines (wan_pipeline.hpp). Read beside diffusers'
// pipelines/wan/pipeline_wan.py (WanPipeline) and pipeline_wan_i2v.py
// (WanImageToVideoPipeline): same order of random draws, same dtypes, the
// same arithmetic on the latents.
#include "mmgen/video/wan_pipeline.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "mmgen/diffusion/flow_match_euler.hpp"
#include "mmgen/diffusion/noise.hpp"
#include "mmgen/diffusion/unipc_multistep.hpp"
#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/io/hf_config.hpp"
#include "mmgen/io/load_error.hpp"
#include "wan_pipeline_tensors.hpp"
#include "mmgen/video/wan_text_encoder.hpp"
#include "mmgen/video/wan_transformer.hpp"

namespace mmgen::video {

const std::string_view kWanDefaultNegativePrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，"
    "形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

namespace {

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

// Runs one component's loader; a LoadError comes back with the component's
// name in front (the loaders name the file and tensor already).
template <typename F>
auto load_component(const char* component, F&& load) {
  try {
    return load();
  } catch (const io::LoadError& e) {
    throw io::LoadError(e.kind(), std::string(component) + ": " + e.what());
  }
}

// model_index.json entries are [library, class] or [null, null].
bool component_present(const io::HfConfig& index, std::string_view key) {
  const Value* v = index.find(key);
  if (v == nullptr) return false;
  if (!v->is_array()) index.fail(key, "must be a [library, class] pair");
  const auto& a = v->as_array();
  return a.size() == 2 && !a[1].is_null();
}

std::string fmt(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// One job's scheduler: UniPC or flow-match Euler behind one interface.
class JobScheduler {
 public:
  JobScheduler(const std::variant<diffusion::UniPCConfig, diffusion::FlowMatchEulerConfig>& cfg,
               std::optional<double> flow_shift, std::int64_t steps) {
    if (const auto* u = std::get_if<diffusion::UniPCConfig>(&cfg)) {
      auto& s = s_.emplace<diffusion::UniPCMultistepScheduler>(*u);
      // UniPCMultistepScheduler.from_config(config, flow_shift=...) per job.
      if (flow_shift) s.set_flow_shift(*flow_shift);
      s.set_timesteps(steps);
      s.set_begin_index(0);
      for (std::int64_t t : s.timesteps_vector()) timesteps_.push_back(static_cast<float>(t));
      num_train_ = u->num_train_timesteps;
      sigmas_ = s.sigmas();
    } else {
      const auto& f = std::get<diffusion::FlowMatchEulerConfig>(cfg);
      auto& s = s_.emplace<diffusion::FlowMatchEulerDiscreteScheduler>(f);
      if (flow_shift) s.set_shift(*flow_shift);
      s.set_timesteps(steps);
      s.set_begin_index(0);
      timesteps_ = s.timesteps_vector();
      num_train_ = f.num_train_timesteps;
      sigmas_ = s.sigmas();
    }
  }

  const std::vector<float>& timesteps() const { return timesteps_; }
  float sigma(std::size_t i) const { return sigmas_[static_cast<std::int64_t>(i)].template item<float>(); }

  // `t >= boundary_ratio * num_train_timesteps` as the pipelines compare it:
  // a 0-dim timestep tensor against a Python float, i.e. in the timestep's
  // dtype (int64 for UniPC, float32 for flow-match Euler).
  bool high_noise(std::size_t i, double boundary_ratio) const {
    if (const auto* u = std::get_if<diffusion::UniPCMultistepScheduler>(&s_)) {
      return u->is_high_noise(u->timesteps_vector()[i], boundary_ratio);
    }
    return timesteps_[i] >= static_cast<float>(boundary_ratio * static_cast<double>(num_train_));
  }

  // The timestep tensor the transformer sees: int64 for UniPC (its
  // timesteps are int64), float32 for flow-match Euler.
  at::Tensor timestep(std::size_t i) const {
    if (const auto* u = std::get_if<diffusion::UniPCMultistepScheduler>(&s_)) {
      return u->timesteps().select(0, static_cast<std::int64_t>(i));
    }
    return std::get<diffusion::FlowMatchEulerDiscreteScheduler>(s_).timesteps().select(
        0, static_cast<std::int64_t>(i));
  }

  at::Tensor step(const at::Tensor& model_output, std::size_t i, const at::Tensor& sample) {
    if (auto* u = std::get_if<diffusion::UniPCMultistepScheduler>(&s_)) {
      return u->step(model_output, u->timesteps_vector()[i], sample);
    }
    return std::get<diffusion::FlowMatchEulerDiscreteScheduler>(s_).step(model_output, timesteps_[i], sample);
  }

 private:
  std::variant<std::monostate, diffusion::UniPCMultistepScheduler, diffusion::FlowMatchEulerDiscreteScheduler> s_;
  std::vector<float> timesteps_;
  at::Tensor sigmas_;
  std::int64_t num_train_ = 1000;
};

}  // namespace

// ============================== state ==============================

struct WanPipeline::Impl {
  WanTextEncoder text_encoder;
  WanTransformer3DModel transformer;
  std::optional<WanTransformer3DModel> transformer_2;
  diffusion::WanVae vae;
  std::variant<diffusion::UniPCConfig, diffusion::FlowMatchEulerConfig> scheduler;
  std::optional<double> boundary_ratio;
  bool expand_timesteps = false;
  bool t2v = false;  // transformer in_channels == z_dim
  bool i2v = false;  // TI2V (expand_timesteps, in == z) or A14B I2V (in == 2z + 4)

  std::int64_t size_multiple() const {
    const auto& p = transformer.config().patch_size;
    return vae.config().scale_factor_spatial * std::max(p[1], p[2]);
  }
  std::int64_t temporal() const { return vae.config().scale_factor_temporal; }
  std::int64_t spatial() const { return vae.config().scale_factor_spatial; }
  std::int64_t z_dim() const { return vae.config().z_dim; }
};

WanPipeline::WanPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WanPipeline::WanPipeline(WanPipeline&&) noexcept = default;
WanPipeline& WanPipeline::operator=(WanPipeline&&) noexcept = default;
WanPipeline::~WanPipeline() = default;

// ============================== loading ==============================

WanPipeline WanPipeline::load(const std::filesystem::path& folder, const WanLoadOptions& opts) {
  const auto index_path = folder / "model_index.json";
  if (!std::filesystem::is_regular_file(index_path)) {
    throw io::LoadError(io::LoadErrorKind::missing, index_path.string() + ": not a diffusers pipeline folder");
  }
  const io::HfConfig index = io::HfConfig::load(index_path);
  const std::string cls = index.get_string("_class_name", "");
  if (cls != "WanPipeline" && cls != "WanImageToVideoPipeline") {
    throw io::LoadError(io::LoadErrorKind::unsupported,
                        index_path.string() + ": _class_name '" + cls +
                            "' is not a Wan text/image-to-video pipeline (WanPipeline, WanImageToVideoPipeline)");
  }
  if (component_present(index, "image_encoder")) {
    throw io::LoadError(io::LoadErrorKind::unsupported,
                        "image_encoder: Wan 2.1 image-to-video with a CLIP image encoder is not supported "
                        "(Wan 2.2 I2V-A14B and TI2V-5B are)");
  }
  if (!component_present(index, "transformer")) {
    throw io::LoadError(io::LoadErrorKind::unsupported,
                        index_path.string() + ": 'transformer' is missing; pipelines without it are not supported");
  }
  const bool has_t2 = component_present(index, "transformer_2");
  std::optional<double> boundary = index.opt_double("boundary_ratio");
  const bool expand = index.get_bool("expand_timesteps", false);
  if (boundary && !(*boundary > 0.0 && *boundary <= 1.0)) index.fail("boundary_ratio", "must be in (0, 1]");
  if (has_t2 && !boundary) {
    // diffusers would never run transformer_2 then; a folder like that is broken.
    index.fail("boundary_ratio", "is required with transformer_2");
  }
  if (!has_t2) boundary.reset();  // one expert: nothing to switch to

  // scheduler/: the class decides the config type.
  auto scheduler = load_component("scheduler", [&]() -> std::variant<diffusion::UniPCConfig,
                                                                       diffusion::FlowMatchEulerConfig> {
    const auto path = folder / "scheduler" / "scheduler_config.json";
    if (!std::filesystem::is_regular_file(path)) {
      throw io::LoadError(io::LoadErrorKind::missing, path.string() + ": not found");
    }
    const io::HfConfig sc = io::HfConfig::load(path);
    const std::string name = sc.get_string("_class_name", "");
    if (name == "UniPCMultistepScheduler") return diffusion::UniPCConfig::load(path);
    if (name == "FlowMatchEulerDiscreteScheduler") {
      auto f = diffusion::FlowMatchEulerConfig::load(path);
      if (f.use_dynamic_shifting) {
        // The Wan pipelines pass no mu, so diffusers cannot run this either.
        sc.fail("use_dynamic_shifting", "is not supported by the Wan pipelines (they pass no mu)");
      }
      return f;
    }
    sc.fail("_class_name", "'" + name + "' is not supported (UniPCMultistepScheduler, FlowMatchEulerDiscreteScheduler)");
  });

  auto check_transformer = [](const WanTransformer3DModel& t, const char* name) {
    if (t.config().has_image_embedder() || t.config().has_added_kv()) {
      throw io::LoadError(io::LoadErrorKind::unsupported,
                          std::string(name) + ": a transformer with image_dim (Wan 2.1 I2V / FLF2V, CLIP image "
                                              "context) is not supported");
    }
  };
  auto transformer = load_component("transformer", [&] {
    return WanTransformer3DModel::load(folder / "transformer", opts.model);
  });
  check_transformer(transformer, "transformer");
  std::optional<WanTransformer3DModel> transformer_2;
  if (has_t2) {
    transformer_2.emplace(load_component("transformer_2", [&] {
      return WanTransformer3DModel::load(folder / "transformer_2", opts.model);
    }));
    check_transformer(*transformer_2, "transformer_2");
    const auto& a = transformer.config();
    const auto& b = transformer_2->config();
    if (a.in_channels != b.in_channels || a.out_channels != b.out_channels || a.patch_size != b.patch_size) {
      throw io::LoadError(io::LoadErrorKind::bad_config,
                          "transformer_2: in/out channels and patch size must match transformer's");
    }
  }

  const auto vae_cfg = load_component("vae", [&] { return diffusion::WanVaeConfig::load(folder / "vae"); });
  if (vae_cfg.vae_class != diffusion::VaeClass::wan) {
    throw io::LoadError(io::LoadErrorKind::unsupported, "vae: the Wan pipelines need an AutoencoderKLWan");
  }
  const std::int64_t z = vae_cfg.z_dim;
  const auto& tc = transformer.config();
  const bool t2v = tc.in_channels == z;
  const bool i2v = expand ? tc.in_channels == z : tc.in_channels == 2 * z + 4;
  if (!t2v && !i2v) {
    throw io::LoadError(io::LoadErrorKind::bad_config,
                        "transformer: in_channels " + std::to_string(tc.in_channels) + " fits neither the VAE's " +
                            std::to_string(z) + " latent channels (text-to-video) nor " +
                            std::to_string(2 * z + 4) + " (image-to-video: noise, mask, image latents)");
  }
  if (tc.out_channels != z) {
    throw io::LoadError(io::LoadErrorKind::bad_config,
                        "transformer: out_channels " + std::to_string(tc.out_channels) +
                            " differs from the VAE's z_dim " + std::to_string(z));
  }
  io::LoadOptions vae_opts = opts.model;
  if (opts.vae_dtype) vae_opts.dtype = *opts.vae_dtype;
  // Text-to-video never encodes pixels: skip the encoder's weights then.
  diffusion::VaeParts parts;
  parts.encoder = i2v || !opts.vae_decoder_only_for_t2v;
  auto vae = load_component("vae", [&] { return diffusion::WanVae::load(folder / "vae", vae_opts, parts); });

  auto text_encoder = load_component("text_encoder", [&] { return WanTextEncoder::load(folder, opts.model); });
  if (text_encoder.model().config().d_model != tc.text_dim) {
    throw io::LoadError(io::LoadErrorKind::bad_config,
                        "text_encoder: d_model " + std::to_string(text_encoder.model().config().d_model) +
                            " differs from the transformer's text_dim " + std::to_string(tc.text_dim));
  }

  auto impl = std::unique_ptr<Impl>(new Impl{std::move(text_encoder), std::move(transformer), std::move(transformer_2),
                                             std::move(vae), std::move(scheduler), boundary, expand, t2v, i2v});
  return WanPipeline(std::move(impl));
}

// ============================== queries ==============================

bool WanPipeline::supports(WanMode mode) const { return mode == WanMode::text_to_video ? impl_->t2v : impl_->i2v; }
bool WanPipeline::two_experts() const { return impl_->transformer_2.has_value(); }
std::optional<double> WanPipeline::boundary_ratio() const { return impl_->boundary_ratio; }
bool WanPipeline::expand_timesteps() const { return impl_->expand_timesteps; }
std::int64_t WanPipeline::size_multiple() const { return impl_->size_multiple(); }
std::int64_t WanPipeline::vae_scale_factor_spatial() const { return impl_->spatial(); }
std::int64_t WanPipeline::vae_scale_factor_temporal() const { return impl_->temporal(); }
std::int64_t WanPipeline::latent_channels() const { return impl_->z_dim(); }
std::int64_t WanPipeline::default_fps() const { return impl_->expand_timesteps ? 24 : 16; }
c10::ScalarType WanPipeline::dtype() const { return impl_->transformer.dtype(); }
c10::Device WanPipeline::device() const { return impl_->transformer.device(); }

// ============================== validation ==============================

VideoRequest WanPipeline::validated(const VideoRequest& in) const {
  const Impl& m = *impl_;
  VideoRequest r = in;
  if (r.width == 0) r.width = 832;  // the pipelines' defaults
  if (r.height == 0) r.height = 480;
  const std::int64_t multiple = m.size_multiple();
  const std::int64_t max_side = multiple * m.transformer.config().rope_max_seq_len;
  for (auto [name, v] : {std::pair{"width", r.width}, std::pair{"height", r.height}}) {
    if (v < multiple || v > std::min<std::int64_t>(max_side, 8192) || v % multiple != 0) {
      bad(std::string(name) + " must be a positive multiple of " + std::to_string(multiple) +
          " (VAE factor " + std::to_string(m.spatial()) + " x patch size) up to " +
          std::to_string(std::min<std::int64_t>(max_side, 8192)) + ", got " + std::to_string(v));
    }
  }
  const std::int64_t ft = m.temporal();
  const std::int64_t max_frames = ft * std::min<std::int64_t>(m.transformer.config().rope_max_seq_len, 1024) - ft + 1;
  if (r.num_frames < 1 || (r.num_frames - 1) % ft != 0 || r.num_frames > max_frames) {
    bad("num_frames must be " + std::to_string(ft) + "n + 1 (1, " + std::to_string(ft + 1) + ", " +
        std::to_string(2 * ft + 1) + ", ... up to " + std::to_string(max_frames) + "), got " +
        std::to_string(r.num_frames));
  }
  if (r.steps < 1 || r.steps > 1000) bad("steps must be in [1, 1000], got " + std::to_string(r.steps));
  if (!std::isfinite(r.guidance_scale) || r.guidance_scale < 0.0 || r.guidance_scale > 100.0) {
    bad("guidance_scale must be in [0, 100], got " + fmt(r.guidance_scale));
  }
  if (r.guidance_scale_2) {
    if (!m.boundary_ratio) {
      bad("guidance_scale_2 needs a two-expert pipeline (boundary_ratio in model_index.json); this one has one "
          "transformer");
    }
    if (!std::isfinite(*r.guidance_scale_2) || *r.guidance_scale_2 < 0.0 || *r.guidance_scale_2 > 100.0) {
      bad("guidance_scale_2 must be in [0, 100], got " + fmt(*r.guidance_scale_2));
    }
  } else if (m.boundary_ratio) {
    r.guidance_scale_2 = r.guidance_scale;  // as the pipelines default it
  }
  if (r.flow_shift && (!std::isfinite(*r.flow_shift) || *r.flow_shift <= 0.0 || *r.flow_shift > 100.0)) {
    bad("flow_shift must be in (0, 100], got " + fmt(*r.flow_shift));
  }
  if (r.max_sequence_length < 1 || r.max_sequence_length > 1024) {
    bad("max_sequence_length must be in [1, 1024], got " + std::to_string(r.max_sequence_length));
  }
  if (r.image) {
    if (!m.i2v) {
      bad("image: this pipeline folder does text-to-video only (transformer in_channels " +
          std::to_string(m.transformer.config().in_channels) + "); use an I2V or TI2V folder");
    }
    if (r.image->channels != 3 || r.image->width < 1 || r.image->height < 1 ||
        r.image->pixels.size() != std::size_t(r.image->width) * std::size_t(r.image->height) * 3) {
      bad("image must be a non-empty 8-bit RGB image, got " + std::to_string(r.image->width) + "x" +
          std::to_string(r.image->height) + " with " + std::to_string(r.image->channels) + " channels");
    }
  } else if (!m.t2v) {
    bad("image: this pipeline folder does image-to-video only (transformer in_channels " +
        std::to_string(m.transformer.config().in_channels) + "); give a first-frame image");
  }
  return r;
}

// ============================== generation ==============================

at::Tensor WanPipeline::generate(const VideoRequest& req_in, const StepCallback& on_step) const {
  const Impl& m = *impl_;
  const VideoRequest req = validated(req_in);
  const c10::Device device = m.transformer.device();
  const c10::ScalarType tdtype = m.transformer.dtype();
  const bool cfg = req.guidance_scale > 1.0;  // do_classifier_free_guidance looks at guidance_scale only
  const bool i2v = req.image.has_value();

  // 1. Prompts (negative only with CFG; diffusers' default is "").
  at::Tensor prompt_embeds = m.text_encoder.encode_prompts({req.prompt}, req.max_sequence_length).to(tdtype);
  at::Tensor negative_embeds;
  if (cfg) {
    negative_embeds =
        m.text_encoder.encode_prompts({req.negative_prompt.value_or("")}, req.max_sequence_length).to(tdtype);
  }

  // 2. Schedule.
  JobScheduler sched(m.scheduler, req.flow_shift, req.steps);
  const auto& timesteps = sched.timesteps();

  // 3. Initial noise [1, C, T, h, w] float32, drawn first as in the reference.
  const std::int64_t T = (req.num_frames - 1) / m.temporal() + 1;
  const std::int64_t h = req.height / m.spatial(), w = req.width / m.spatial();
  const std::int64_t C = i2v ? m.z_dim() : m.transformer.config().in_channels;
  at::Tensor latents = diffusion::seeded_randn({1, C, T, h, w}, req.seed, at::kFloat, device);

  // 4. Image conditioning.
  at::Tensor condition;  // A14B I2V: [1, 4 + z, T, h, w]; TI2V: [1, z, 1, h, w]
  if (i2v) {
    const at::Tensor image = image_to_video_input(*req.image, req.width, req.height).to(device);  // [1, 3, H, W]
    condition = encode_condition(m.vae, image, req.num_frames, m.expand_timesteps, m.temporal());
  }
  const bool blend_first = i2v && m.expand_timesteps;

  // Per-token timesteps (expand_timesteps): t everywhere, 0 on the first
  // latent frame for image-to-video; one value per patch token.
  const auto& patch = m.transformer.config().patch_size;
  const std::int64_t tokens_per_frame = (h / patch[1]) * (w / patch[2]);
  const std::int64_t tokens = (T / patch[0]) * tokens_per_frame;

  // Cross-attention keys/values per expert, computed at the expert's first
  // step and dropped when the loop moves on to the other expert.
  struct ExpertContext {
    int expert = -1;
    std::optional<WanTransformer3DModel::Context> cond, uncond;
  } ctx;

  const std::size_t total = timesteps.size();
  std::vector<int> experts(total, 0);  // 0: transformer (high noise), 1: transformer_2
  for (std::size_t i = 0; i < total; ++i) {
    if (m.boundary_ratio && m.transformer_2 && !sched.high_noise(i, *m.boundary_ratio)) experts[i] = 1;
  }
  for (std::size_t i = 0; i < total; ++i) {
    const int expert = experts[i];
    const WanTransformer3DModel& model = expert == 0 ? m.transformer : *m.transformer_2;
    const double scale = expert == 0 ? req.guidance_scale : *req.guidance_scale_2;
    if (ctx.expert != expert) {
      ctx.cond.reset();  // the other expert's keys/values go first
      ctx.uncond.reset();
      ctx.expert = expert;
      ctx.cond.emplace(model.encode_context(prompt_embeds));
      if (cfg) ctx.uncond.emplace(model.encode_context(negative_embeds));
      // The prompt states are needed again only if another expert follows.
      if (std::all_of(experts.begin() + static_cast<std::ptrdiff_t>(i), experts.end(),
                      [&](int e) { return e == expert; })) {
        prompt_embeds.reset();
        negative_embeds.reset();
      }
    }

    const at::Tensor t = sched.timestep(i);
    at::Tensor model_input;
    at::Tensor timestep;
    if (m.expand_timesteps) {
      model_input = blend_first ? blend_first_frame(latents, condition) : latents;
      // mask * t in float32 (the reference multiplies a float32 mask by t).
      at::Tensor per_token = at::full({1, tokens}, t.item<double>(), at::TensorOptions().dtype(at::kFloat));
      if (blend_first) per_token.narrow(1, 0, tokens_per_frame).zero_();
      timestep = per_token.to(device);
    } else {
      model_input = i2v ? at::cat({latents, condition}, 1) : latents;
      timestep = t.reshape({1}).to(device);
    }
    model_input = model_input.to(tdtype);

    at::Tensor noise_pred = model.forward(model_input, timestep, *ctx.cond);
    if (cfg) {
      const at::Tensor noise_uncond = model.forward(model_input, timestep, *ctx.uncond);
      noise_pred = noise_uncond + scale * (noise_pred - noise_uncond);
    }
    model_input.reset();

    at::Tensor denoised;
    if (on_step) denoised = latents - sched.sigma(i) * noise_pred.to(at::kFloat);  // x0 of a flow prediction
    latents = sched.step(noise_pred, i, latents);
    noise_pred.reset();
    if (on_step) {
      if (blend_first) denoised = blend_first_frame(denoised, condition);
      on_step(static_cast<std::int64_t>(i) + 1, static_cast<std::int64_t>(total), denoised);
    }
  }
  ctx.cond.reset();
  ctx.uncond.reset();

  if (blend_first) latents = blend_first_frame(latents, condition);
  condition.reset();
  return decode_video(m.vae, latents);
}

at::Tensor WanPipeline::decode_preview(const at::Tensor& denoised, std::int64_t latent_frame) const {
  if (denoised.dim() != 5 || denoised.size(1) != impl_->z_dim()) {
    bad("decode_preview: denoised must be [1, " + std::to_string(impl_->z_dim()) + ", T, h, w]");
  }
  if (latent_frame < 0 || latent_frame >= denoised.size(2)) {
    bad("decode_preview: latent_frame " + std::to_string(latent_frame) + " outside [0, " +
        std::to_string(denoised.size(2)) + ")");
  }
  return decode_video(impl_->vae, denoised.narrow(2, latent_frame, 1).narrow(0, 0, 1)).select(0, 0);
}

}  // namespace mmgen::video

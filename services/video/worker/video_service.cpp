// The video worker's job handler (video_service.hpp).
#include "video_service.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>
#include <stdexcept>
#include <string>

#include "latent_preview.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/protocol.hpp"
#include "mmgen/video/wan_pipeline.hpp"
#include "video_encode.hpp"
#include "video_params.hpp"

namespace mmgen::video {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg); }

std::string fps_text(const media::Rational& r) {
  return r.den == 1 ? std::to_string(r.num) : std::to_string(r.num) + "/" + std::to_string(r.den);
}

// Image-to-video without a size: the image's aspect ratio at the model's
// default area, each side rounded down to the size multiple — how the
// official generate.py (max_area) and diffusers' Wan I2V examples size it.
void size_from_image(const media::Image& img, std::int64_t area, std::int64_t mod, std::int64_t& w,
                     std::int64_t& h) {
  const double aspect = double(img.height) / double(img.width);
  h = std::max<std::int64_t>(mod, static_cast<std::int64_t>(std::nearbyint(std::sqrt(double(area) * aspect))) / mod * mod);
  w = std::max<std::int64_t>(mod, static_cast<std::int64_t>(std::nearbyint(std::sqrt(double(area) / aspect))) / mod * mod);
}

}  // namespace

ModelDefaults model_defaults(const WanPipeline& p) {
  ModelDefaults d;
  if (p.expand_timesteps()) {  // wan/configs/wan_ti2v_5B.py; size 1280*704
    d.family = "wan2.2-ti2v-5b";
    d.frames = 121;
    d.width = 1280;
    d.height = 704;
    d.steps = 50;
    d.cfg = 5.0;
    d.fps = {24, 1};
  } else if (p.two_experts() && p.supports(WanMode::image_to_video)) {  // wan_i2v_A14B.py
    d.family = "wan2.2-i2v-a14b";
    d.width = 1280;
    d.height = 720;
    d.steps = 40;
    d.cfg = 3.5;
    d.cfg2 = 3.5;
  } else if (p.two_experts()) {  // wan_t2v_A14B.py: sample_guide_scale (low 3.0, high 4.0)
    d.family = "wan2.2-t2v-a14b";
    d.width = 1280;
    d.height = 720;
    d.steps = 40;
    d.cfg = 4.0;
    d.cfg2 = 3.0;
  } else {  // Wan 2.1 folders: diffusers' WanPipeline defaults, the shared fps 16
    d.family = "wan2.1";
  }
  return d;
}

struct VideoService::State {
  std::unique_ptr<WanPipeline> pipeline;
  std::unique_ptr<VideoLatentPreviewer> previewer;
  ModelDefaults defaults;
};

VideoService::VideoService(const VideoServiceOptions& opts) : s_(std::make_unique<State>()) {
  if (opts.model_dir.empty()) throw std::invalid_argument("mmgen-video needs --model DIR (a diffusers Wan folder)");
  if (opts.threads > 0) at::set_num_threads(static_cast<int>(opts.threads));
  model_name_ = opts.model_dir.filename().string();
  if (model_name_.empty()) model_name_ = opts.model_dir.parent_path().filename().string();
  WanLoadOptions lo;
  lo.model = io::LoadOptions{io::parse_dtype(opts.dtype), c10::Device(opts.device)};
  s_->pipeline = std::make_unique<WanPipeline>(WanPipeline::load(opts.model_dir, lo));
  s_->previewer = std::make_unique<VideoLatentPreviewer>(*s_->pipeline);
  s_->defaults = model_defaults(*s_->pipeline);
}

VideoService::~VideoService() = default;

const ModelDefaults& VideoService::defaults() const { return s_->defaults; }

worker::Outcome VideoService::run(worker::JobContext& ctx) {
  const VideoJob job = parse_video_job(ctx.params(), ctx.inputs());
  const ModelDefaults& d = s_->defaults;
  const WanPipeline& pipe = *s_->pipeline;

  VideoRequest want;
  want.prompt = job.prompt;
  want.negative_prompt = job.negative_prompt.value_or(std::string(kWanDefaultNegativePrompt));
  want.guidance_scale = job.cfg.value_or(d.cfg);
  want.guidance_scale_2 = job.cfg2 ? job.cfg2 : d.cfg2;
  want.num_frames = job.frames.value_or(d.frames);
  want.steps = job.steps.value_or(d.steps);
  want.seed = job.seed;
  want.flow_shift = job.flow_shift;
  want.image = job.image;
  want.max_sequence_length = job.max_sequence_length;
  want.width = job.width.value_or(d.width);
  want.height = job.height.value_or(d.height);
  if (job.image && !job.width && !job.height) {
    size_from_image(*job.image, d.width * d.height, pipe.size_multiple(), want.width, want.height);
  }
  if (job.save_frames && want.num_frames > max_saved_frames()) {
    bad("param 'save_frames': a result carries at most " + std::to_string(max_saved_frames()) +
        " PNG frames next to the video, and this job makes " + std::to_string(want.num_frames) +
        " (set frames lower)");
  }
  VideoRequest req;
  try {
    req = pipe.validated(want);
  } catch (const std::invalid_argument& e) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, e.what());
  }
  media::VideoEncodeOptions enc;
  enc.fps = job.fps.value_or(d.fps);
  enc.crf = job.crf;
  enc.preset = job.preset;

  const auto total = static_cast<std::uint32_t>(req.steps);
  ctx.progress(0, total, "encoding prompt");
  const auto t0 = std::chrono::steady_clock::now();
  const at::Tensor pixels = pipe.generate(req, [&](std::int64_t step, std::int64_t steps, const at::Tensor& denoised) {
    ctx.check_cancelled();
    std::optional<worker::Output> preview;
    if (job.preview_every > 0 && (step % job.preview_every == 0 || step == steps)) {
      preview = worker::Output{"preview", "image/png", s_->previewer->render_png(denoised)};
    }
    ctx.progress(static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(steps),
                 step == steps ? "decoding frames" : std::string(), std::move(preview));
  });
  ctx.check_cancelled();
  const auto t1 = std::chrono::steady_clock::now();
  ctx.progress(total, total, "encoding video");

  // [F, H, W, 3] float32 in [0, 1].
  const at::Tensor frames = pixels.to(at::kFloat).cpu().contiguous();
  const std::int64_t F = frames.size(0);
  const auto H = static_cast<int>(frames.size(1)), W = static_cast<int>(frames.size(2));
  const EncodedVideo video = encode_video(std::span<const float>(frames.data_ptr<float>(), std::size_t(frames.numel())),
                                          F, H, W, enc, job.save_frames);
  const auto t2 = std::chrono::steady_clock::now();

  worker::Outcome out;
  out.outputs.push_back({"video.mp4", "video/mp4", video.mp4});
  for (std::size_t i = 0; i < video.frames.size(); ++i) {
    out.outputs.push_back({frame_blob_name(std::int64_t(i) + 1), "image/png", video.frames[i]});
  }
  out.data["seed"] = static_cast<std::int64_t>(req.seed);
  out.data["width"] = W;
  out.data["height"] = H;
  out.data["frames"] = F;
  out.data["fps"] = fps_text(enc.fps);
  out.data["steps"] = req.steps;
  out.data["cfg"] = req.guidance_scale;
  if (req.guidance_scale_2) out.data["cfg2"] = *req.guidance_scale_2;
  out.data["crf"] = enc.crf;
  out.data["preset"] = enc.preset;
  out.data["model_family"] = d.family;
  out.data["default_negative_prompt"] = !job.negative_prompt.has_value();
  out.metrics["generate_s"] = std::chrono::duration<double>(t1 - t0).count();
  out.metrics["encode_s"] = std::chrono::duration<double>(t2 - t1).count();
  out.metrics["seconds_per_step"] = std::chrono::duration<double>(t1 - t0).count() / double(req.steps);
  return out;
}

}  // namespace mmgen::video

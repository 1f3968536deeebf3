// The image worker's job handler (image_service.hpp).
#include "image_service.hpp"

#include <ATen/Parallel.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

#include "image_params.hpp"
#include "latent_preview.hpp"
#include "mmgen/image/image_tensors.hpp"
#include "mmgen/image/qwenimage_pipeline.hpp"
#include "mmgen/io/checkpoint.hpp"
#include "mmgen/protocol.hpp"

namespace mmgen::image {

struct ImageService::State {
  std::unique_ptr<QwenImagePipeline> pipeline;
  std::unique_ptr<LatentPreviewer> previewer;
};

ImageService::ImageService(const ImageServiceOptions& opts) : s_(std::make_unique<State>()) {
  if (opts.model_dir.empty()) throw std::invalid_argument("mmgen-image needs --model DIR (a Qwen-Image folder)");
  if (opts.threads > 0) at::set_num_threads(static_cast<int>(opts.threads));
  model_name_ = opts.model_dir.filename().string();
  if (model_name_.empty()) model_name_ = opts.model_dir.parent_path().filename().string();
  const io::LoadOptions lo{io::parse_dtype(opts.dtype), c10::Device(opts.device)};
  s_->pipeline = std::make_unique<QwenImagePipeline>(QwenImagePipeline::load(opts.model_dir, lo));
  s_->previewer = std::make_unique<LatentPreviewer>(*s_->pipeline);
}

ImageService::~ImageService() = default;

worker::Outcome ImageService::run(worker::JobContext& ctx) {
  ImageJob job = parse_image_job(ctx.params(), ctx.inputs());
  ImageRequest req;
  try {
    req = s_->pipeline->validated(job.request);
  } catch (const std::invalid_argument& e) {
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, e.what());
  }
  const std::int64_t s = s_->pipeline->vae_scale_factor();
  const std::int64_t h = 2 * (req.height / (2 * s)), w = 2 * (req.width / (2 * s));
  ctx.progress(0, static_cast<std::uint32_t>(req.steps), "encoding prompt");
  diffusion::TilingOptions tiling;
  tiling.enabled = job.tiling == ImageJob::Tiling::on ||
                   (job.tiling == ImageJob::Tiling::automatic && req.width * req.height > kAutoTileArea);
  s_->pipeline->set_vae_tiling(tiling);  // one job at a time (capacity 1)

  // Each step: honour a cancel, then report progress (with a preview every N steps).
  const StepCallback on_step = [&](std::int64_t step, std::int64_t total, const at::Tensor& denoised) {
    ctx.check_cancelled();
    std::optional<worker::Output> preview;
    if (job.preview_every > 0 && (step % job.preview_every == 0 || step == total)) {
      preview = worker::Output{"preview", "image/png", s_->previewer->render_png(denoised, h, w)};
    }
    ctx.progress(static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(total), {}, std::move(preview));
  };
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor pixels;
  try {
    pixels = s_->pipeline->generate(req, on_step);
  } catch (const std::invalid_argument& e) {
    // Components check what they are given (image sizes, prompt placeholders).
    throw proto::ProtocolError(proto::ErrorCode::invalid_request, e.what());
  }
  ctx.check_cancelled();
  const double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  worker::Outcome out;
  for (std::int64_t i = 0; i < pixels.size(0); ++i) {
    const media::Image img = unit_rgb_to_image(pixels[i]);
    // encode_image's last argument is the zlib level for PNG, the quality otherwise.
    const int level = job.format == media::ImageFormat::png ? 3 : job.quality;
    const auto bytes = media::encode_image(img, job.format, level);
    const std::string name = pixels.size(0) == 1 ? "image" : "image-" + std::to_string(i + 1);
    out.outputs.push_back({name, std::string(media::mime_type(job.format)),
                           std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())});
  }
  out.data["seed"] = static_cast<std::int64_t>(req.seed);
  out.data["width"] = req.width;
  out.data["height"] = req.height;
  out.data["steps"] = req.steps;
  out.metrics["seconds_per_image"] = run_s / double(pixels.size(0));
  return out;
}

}  // namespace mmgen::image

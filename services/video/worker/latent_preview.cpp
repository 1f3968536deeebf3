// Linear latent previews of video jobs (latent_preview.hpp).
#include "latent_preview.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/linalg_lstsq.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>

#include <vector>

#include "mmgen/diffusion/noise.hpp"
#include "mmgen/media/image.hpp"
#include "mmgen/media/quantize.hpp"

namespace mmgen::video {

namespace {
constexpr std::int64_t kFitGrid = 16;  // latent cells per side of the fitting decode (256 >= z + 1 samples)
}

VideoLatentPreviewer::VideoLatentPreviewer(const WanPipeline& pipeline) {
  const std::int64_t C = pipeline.latent_channels();
  const std::int64_t s = pipeline.vae_scale_factor_spatial();
  // Normalised latents (unit variance), as the denoiser's x0 estimate is.
  const at::Tensor z = diffusion::seeded_randn({1, C, 1, kFitGrid, kFitGrid}, 0, at::kFloat);
  const at::Tensor rgb = pipeline.decode_preview(z, 0).to(at::kFloat).cpu();             // [g*s, g*s, 3] in [0, 1]
  const at::Tensor cells = at::avg_pool2d(rgb.permute({2, 0, 1}).unsqueeze(0), {s, s});  // [1, 3, g, g]
  const at::Tensor X = at::cat({z.reshape({C, -1}).t(), at::ones({kFitGrid * kFitGrid, 1})}, 1);  // [g², C+1]
  const at::Tensor Y = cells.reshape({3, -1}).t();                                               // [g², 3]
  const at::Tensor sol = std::get<0>(at::linalg_lstsq(X, Y));                                     // [C+1, 3]
  weight_ = sol.slice(0, 0, C).t().contiguous();
  bias_ = sol[C].contiguous();
}

at::Tensor VideoLatentPreviewer::render(const at::Tensor& denoised) const {
  const at::Tensor lat = denoised[0].to(at::kFloat).cpu();  // [z, T, h, w]
  const at::Tensor frame = lat.select(1, lat.size(1) / 2);   // [z, h, w]
  const std::int64_t h = frame.size(1), w = frame.size(2);
  const at::Tensor rgb = at::matmul(weight_, frame.reshape({frame.size(0), -1})) + bias_.unsqueeze(1);  // [3, h*w]
  return at::clamp(rgb, 0.0, 1.0).reshape({3, h, w}).permute({1, 2, 0}).contiguous();
}

std::string VideoLatentPreviewer::render_png(const at::Tensor& denoised) const {
  const at::Tensor rgb = render(denoised);
  const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
  std::vector<std::uint8_t> bytes(std::size_t(h) * std::size_t(w) * 3);
  media::quantize_unit(std::span<const float>(rgb.data_ptr<float>(), bytes.size()), bytes);
  const auto png = media::encode_png(media::ImageView(bytes.data(), w, h, 3), 1);
  return {reinterpret_cast<const char*>(png.data()), png.size()};
}

}  // namespace mmgen::video

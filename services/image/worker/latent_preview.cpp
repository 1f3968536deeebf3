// Linear latent previews (latent_preview.hpp).
#include "latent_preview.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/linalg_lstsq.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/ones.h>

#include <cstring>

#include "mmgen/diffusion/noise.hpp"
#include "mmgen/image/image_tensors.hpp"
#include "mmgen/media/image.hpp"

namespace mmgen::image {

namespace {
constexpr std::int64_t kFitGrid = 16;  // latent cells per side of the fitting decode
}

LatentPreviewer::LatentPreviewer(const QwenImagePipeline& pipeline) {
  const auto& vae = pipeline.vae();
  const std::int64_t C = vae.config().z_dim;
  const std::int64_t s = pipeline.vae_scale_factor();
  // Transformer-space latents (unit variance), as the denoiser sees them.
  const at::Tensor z = diffusion::seeded_randn({1, C, 1, kFitGrid, kFitGrid}, 0, at::kFloat);
  const at::Tensor rgb = vae.decode(vae.denormalize(z.to(vae.device(), vae.dtype()))).select(2, 0);  // [1,3,H,W]
  const at::Tensor cells = at::avg_pool2d(rgb.to(at::kFloat).cpu(), {s, s});                    // [1,3,g,g]
  const at::Tensor X = at::cat({z.reshape({C, -1}).t(), at::ones({kFitGrid * kFitGrid, 1})}, 1);  // [g², C+1]
  const at::Tensor Y = cells.reshape({3, -1}).t();                                               // [g², 3]
  const at::Tensor sol = std::get<0>(at::linalg_lstsq(X, Y));                                     // [C+1, 3]
  weight_ = sol.slice(0, 0, C).t().contiguous();
  bias_ = sol[C].contiguous();
}

std::string LatentPreviewer::render_png(const at::Tensor& packed, std::int64_t h, std::int64_t w) const {
  const at::Tensor lat = unpack_latents(packed.slice(0, 0, 1).to(at::kFloat).cpu(), h, w);  // [1, C, 1, h, w]
  const at::Tensor cells = lat.select(2, 0)[0].reshape({weight_.size(1), -1});             // [C, h*w]
  const at::Tensor rgb = (at::matmul(weight_, cells) + bias_.unsqueeze(1)).reshape({3, h, w});  // [-1, 1]
  const media::Image img = unit_rgb_to_image(vae_output_to_unit_rgb(rgb.unsqueeze(0))[0]);
  const auto png = media::encode_png(img, 1);
  return {reinterpret_cast<const char*>(png.data()), png.size()};
}

}  // namespace mmgen::image

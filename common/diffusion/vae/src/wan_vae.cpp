// Encode / decode of the whole VAE (wan_vae.hpp): AutoencoderKLWan._encode,
// _decode, tiled_encode, tiled_decode, patchify / unpatchify and
// DiagonalGaussianDistribution, plus the pipelines' latent normalisation.
// AutoencoderKLQwenImage's versions are the same code paths, except that its
// tiled decode does not clamp (config().clamp_tiled_decode).
#include <ATen/TensorOperators.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/tensor.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "mmgen/diffusion/wan_vae.hpp"

namespace mmgen::diffusion {

namespace {

// Chunking of the reference: frame 0 alone, then 4 frames at a time.
constexpr std::int64_t kEncodeChunk = 4;

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

[[noreturn]] void bad_input(const std::string& what) { throw std::invalid_argument("vae: " + what); }

// [B, C, F, H, W] -> [B, C * p * p, F, H / p, W / p]; channel c * p^2 + pw * p + ph.
at::Tensor patchify(const at::Tensor& x, std::int64_t p) {
  if (p == 1) return x;
  const std::int64_t b = x.size(0), c = x.size(1), f = x.size(2), h = x.size(3), w = x.size(4);
  return x.reshape({b, c, f, h / p, p, w / p, p})
      .permute({0, 1, 6, 4, 2, 3, 5})
      .reshape({b, c * p * p, f, h / p, w / p});
}

// The inverse, as a view (the caller's copy into the output materialises it).
at::Tensor unpatchify(const at::Tensor& x, std::int64_t p) {
  if (p == 1) return x;
  const std::int64_t b = x.size(0), c = x.size(1) / (p * p), f = x.size(2), h = x.size(3), w = x.size(4);
  return x.view({b, c, p, p, f, h, w}).permute({0, 1, 4, 5, 3, 6, 2}).reshape({b, c, f, h * p, w * p});
}

// blend_v / blend_h: the first `extent` rows (dim 3) or columns (dim 4) of b
// become a linear ramp from a's last ones to b's own. Row y weighs a by
// 1 - y / extent and b by y / extent, each product rounded to the tensor's
// dtype before the sum, as the reference's per-row scalar arithmetic does.
void blend(const at::Tensor& a, at::Tensor& b, std::int64_t extent, std::int64_t dim) {
  const std::int64_t e = std::min({a.size(dim), b.size(dim), extent});
  if (e <= 0) return;
  std::vector<float> wa(static_cast<std::size_t>(e)), wb(static_cast<std::size_t>(e));
  for (std::int64_t y = 0; y < e; ++y) {
    wa[std::size_t(y)] = float(1.0 - double(y) / double(e));
    wb[std::size_t(y)] = float(double(y) / double(e));
  }
  std::vector<std::int64_t> shape(std::size_t(b.dim()), 1);
  shape[std::size_t(dim)] = e;
  auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor ta = at::from_blob(wa.data(), shape, opts).to(b.device());
  const at::Tensor tb = at::from_blob(wb.data(), shape, opts).to(b.device());
  at::Tensor head = b.narrow(dim, 0, e);
  const at::Tensor tail = a.narrow(dim, a.size(dim) - e, e);
  head.copy_((tail * ta).to(b.scalar_type()) + (head * tb).to(b.scalar_type()));
}

// Tiles of one row, blended with the row above and their left neighbour in
// place (the reference blends rows[i-1][j] after it was itself blended), then
// cropped to the stride and joined along the width.
at::Tensor blend_row(const std::vector<at::Tensor>& above, std::vector<at::Tensor>& row, std::int64_t blend_h,
                     std::int64_t blend_w, std::int64_t keep_h, std::int64_t keep_w) {
  std::vector<at::Tensor> crops;
  for (std::size_t j = 0; j < row.size(); ++j) {
    if (!above.empty()) blend(above[j], row[j], blend_h, 3);
    if (j > 0) blend(row[j - 1], row[j], blend_w, 4);
    crops.push_back(row[j].slice(3, 0, keep_h).slice(4, 0, keep_w));
  }
  return at::cat(crops, 4);
}

}  // namespace

// ============================== posterior ==============================

at::Tensor LatentDist::std() const { return at::exp(0.5 * logvar); }

at::Tensor LatentDist::sample(const at::Tensor& noise) const {
  if (!noise.sizes().equals(mean.sizes())) {
    bad_input("sample noise has shape " + shape_of(noise) + ", expected the posterior's " + shape_of(mean));
  }
  return mean + std() * noise.to(mean.device(), mean.scalar_type());
}

at::Tensor LatentDist::sample(at::Generator gen) const {
  // randn_tensor with a CPU generator: drawn on the CPU in the latents' dtype, then moved.
  at::Tensor noise = at::randn(mean.sizes(), gen, at::TensorOptions().dtype(mean.scalar_type()));
  return sample(noise);
}

// ============================== encode ==============================

LatentDist WanVae::encode(const at::Tensor& input) const {
  if (!encoder_) bad_input("this VAE was loaded without its encoder");
  const std::int64_t p = cfg_.patch_size;
  const std::int64_t channels = cfg_.in_channels / (p * p);
  if (input.dim() != 5 || input.size(1) != channels) {
    bad_input("encode expects [B, " + std::to_string(channels) + ", F, H, W] pixels, got " + shape_of(input));
  }
  const std::int64_t f = input.size(2), h = input.size(3), w = input.size(4);
  if (input.size(0) < 1 || f < 1 || h < 1 || w < 1) bad_input("encode got an empty input " + shape_of(input));
  if ((f - 1) % kEncodeChunk != 0) {
    // The reference would silently drop the frames after the last full chunk.
    bad_input("encode needs 4n + 1 frames, got " + std::to_string(f));
  }
  if (cfg_.is_residual && (h % cfg_.spatial_compression_ratio != 0 || w % cfg_.spatial_compression_ratio != 0)) {
    bad_input("encode needs height and width that are multiples of " + std::to_string(cfg_.spatial_compression_ratio) +
              ", got " + std::to_string(h) + "x" + std::to_string(w));
  }
  if (h % p != 0 || w % p != 0) {
    bad_input("encode needs height and width divisible by patch_size " + std::to_string(p));
  }
  const at::Tensor x = input.to(device_, dtype_);
  // The reference tests the unpatchified size against the tile size.
  const bool tiled = tiling_.enabled && (w > tiling_.tile_sample_min_width || h > tiling_.tile_sample_min_height);
  const at::Tensor moments = tiled ? encode_tiled(patchify(x, p)) : encode_untiled(x);  // [B, 2z, T', h, w]
  LatentDist d;
  d.mean = moments.slice(1, 0, cfg_.z_dim);
  d.logvar = at::clamp(moments.slice(1, cfg_.z_dim), -30.0, 20.0);
  return d;
}

at::Tensor WanVae::encode_untiled(const at::Tensor& x) const {
  // x: [B, 3, F, H, W] -> [B, 2z, 1 + (F - 1) / 4, h, w]. Wan 2.2's patchify
  // is per frame, so it runs per chunk: no patchified copy of the whole video.
  const std::int64_t chunks = 1 + (x.size(2) - 1) / kEncodeChunk;
  FeatureCache cache;
  std::vector<at::Tensor> out;
  for (std::int64_t i = 0; i < chunks; ++i) {
    cache.start_chunk(/*last=*/i + 1 == chunks);
    const at::Tensor chunk = i == 0 ? x.slice(2, 0, 1) : x.slice(2, 1 + kEncodeChunk * (i - 1), 1 + kEncodeChunk * i);
    // quant_conv is 1x1x1, so applying it per chunk equals applying it to the whole.
    out.push_back(quant_conv((*encoder_)(patchify(chunk, cfg_.patch_size), &cache)));
  }
  return out.size() == 1 ? out[0] : at::cat(out, 2);
}

at::Tensor WanVae::encode_tiled(const at::Tensor& x) const {
  // Tiles are cut from the (patchified) input with the pixel tile sizes, as the reference does.
  const std::int64_t ratio = cfg_.spatial_compression_ratio / cfg_.patch_size;
  const std::int64_t height = x.size(3), width = x.size(4);
  const TilingOptions& t = tiling_;
  const std::int64_t latent_min_h = t.tile_sample_min_height / ratio, latent_min_w = t.tile_sample_min_width / ratio;
  const std::int64_t latent_stride_h = t.tile_sample_stride_height / ratio;
  const std::int64_t latent_stride_w = t.tile_sample_stride_width / ratio;
  const std::int64_t chunks = 1 + (x.size(2) - 1) / kEncodeChunk;

  std::vector<at::Tensor> above, row, rows;
  for (std::int64_t i = 0; i < height; i += t.tile_sample_stride_height) {
    row.clear();
    for (std::int64_t j = 0; j < width; j += t.tile_sample_stride_width) {
      const at::Tensor area = x.slice(3, i, i + t.tile_sample_min_height).slice(4, j, j + t.tile_sample_min_width);
      FeatureCache cache;
      std::vector<at::Tensor> frames;
      for (std::int64_t k = 0; k < chunks; ++k) {
        cache.start_chunk(/*last=*/k + 1 == chunks);
        const at::Tensor chunk =
            k == 0 ? area.slice(2, 0, 1) : area.slice(2, 1 + kEncodeChunk * (k - 1), 1 + kEncodeChunk * k);
        frames.push_back(quant_conv((*encoder_)(chunk, &cache)));
      }
      row.push_back(at::cat(frames, 2));
    }
    rows.push_back(blend_row(above, row, latent_min_h - latent_stride_h, latent_min_w - latent_stride_w,
                             latent_stride_h, latent_stride_w));
    above = std::move(row);
    row = {};
  }
  return at::cat(rows, 3).slice(3, 0, height / ratio).slice(4, 0, width / ratio);
}

// ============================== decode ==============================

at::Tensor WanVae::decode(const at::Tensor& z_in) const {
  if (!decoder_) bad_input("this VAE was loaded without its decoder");
  if (z_in.dim() != 5 || z_in.size(1) != cfg_.z_dim) {
    bad_input("decode expects [B, " + std::to_string(cfg_.z_dim) + ", T, h, w] latents, got " + shape_of(z_in));
  }
  if (z_in.size(0) < 1 || z_in.size(2) < 1 || z_in.size(3) < 1 || z_in.size(4) < 1) {
    bad_input("decode got empty latents " + shape_of(z_in));
  }
  const at::Tensor z = z_in.to(device_, dtype_);
  const std::int64_t ratio = cfg_.spatial_compression_ratio;
  const bool tiled = tiling_.enabled && (z.size(4) > tiling_.tile_sample_min_width / ratio ||
                                         z.size(3) > tiling_.tile_sample_min_height / ratio);
  return tiled ? decode_tiled(z) : decode_untiled(z);
}

at::Tensor WanVae::decode_untiled(const at::Tensor& z) const {
  // z: [B, z, T, h, w] -> [B, 3, 1 + 4 (T - 1), H, W], one latent frame at a
  // time. The output is allocated once after the first frame and each chunk is
  // clamped straight into it (the reference concatenates as it goes).
  const at::Tensor x = post_quant_conv(z);
  const std::int64_t frames = z.size(2);
  FeatureCache cache;
  at::Tensor out;
  std::int64_t written = 0;
  // Frames per latent frame after the first: 2 per temporal upsampler.
  std::int64_t per_latent = 1;
  for (const UpBlock& u : decoder_->up_blocks) {
    if (u.upsampler && u.upsampler->mode == Resample::Mode::upsample3d) per_latent *= 2;
  }
  for (std::int64_t i = 0; i < frames; ++i) {
    cache.start_chunk(/*last=*/i + 1 == frames);
    at::Tensor y = unpatchify((*decoder_)(x.slice(2, i, i + 1), &cache, i == 0), cfg_.patch_size);
    if (!out.defined()) {
      const std::int64_t total = y.size(2) + (frames - 1) * per_latent;
      out = at::empty({y.size(0), y.size(1), total, y.size(3), y.size(4)}, y.options());
    }
    if (written + y.size(2) > out.size(2) || (i > 0 && y.size(2) != per_latent)) {
      throw std::logic_error("vae: decoder produced " + std::to_string(y.size(2)) + " frames for latent frame " +
                             std::to_string(i) + ", expected " + std::to_string(i == 0 ? 1 : per_latent));
    }
    at::Tensor dst = out.slice(2, written, written + y.size(2));
    at::clamp_out(dst, y, std::optional<at::Scalar>(-1.0), std::optional<at::Scalar>(1.0));
    written += y.size(2);
  }
  return out;
}

at::Tensor WanVae::decode_tiled(const at::Tensor& z) const {
  const std::int64_t ratio = cfg_.spatial_compression_ratio, p = cfg_.patch_size;
  const std::int64_t height = z.size(3), width = z.size(4);
  const TilingOptions& t = tiling_;
  const std::int64_t latent_min_h = t.tile_sample_min_height / ratio, latent_min_w = t.tile_sample_min_width / ratio;
  const std::int64_t latent_stride_h = t.tile_sample_stride_height / ratio;
  const std::int64_t latent_stride_w = t.tile_sample_stride_width / ratio;
  // Blending happens before unpatchify, in patch units.
  const std::int64_t stride_h = t.tile_sample_stride_height / p, stride_w = t.tile_sample_stride_width / p;
  const std::int64_t blend_h = t.tile_sample_min_height / p - stride_h;
  const std::int64_t blend_w = t.tile_sample_min_width / p - stride_w;

  std::vector<at::Tensor> above, row, rows;
  for (std::int64_t i = 0; i < height; i += latent_stride_h) {
    row.clear();
    for (std::int64_t j = 0; j < width; j += latent_stride_w) {
      const at::Tensor area = z.slice(3, i, i + latent_min_h).slice(4, j, j + latent_min_w);
      FeatureCache cache;
      std::vector<at::Tensor> frames;
      for (std::int64_t k = 0; k < z.size(2); ++k) {
        cache.start_chunk(/*last=*/k + 1 == z.size(2));
        frames.push_back((*decoder_)(post_quant_conv(area.slice(2, k, k + 1)), &cache, k == 0));
      }
      row.push_back(at::cat(frames, 2));
    }
    rows.push_back(blend_row(above, row, blend_h, blend_w, stride_h, stride_w));
    above = std::move(row);
    row = {};
  }
  const std::int64_t sample_h = height * ratio / p, sample_w = width * ratio / p;
  at::Tensor dec = unpatchify(at::cat(rows, 3).slice(3, 0, sample_h).slice(4, 0, sample_w), p);
  return cfg_.clamp_tiled_decode ? at::clamp(dec, -1.0, 1.0) : dec.contiguous();
}

// ============================== latents ==============================

at::Tensor WanVae::latent_stat(const std::vector<double>& v, const at::Tensor& like) const {
  // torch.tensor(config list) is float32, then moved to the latents' dtype.
  std::vector<float> f(v.begin(), v.end());
  return at::from_blob(f.data(), {1, std::int64_t(f.size()), 1, 1, 1}, at::TensorOptions().dtype(at::kFloat))
      .to(like.device(), like.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

at::Tensor WanVae::normalize(const at::Tensor& x) const {
  if (x.dim() != 5 || x.size(1) != cfg_.z_dim) bad_input("normalize expects [B, z, T, h, w], got " + shape_of(x));
  return (x - latent_stat(cfg_.latents_mean, x)) * at::reciprocal(latent_stat(cfg_.latents_std, x));
}

at::Tensor WanVae::normalize_div(const at::Tensor& x) const {
  if (x.dim() != 5 || x.size(1) != cfg_.z_dim) bad_input("normalize_div expects [B, z, T, h, w], got " + shape_of(x));
  return (x - latent_stat(cfg_.latents_mean, x)) / latent_stat(cfg_.latents_std, x);
}

at::Tensor WanVae::denormalize(const at::Tensor& z) const {
  if (z.dim() != 5 || z.size(1) != cfg_.z_dim) bad_input("denormalize expects [B, z, T, h, w], got " + shape_of(z));
  return z / at::reciprocal(latent_stat(cfg_.latents_std, z)) + latent_stat(cfg_.latents_mean, z);
}

void WanVae::set_tiling(const TilingOptions& t) {
  if (t.tile_sample_min_height <= 0 || t.tile_sample_min_width <= 0 || t.tile_sample_stride_height <= 0 ||
      t.tile_sample_stride_width <= 0) {
    throw std::invalid_argument("vae: tile sizes and strides must be positive");
  }
  const std::int64_t ratio = cfg_.spatial_compression_ratio;
  if (t.tile_sample_stride_height < ratio || t.tile_sample_stride_width < ratio) {
    // A stride under one latent pixel would make the reference's crops empty.
    throw std::invalid_argument("vae: tile strides must be at least " + std::to_string(ratio) + " pixels");
  }
  if (t.tile_sample_min_height < t.tile_sample_stride_height || t.tile_sample_min_width < t.tile_sample_stride_width) {
    throw std::invalid_argument("vae: tiles must be at least as large as their stride");
  }
  tiling_ = t;
}

}  // namespace mmgen::diffusion

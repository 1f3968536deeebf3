// Forward passes of the VAE's modules (wan_vae.hpp). Read beside diffusers'
// autoencoder_kl_wan.py: WanCausalConv3d, WanRMS_norm, WanResidualBlock,
// WanAttentionBlock, WanResample, AvgDown3D, DupUp3D, the down/up/mid blocks and
// WanEncoder3d / WanDecoder3d. Same op order and the same feature-cache rules;
// the differences are layout only (noted where they occur) and change no value
// beyond float rounding.
#include <ATen/TensorOperators.h>
#include <ATen/ops/_upsample_nearest_exact2d.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/conv3d.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <stdexcept>

#include "mmgen/diffusion/wan_vae.hpp"

namespace mmgen::diffusion {

namespace {

// The reference's CACHE_T: frames of a convolution's input kept for the next chunk.
constexpr std::int64_t kCacheFrames = 2;

// The cache entry for the next chunk: the last two frames of `x`; when the chunk
// had a single frame, the previous entry's last frame goes in front of it.
at::Tensor tail_for_cache(const at::Tensor& x, const at::Tensor& previous) {
  const std::int64_t t = x.size(2);
  at::Tensor keep = x.slice(2, std::max<std::int64_t>(t - kCacheFrames, 0), t);
  if (keep.size(2) < kCacheFrames && previous.defined()) {
    return at::cat({previous.slice(2, previous.size(2) - 1), keep}, 2);
  }
  // A copy, so the chunk's activation is freed once the chunk is done.
  return keep.clone(at::MemoryFormat::Contiguous);
}

// A causal convolution that reads and refreshes its feature-cache slot.
at::Tensor cached_conv(const CausalConv3d& conv, const at::Tensor& x, FeatureCache* cache) {
  if (cache == nullptr) return conv(x);
  const std::size_t i = cache->take();
  if (!cache->keep) return conv(x, cache->slots[i]);
  at::Tensor keep = tail_for_cache(x, cache->slots[i]);
  at::Tensor y = conv(x, cache->slots[i]);
  cache->slots[i] = std::move(keep);
  cache->states[i] = FeatureCache::State::frames;
  return y;
}

// The norms return fresh tensors, so their activation can be applied in place.
at::Tensor silu_inplace(at::Tensor x) {
  at::silu_(x);
  return x;
}

}  // namespace

std::size_t FeatureCache::take() {
  if (next == slots.size()) {
    slots.emplace_back();
    states.push_back(State::empty);
  }
  return next++;
}

// ============================== layers ==============================

at::Tensor CausalConv3d::operator()(const at::Tensor& x, const at::Tensor& cache) const {
  // x: [B, I, T, H, W]. Time is padded in front only: the cached frames of the
  // previous chunk, then zeros for what the cache lacks. Height and width use
  // the convolution's own symmetric zero padding (the reference pads with F.pad
  // first; the values are the same and one copy is saved).
  const std::int64_t kt = weight.size(2);
  if (x.size(2) == 1 && !cache.defined() && pad_t == kt - 1) {
    // One frame and nothing cached (an image, or a video's first chunk): the
    // padded input is kt - 1 zero frames then x, and the single output frame
    // sees x through the last temporal tap only. The other taps multiply
    // zeros, so a 2-D convolution with that tap is the same sum without them
    // (kt times fewer multiply-adds, no padded copy of the input).
    at::Tensor y = at::conv2d(x.squeeze(2), weight.select(2, kt - 1), bias, {stride[1], stride[2]}, {pad_h, pad_w});
    return y.unsqueeze(2);  // [B, O, 1, H', W']
  }
  at::Tensor in = x;
  if (pad_t > 0) {
    std::int64_t zeros = pad_t;
    std::vector<at::Tensor> parts;
    if (cache.defined()) zeros -= cache.size(2);
    if (zeros > 0) {
      parts.push_back(at::zeros({x.size(0), x.size(1), zeros, x.size(3), x.size(4)}, x.options()));
    }
    if (cache.defined()) parts.push_back(cache);
    parts.push_back(x);
    in = at::cat(parts, 2);
  }
  return at::conv3d(in, weight, bias, stride, {0, pad_h, pad_w});
}

at::Tensor FrameConv2d::operator()(const at::Tensor& x, Before before) const {
  const std::int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  // [B, C, T, H, W] -> [B * T, C, H, W]; a view when there is one frame.
  at::Tensor frames = t == 1 ? x.squeeze(2) : x.transpose(1, 2).reshape({b * t, c, h, w});
  switch (before) {
    case Before::nothing: break;
    case Before::upsample_nearest_2x:
      // nearest-exact at exactly 2x duplicates pixels, so the reference's
      // float32 round trip for half types changes nothing and is skipped.
      frames = at::_upsample_nearest_exact2d(frames, {2 * h, 2 * w});
      break;
    case Before::zero_pad_right_bottom: frames = at::constant_pad_nd(frames, {0, 1, 0, 1}); break;
  }
  at::Tensor y = at::conv2d(frames, weight, bias, stride, padding);  // [B * T, O, H', W']
  return t == 1 ? y.unsqueeze(2) : y.view({b, t, y.size(1), y.size(2), y.size(3)}).transpose(1, 2);
}

at::Tensor ChannelRMSNorm::operator()(const at::Tensor& x) const {
  // F.normalize(x, dim=1): x / max(||x||_2, 1e-12) over channels, computed in
  // float32 for half types as the reference does, then * sqrt(C) * gamma.
  const bool low = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  const at::Tensor xf = low ? x.to(at::kFloat) : x;
  at::Tensor denom = at::linalg_vector_norm(xf, 2, at::IntArrayRef{1}, /*keepdim=*/true).clamp_min_(1e-12);
  at::Tensor y = xf / denom;
  if (low) y = y.to(x.scalar_type());
  return y.mul_(scale).mul_(gamma);
}

at::Tensor PointwiseConv::operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }

// ============================== blocks ==============================

at::Tensor ResidualBlock::operator()(const at::Tensor& x, FeatureCache* cache) const {
  // x: [B, I, T, H, W] -> [B, O, T, H, W]
  const at::Tensor h = conv_shortcut ? (*conv_shortcut)(x) : x;
  at::Tensor y = silu_inplace(norm1(x));
  y = cached_conv(conv1, y, cache);
  y = silu_inplace(norm2(y));  // dropout: identity at inference
  y = cached_conv(conv2, y, cache);
  return y.add_(h);
}

at::Tensor AttentionBlock::operator()(const at::Tensor& x) const {
  // x: [B, C, T, H, W]; every frame attends over its own H*W pixels, one head
  // of width C. The 1x1 convolutions run as matmuls on channels-last rows,
  // which is the layout attention needs anyway (the reference permutes too).
  const std::int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  at::Tensor rows = norm(x).permute({0, 2, 3, 4, 1});            // [B, T, H, W, C]
  at::Tensor qkv = to_qkv(rows).view({b * t, 1, h * w, 3 * c});  // [BT, 1, HW, 3C]
  std::vector<at::Tensor> parts = qkv.chunk(3, -1);
  at::Tensor o = at::scaled_dot_product_attention(parts[0], parts[1], parts[2]);  // [BT, 1, HW, C]
  o = proj(o).view({b, t, h, w, c}).permute({0, 4, 1, 2, 3});                 // [B, C, T, H, W]
  return o + x;
}

at::Tensor Resample::operator()(const at::Tensor& input, FeatureCache* cache) const {
  // x: [B, C, T, H, W] -> [B, C', T', H * 2 or H / 2, ...]
  at::Tensor x = input;
  const std::int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  using State = FeatureCache::State;

  if (mode == Mode::upsample3d && cache != nullptr) {
    const std::size_t i = cache->take();
    at::Tensor& slot = cache->slots[i];
    State& state = cache->states[i];
    if (state == State::empty) {
      // First chunk: the first frame is not doubled in time (the reference's "Rep").
      state = State::replicate;
    } else {
      at::Tensor keep;  // stays undefined on the last chunk: nothing reads it
      if (cache->keep) {
        keep = x.slice(2, std::max<std::int64_t>(t - kCacheFrames, 0), t).clone(at::MemoryFormat::Contiguous);
        if (keep.size(2) < kCacheFrames) {
          keep = state == State::frames ? at::cat({slot.slice(2, slot.size(2) - 1), keep}, 2)
                                        : at::cat({at::zeros_like(keep), keep}, 2);
        }
      }
      at::Tensor y = state == State::replicate ? time_conv(x) : time_conv(x, slot);  // [B, 2C, T, H, W]
      if (cache->keep) {
        slot = std::move(keep);
        state = State::frames;
      }
      // Channel halves are the even and odd output frames: [B, 2, C, T, H, W] -> [B, C, 2T, H, W].
      x = y.view({b, 2, c, t, h, w}).permute({0, 2, 3, 1, 4, 5}).reshape({b, c, 2 * t, h, w});
    }
  }

  if (mode == Mode::upsample2d || mode == Mode::upsample3d) {
    return resample(x, FrameConv2d::Before::upsample_nearest_2x);
  }

  // ZeroPad2d((0, 1, 0, 1)): one zero column on the right, one row at the bottom.
  x = resample(x, FrameConv2d::Before::zero_pad_right_bottom);
  if (mode == Mode::downsample3d && cache != nullptr) {
    const std::size_t i = cache->take();
    at::Tensor& slot = cache->slots[i];
    const std::int64_t tt = x.size(2);
    // Only the last frame of the entry is ever read, so only it is kept (the
    // reference keeps the whole first chunk).
    at::Tensor keep = cache->keep ? x.slice(2, tt - 1, tt).clone(at::MemoryFormat::Contiguous) : at::Tensor();
    if (cache->states[i] != State::empty) {
      x = time_conv(at::cat({slot.slice(2, slot.size(2) - 1), x}, 2));  // stride 2 in time
    }
    if (cache->keep) {
      slot = std::move(keep);
      cache->states[i] = State::frames;
    }
  }
  return x;
}

at::Tensor MidBlock::operator()(const at::Tensor& x, FeatureCache* cache) const {
  at::Tensor y = resnets[0](x, cache);
  for (std::size_t i = 0; i < attentions.size(); ++i) {
    y = attentions[i](y);
    y = resnets[i + 1](y, cache);
  }
  return y;
}

at::Tensor AvgDown3D::operator()(const at::Tensor& input) const {
  // [B, C, T, H, W] -> [B, out, ceil(T / ft), H / fs, W / fs]: zero frames in
  // front up to a multiple of ft, each (ft, fs, fs) cell moved to channels, then
  // the mean over groups of C * factor / out consecutive channels.
  const std::int64_t pad = (factor_t - input.size(2) % factor_t) % factor_t;
  const at::Tensor x = pad > 0 ? at::constant_pad_nd(input, {0, 0, 0, 0, pad, 0}) : input;
  const std::int64_t b = x.size(0), c = x.size(1), t = x.size(2) / factor_t, h = x.size(3) / factor_s,
                     w = x.size(4) / factor_s;
  const std::int64_t factor = factor_t * factor_s * factor_s;
  return x.reshape({b, c, t, factor_t, h, factor_s, w, factor_s})
      .permute({0, 1, 3, 5, 7, 2, 4, 6})
      .reshape({b, out_channels, c * factor / out_channels, t, h, w})
      .mean(2);
}

at::Tensor DupUp3D::operator()(const at::Tensor& x, bool first_chunk) const {
  // [B, C, T, H, W] -> [B, out, T * ft, H * fs, W * fs]: every channel repeated
  // out * factor / C times (repeat_interleave), the copies spread over (ft, fs, fs).
  const std::int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  const std::int64_t factor = factor_t * factor_s * factor_s;
  const std::int64_t repeats = out_channels * factor / c;
  at::Tensor y = x.unsqueeze(2).expand({b, c, repeats, t, h, w});
  y = y.reshape({b, out_channels, factor_t, factor_s, factor_s, t, h, w})
          .permute({0, 1, 5, 2, 6, 3, 7, 4})
          .reshape({b, out_channels, t * factor_t, h * factor_s, w * factor_s});
  // The first chunk's first frame is not doubled in time by the main path either.
  return first_chunk ? y.slice(2, factor_t - 1) : y;
}

at::Tensor ResidualDownBlock::operator()(const at::Tensor& x, FeatureCache* cache) const {
  at::Tensor y = x;
  for (const ResidualBlock& r : resnets) y = r(y, cache);
  if (downsampler) y = (*downsampler)(y, cache);
  return y + avg_shortcut(x);
}

at::Tensor UpBlock::operator()(const at::Tensor& x, FeatureCache* cache, bool first_chunk) const {
  at::Tensor y = x;
  for (const ResidualBlock& r : resnets) y = r(y, cache);
  if (upsampler) y = (*upsampler)(y, cache);
  if (avg_shortcut) y = y + (*avg_shortcut)(x, first_chunk);
  return y;
}

// ============================== encoder / decoder ==============================

at::Tensor Encoder3d::operator()(const at::Tensor& x, FeatureCache* cache) const {
  // x: [B, in_channels, T, H, W] (one chunk) -> [B, 2z, T', H / 8, W / 8]
  at::Tensor y = cached_conv(conv_in, x, cache);
  for (const EncoderLayer& layer : down_blocks) {
    y = std::visit([&](const auto& l) { return l(y, cache); }, layer);
  }
  y = mid_block(y, cache);
  y = silu_inplace(norm_out(y));
  return cached_conv(conv_out, y, cache);
}

at::Tensor Decoder3d::operator()(const at::Tensor& x, FeatureCache* cache, bool first_chunk) const {
  // x: [B, z, 1, h, w] (one latent frame) -> [B, out_channels, 1 or 4, 8h, 8w]
  at::Tensor y = cached_conv(conv_in, x, cache);
  y = mid_block(y, cache);
  for (const UpBlock& up : up_blocks) y = up(y, cache, first_chunk);
  y = silu_inplace(norm_out(y));
  return cached_conv(conv_out, y, cache);
}

}  // namespace mmgen::diffusion

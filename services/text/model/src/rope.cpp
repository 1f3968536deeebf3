// Rotary tables (rope.hpp). The float32 tensor arithmetic follows
// modeling_rope_utils op for op, so the frequencies match transformers' bit for
// bit where the same kernels run (pow of a scalar base, reciprocal, ramp).
#include "mmgen/text/rope.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/scalar_tensor.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "mmgen/ops.hpp"

namespace mmgen::text {

namespace {

// base ** (arange(0, dim, 2) / dim), float32: the "pos_freqs" of every type.
at::Tensor pos_freqs(double base, std::int64_t dim) {
  at::Tensor exponent = at::arange(0, dim, 2, at::TensorOptions().dtype(at::kFloat)) / double(dim);
  return at::pow(base, exponent);
}

double yarn_mscale(double scale, double mscale) {
  if (scale <= 1) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

double correction_dim(double num_rotations, std::int64_t dim, double base, double max_pos) {
  return (double(dim) * std::log(max_pos / (num_rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(const QwenConfig& cfg)
    : rope_(cfg.rope), dim_(cfg.head_dim), max_position_embeddings_(cfg.max_position_embeddings) {
  switch (rope_.type) {
    case RopeType::default_:
    case RopeType::dynamic:  // at init (and up to max_position_embeddings) dynamic equals default
      inv_freq_ = at::reciprocal(pos_freqs(rope_.theta, dim_));
      break;
    case RopeType::linear:
      inv_freq_ = at::reciprocal(pos_freqs(rope_.theta, dim_)) / rope_.factor;
      break;
    case RopeType::yarn: {
      const double factor = rope_.factor;
      if (rope_.attention_factor) {
        attention_scaling_ = *rope_.attention_factor;
      } else if (rope_.mscale && rope_.mscale_all_dim && *rope_.mscale != 0 && *rope_.mscale_all_dim != 0) {
        attention_scaling_ = yarn_mscale(factor, *rope_.mscale) / yarn_mscale(factor, *rope_.mscale_all_dim);
      } else {
        attention_scaling_ = yarn_mscale(factor, 1.0);
      }
      at::Tensor pf = pos_freqs(rope_.theta, dim_);
      at::Tensor extrapolation = at::reciprocal(pf);
      at::Tensor interpolation = at::reciprocal(pf * factor);
      const double orig = double(rope_.original_max_position_embeddings);
      double low = correction_dim(rope_.beta_fast, dim_, rope_.theta, orig);
      double high = correction_dim(rope_.beta_slow, dim_, rope_.theta, orig);
      if (rope_.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, double(dim_ - 1));
      if (low == high) high += 0.001;  // the reference's guard against a zero-width ramp
      at::Tensor ramp = ((at::arange(dim_ / 2, at::TensorOptions().dtype(at::kFloat)) - low) / (high - low))
                            .clamp(0, 1);
      at::Tensor extrapolation_factor = 1 - ramp;
      inv_freq_ = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
      break;
    }
  }
}

at::Tensor RotaryEmbedding::inv_freq_for(std::int64_t seq_len) const {
  if (rope_.type != RopeType::dynamic || seq_len <= max_position_embeddings_) return inv_freq_;
  // Dynamic NTK: the reference computes the new base from a tensor seq_len, so
  // the base arithmetic runs in float32 tensors; do the same.
  at::Tensor s = at::scalar_tensor(seq_len, at::TensorOptions().dtype(at::kLong));
  const double d = double(dim_);
  at::Tensor base = ((s * rope_.factor) / max_position_embeddings_ - (rope_.factor - 1)).pow(d / (d - 2)) *
                    rope_.theta;
  at::Tensor exponent = at::arange(0, dim_, 2, at::TensorOptions().dtype(at::kLong)).to(at::kFloat) / d;
  return at::reciprocal(at::pow(base, exponent));
}

std::pair<at::Tensor, at::Tensor> RotaryEmbedding::cos_sin(const at::Tensor& positions, std::int64_t seq_len) const {
  at::Tensor inv = inv_freq_for(seq_len).to(positions.device());
  // freqs: [T, D/2] (or [3, T, D/2] for M-RoPE)
  at::Tensor freqs = positions.unsqueeze(-1).to(at::kFloat) * inv;
  at::Tensor cos = freqs.cos() * attention_scaling_;
  at::Tensor sin = freqs.sin() * attention_scaling_;
  if (rope_.mrope_section.empty()) return {cos, sin};
  if (positions.dim() == 1) return {cos, sin};  // text-only: the three rows are equal
  // Band i of the D/2 frequencies comes from position row i % 3.
  auto recompose = [&](const at::Tensor& f) {
    std::vector<at::Tensor> parts;
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < rope_.mrope_section.size(); ++i) {
      parts.push_back(f[std::int64_t(i % 3)].narrow(-1, offset, rope_.mrope_section[i]));
      offset += rope_.mrope_section[i];
    }
    return at::cat(parts, -1).contiguous();
  };
  return {recompose(cos), recompose(sin)};
}

void apply_rotary(at::Tensor& q, at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin) {
  mmgen::ops::rope(q, k, cos, sin, mmgen::ops::RopeStyle::NeoX);
}

}  // namespace mmgen::text

// UMT5 encoder forward and weight loading (umt5_model.hpp). Read beside
// transformers' modeling_umt5.py: same op order, same casts, same epsilons.
#include "mmgen/video/umt5_model.hpp"

#include <ATen/TensorOperators.h>
#include <ATen/ops/abs.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/clamp_max.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/isinf.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/log.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/rsqrt.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tanh.h>
#include <ATen/ops/where.h>
#include <c10/util/Half.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "mmgen/io/load_error.hpp"

namespace mmgen::video {

namespace {

using io::LoadError;
using io::LoadErrorKind;

std::string block_prefix(std::int64_t i) { return "encoder.block." + std::to_string(i) + "."; }

T5Linear load_linear(io::WeightLoader& w, const std::string& name, std::int64_t out, std::int64_t in) {
  return T5Linear{w.take(name + ".weight", {out, in})};
}

T5LayerNorm load_norm(io::WeightLoader& w, const std::string& name, const UMT5Config& cfg) {
  return T5LayerNorm{w.take(name + ".weight", {cfg.d_model}), cfg.layer_norm_epsilon};
}

// The reference's "clamp inf values to enable fp16 training", applied at
// inference too: only float16 hidden states are touched.
at::Tensor clamp_fp16(const at::Tensor& h) {
  if (h.scalar_type() != at::kHalf) return h;
  const double max_half = static_cast<double>(std::numeric_limits<c10::Half>::max());
  const double clamp_value = at::isinf(h).any().item<bool>() ? max_half - 1000.0 : max_half;
  return at::clamp(h, -clamp_value, clamp_value);
}

double lowest_of(c10::ScalarType t) {
  switch (t) {
    case at::kHalf:
      return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case at::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    default:
      return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

DenseActivation parse_activation(const io::HfConfig& cfg, const std::string& name) {
  if (name == "gelu_new") return DenseActivation::gelu_new;
  if (name == "gelu") return DenseActivation::gelu;
  if (name == "relu") return DenseActivation::relu;
  if (name == "silu" || name == "swish") return DenseActivation::silu;
  if (name == "gelu_pytorch_tanh") return DenseActivation::gelu_pytorch_tanh;
  throw LoadError(LoadErrorKind::unsupported,
                  cfg.source() + ": 'feed_forward_proj' activation '" + name + "' is not supported");
}

at::Tensor activate(DenseActivation act, const at::Tensor& x) {
  switch (act) {
    case DenseActivation::gelu_new:
      // NewGELUActivation, written out as the reference writes it (not
      // at::gelu(tanh), which rounds differently in the last bits).
      return 0.5 * x * (1.0 + at::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * at::pow(x, 3.0))));
    case DenseActivation::gelu:
      return at::gelu(x);
    case DenseActivation::gelu_pytorch_tanh:
      return at::gelu(x, "tanh");
    case DenseActivation::relu:
      return at::relu(x);
    case DenseActivation::silu:
      return at::silu(x);
  }
  return x;
}

}  // namespace

// ============================== config ==============================

UMT5Config UMT5Config::from_hf(const io::HfConfig& cfg) {
  UMT5Config c;
  c.vocab_size = cfg.get_int("vocab_size", c.vocab_size);
  c.d_model = cfg.get_int("d_model", c.d_model);
  c.d_kv = cfg.get_int("d_kv", c.d_kv);
  c.d_ff = cfg.get_int("d_ff", c.d_ff);
  c.num_layers = cfg.get_int("num_layers", c.num_layers);
  c.num_heads = cfg.get_int("num_heads", c.num_heads);
  c.relative_attention_num_buckets = cfg.get_int("relative_attention_num_buckets", c.relative_attention_num_buckets);
  c.relative_attention_max_distance = cfg.get_int("relative_attention_max_distance", c.relative_attention_max_distance);
  c.layer_norm_epsilon = cfg.get_double("layer_norm_epsilon", c.layer_norm_epsilon);
  c.feed_forward_proj = cfg.get_string("feed_forward_proj", c.feed_forward_proj);
  c.pad_token_id = cfg.get_int("pad_token_id", c.pad_token_id);
  if (const Value* eos = cfg.find("eos_token_id"); eos != nullptr && eos->is_int()) c.eos_token_id = eos->as_int();

  // feed_forward_proj is "<act>" or "gated-<act>"; UMT5Config maps "gated-gelu"
  // to gelu_new (the published checkpoints were trained with the tanh GELU).
  const std::string& ffp = c.feed_forward_proj;
  const auto dash = ffp.find('-');
  if (dash != std::string::npos && (ffp.substr(0, dash) != "gated" || ffp.find('-', dash + 1) != std::string::npos)) {
    cfg.fail("feed_forward_proj", "must be '<act>' or 'gated-<act>', got '" + ffp + "'");
  }
  c.is_gated_act = dash != std::string::npos;
  const std::string act = c.is_gated_act ? ffp.substr(dash + 1) : ffp;
  c.dense_act_fn = ffp == "gated-gelu" ? DenseActivation::gelu_new : parse_activation(cfg, act);

  for (auto [key, v] : {std::pair{"vocab_size", c.vocab_size},
                        {"d_model", c.d_model},
                        {"d_kv", c.d_kv},
                        {"d_ff", c.d_ff},
                        {"num_layers", c.num_layers},
                        {"num_heads", c.num_heads},
                        {"relative_attention_num_buckets", c.relative_attention_num_buckets},
                        {"relative_attention_max_distance", c.relative_attention_max_distance}}) {
    if (v <= 0) cfg.fail(key, "must be positive, got " + std::to_string(v));
  }
  // The bidirectional bucket split needs num_buckets/2 >= 2 and max_distance > max_exact.
  if (c.relative_attention_num_buckets < 4) cfg.fail("relative_attention_num_buckets", "must be at least 4");
  if (c.relative_attention_max_distance <= c.relative_attention_num_buckets / 4) {
    cfg.fail("relative_attention_max_distance", "must exceed relative_attention_num_buckets / 4");
  }
  return c;
}

// ============================== blocks ==============================

at::Tensor T5Linear::operator()(const at::Tensor& x) const { return at::linear(x, weight); }

at::Tensor T5LayerNorm::operator()(const at::Tensor& x) const {
  // Not mmgen::ops::rms_norm: T5 multiplies the un-cast input by the float32
  // rsqrt (so a float16 input yields float32) and casts back only when the
  // weight is half precision. With the residual stream in float32 and half
  // weights (float16 with wo kept in float32) the two conventions differ.
  at::Tensor variance = x.to(at::kFloat).pow(2).mean(-1, /*keepdim=*/true);
  at::Tensor h = x * at::rsqrt(variance + variance_epsilon);
  if (weight.scalar_type() == at::kHalf || weight.scalar_type() == at::kBFloat16) h = h.to(weight.scalar_type());
  return weight * h;
}

// ============================== model ==============================

at::Tensor UMT5EncoderModel::relative_position_bucket(std::int64_t length, std::int64_t num_buckets,
                                                      std::int64_t max_distance, c10::Device device) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor context_position = at::arange(length, opts).unsqueeze(1);  // [L, 1]
  at::Tensor memory_position = at::arange(length, opts).unsqueeze(0);   // [1, L]
  at::Tensor relative_position = memory_position - context_position;    // [L, L] key - query

  // Encoder: bidirectional, half of the buckets for keys after the query.
  const std::int64_t half = num_buckets / 2;
  at::Tensor buckets = (relative_position > 0).to(at::kLong) * half;
  relative_position = at::abs(relative_position);

  // Exact buckets for small distances, logarithmic ones up to max_distance.
  const std::int64_t max_exact = half / 2;
  at::Tensor is_small = relative_position < max_exact;
  at::Tensor log_ratio = at::log(relative_position.to(at::kFloat) / static_cast<double>(max_exact)) /
                         std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact));
  log_ratio = log_ratio * static_cast<double>(half - max_exact);
  at::Tensor if_large = max_exact + log_ratio.to(at::kLong);  // truncation, as .to(torch.long)
  if_large = at::clamp_max(if_large, half - 1);
  return buckets + at::where(is_small, relative_position, if_large);
}

UMT5EncoderModel UMT5EncoderModel::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  if (!std::filesystem::is_directory(folder)) {
    throw LoadError(LoadErrorKind::io, "UMT5 text encoder: folder " + folder.string() + " does not exist");
  }
  try {
    const UMT5Config cfg = UMT5Config::from_hf(io::HfConfig::load(folder / "config.json"));
    const io::Checkpoint ckpt = io::Checkpoint::open(folder, "model");
    io::WeightLoader weights(ckpt, opts);
    UMT5EncoderModel model(cfg, weights);

    // wo stays float32 under float16 (_keep_in_fp32_modules, float16 only):
    // the loader converted it, so take it again from the file in float32.
    if (opts.dtype == at::kHalf) {
      for (std::int64_t i = 0; i < cfg.num_layers; ++i) {
        const std::string name = block_prefix(i) + "layer.1.DenseReluDense.wo.weight";
        model.block_[static_cast<std::size_t>(i)].layer1.DenseReluDense.wo.weight =
            ckpt.tensor(name).to(opts.device, at::kFloat);
      }
    }
    weights.finish();
    return model;
  } catch (const LoadError& e) {
    // The loading layer names file and tensor; add the component.
    throw LoadError(e.kind(), std::string("UMT5 text encoder: ") + e.what());
  }
}

UMT5EncoderModel::UMT5EncoderModel(const UMT5Config& cfg, io::WeightLoader& w) : cfg_(cfg) {
  // UMT5EncoderModel ties encoder.embed_tokens to shared; save_pretrained
  // writes shared.weight, other exports only the encoder's copy or both.
  if (w.contains("shared.weight")) {
    shared_ = w.take("shared.weight", {cfg.vocab_size, cfg.d_model});
    w.skip("encoder.embed_tokens.weight");
  } else {
    shared_ = w.take("encoder.embed_tokens.weight", {cfg.vocab_size, cfg.d_model});
  }

  const std::int64_t inner = cfg.inner_dim();
  block_.reserve(static_cast<std::size_t>(cfg.num_layers));
  for (std::int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = block_prefix(i);
    UMT5Block b;
    const std::string sa = p + "layer.0.SelfAttention";
    b.layer0.SelfAttention.q = load_linear(w, sa + ".q", inner, cfg.d_model);
    b.layer0.SelfAttention.k = load_linear(w, sa + ".k", inner, cfg.d_model);
    b.layer0.SelfAttention.v = load_linear(w, sa + ".v", inner, cfg.d_model);
    b.layer0.SelfAttention.o = load_linear(w, sa + ".o", cfg.d_model, inner);
    b.layer0.SelfAttention.relative_attention_bias =
        w.take(sa + ".relative_attention_bias.weight", {cfg.relative_attention_num_buckets, cfg.num_heads});
    b.layer0.layer_norm = load_norm(w, p + "layer.0.layer_norm", cfg);

    const std::string ff = p + "layer.1.DenseReluDense";
    if (cfg.is_gated_act) {
      b.layer1.DenseReluDense.wi_0 = load_linear(w, ff + ".wi_0", cfg.d_ff, cfg.d_model);
      b.layer1.DenseReluDense.wi_1 = load_linear(w, ff + ".wi_1", cfg.d_ff, cfg.d_model);
    } else {
      b.layer1.DenseReluDense.wi = load_linear(w, ff + ".wi", cfg.d_ff, cfg.d_model);
    }
    b.layer1.DenseReluDense.wo = load_linear(w, ff + ".wo", cfg.d_model, cfg.d_ff);
    b.layer1.layer_norm = load_norm(w, p + "layer.1.layer_norm", cfg);
    block_.push_back(std::move(b));
  }
  final_layer_norm_ = load_norm(w, "encoder.final_layer_norm", cfg);
}

at::Tensor UMT5EncoderModel::attention(const UMT5Attention& a, const at::Tensor& x, const at::Tensor& buckets,
                                       const at::Tensor& mask) const {
  // x: [B, L, d_model] (already layer-normed); buckets: [L, L]; mask: [B, 1, 1, L] bool or undefined.
  const std::int64_t B = x.size(0), L = x.size(1), H = cfg_.num_heads, D = cfg_.d_kv;
  at::Tensor q = a.q(x).view({B, L, H, D}).transpose(1, 2);  // [B, H, L, D]
  at::Tensor k = a.k(x).view({B, L, H, D}).transpose(1, 2);
  at::Tensor v = a.v(x).view({B, L, H, D}).transpose(1, 2);

  // This layer's own bias table: [L, L, H] -> [1, H, L, L].
  at::Tensor position_bias = at::embedding(a.relative_attention_bias, buckets).permute({2, 0, 1}).unsqueeze(0);
  // As transformers' sdpa path: masked keys get the dtype's lowest value in
  // place of the bias, and the bias is the float mask (scores are not scaled).
  at::Tensor attn_mask = mask.defined() ? at::where(mask, position_bias, lowest_of(k.scalar_type())) : position_bias;
  at::Tensor out = at::scaled_dot_product_attention(q, k, v, attn_mask.contiguous(), 0.0, false, 1.0);
  out = out.transpose(1, 2).reshape({B, L, H * D});  // [B, L, inner]
  return a.o(out);                                   // [B, L, d_model]
}

at::Tensor UMT5EncoderModel::feed_forward(const UMT5DenseGatedActDense& ff, const at::Tensor& x) const {
  at::Tensor h;
  if (cfg_.is_gated_act) {
    h = activate(cfg_.dense_act_fn, ff.wi_0(x)) * ff.wi_1(x);  // [B, L, d_ff]
  } else {
    h = activate(cfg_.dense_act_fn, ff.wi(x));
  }
  // wo may be float32 while the rest is float16: cast its input as the reference does.
  if (h.scalar_type() != ff.wo.weight.scalar_type()) h = h.to(ff.wo.weight.scalar_type());
  return ff.wo(h);  // [B, L, d_model]
}

at::Tensor UMT5EncoderModel::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  if (input_ids.dim() != 2) {
    throw std::invalid_argument("UMT5EncoderModel::forward: input_ids must be [batch, length], got " +
                                std::to_string(input_ids.dim()) + " dims");
  }
  const std::int64_t B = input_ids.size(0), L = input_ids.size(1);
  if (L == 0) throw std::invalid_argument("UMT5EncoderModel::forward: empty sequence");
  if (input_ids.numel() > 0) {
    const std::int64_t lo = input_ids.min().item<std::int64_t>(), hi = input_ids.max().item<std::int64_t>();
    if (lo < 0 || hi >= cfg_.vocab_size) {
      throw std::invalid_argument("UMT5EncoderModel::forward: token id out of range [0, " +
                                  std::to_string(cfg_.vocab_size) + ")");
    }
  }
  at::Tensor mask;  // [B, 1, 1, L] bool
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != B || attention_mask.size(1) != L) {
      throw std::invalid_argument("UMT5EncoderModel::forward: attention_mask must be [batch, length] like input_ids");
    }
    mask = attention_mask.to(device()).to(at::kBool).view({B, 1, 1, L});
  }

  at::Tensor ids = input_ids.to(device()).to(at::kLong);
  at::Tensor hidden = at::embedding(shared_, ids);  // [B, L, d_model]
  // Every layer has the same bucket geometry; only the bias tables differ.
  const at::Tensor buckets =
      relative_position_bucket(L, cfg_.relative_attention_num_buckets, cfg_.relative_attention_max_distance, device());

  for (const UMT5Block& b : block_) {
    hidden = hidden + attention(b.layer0.SelfAttention, b.layer0.layer_norm(hidden), buckets, mask);
    hidden = clamp_fp16(hidden);
    hidden = hidden + feed_forward(b.layer1.DenseReluDense, b.layer1.layer_norm(hidden));
    hidden = clamp_fp16(hidden);
  }
  return final_layer_norm_(hidden);
}

}  // namespace mmgen::video

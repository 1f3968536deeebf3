// Loading a published WanTransformer3DModel checkpoint (wan_transformer.hpp):
// one take per checkpoint key, shapes from the config, the float32 modules of
// diffusers' _keep_in_fp32_modules read in float32, and the projections that
// the forward runs as one matmul stacked here.
#include <ATen/ops/cat.h>

#include <string>
#include <vector>

#include "mmgen/io/load_error.hpp"
#include "mmgen/video/wan_transformer.hpp"

namespace mmgen::video {

namespace {

// The model-dtype loader and its float32 twin over the same checkpoint.
struct Loaders {
  io::WeightLoader& model;
  io::WeightLoader& fp32;

  at::Tensor take(const std::string& name, std::vector<std::int64_t> shape) {
    return model.take(name, std::move(shape));
  }
  // diffusers keeps a parameter in float32 when one component of its dotted
  // name is in _keep_in_fp32_modules; it is read from the stored dtype
  // straight to float32, never through the model dtype.
  at::Tensor take_fp32(const std::string& name, std::vector<std::int64_t> shape) {
    at::Tensor t = fp32.take(name, std::move(shape));
    model.skip(name);
    return t;
  }
};

wan::Linear linear(Loaders& w, const std::string& name, std::int64_t out, std::int64_t in, bool fp32 = false) {
  auto take = [&](const std::string& n, std::vector<std::int64_t> s) {
    return fp32 ? w.take_fp32(n, std::move(s)) : w.take(n, std::move(s));
  };
  return wan::Linear{take(name + ".weight", {out, in}), take(name + ".bias", {out})};
}

// Projections of one input stacked on the output axis: y = x W^T + b for the
// stack is each projection's y side by side, the same dot products.
wan::Linear stacked(Loaders& w, const std::vector<std::string>& names, std::int64_t out, std::int64_t in) {
  std::vector<at::Tensor> weights, biases;
  for (const auto& n : names) {
    wan::Linear l = linear(w, n, out, in);
    weights.push_back(l.weight);
    biases.push_back(l.bias);
  }
  return wan::Linear{at::cat(weights, 0), at::cat(biases, 0)};
}

wan::RMSNorm rms_norm(Loaders& w, const std::string& name, std::int64_t n, double eps) {
  return wan::RMSNorm{w.take(name + ".weight", {n}), eps};
}

wan::LayerNorm affine_layer_norm_fp32(Loaders& w, const std::string& name, std::int64_t n, double eps) {
  return wan::LayerNorm{w.take_fp32(name + ".weight", {n}), w.take_fp32(name + ".bias", {n}), eps};
}

wan::Attention attention(Loaders& w, const std::string& p, const WanTransformerConfig& cfg, bool cross) {
  const std::int64_t D = cfg.inner_dim();
  wan::Attention a;
  a.heads = cfg.num_attention_heads;
  if (cross) {
    a.to_q = linear(w, p + "to_q", D, D);
    a.to_kv = stacked(w, {p + "to_k", p + "to_v"}, D, D);
  } else {
    a.to_qkv = stacked(w, {p + "to_q", p + "to_k", p + "to_v"}, D, D);
  }
  a.to_out = linear(w, p + "to_out.0", D, D);  // to_out.1 is Dropout
  a.norm_q = rms_norm(w, p + "norm_q", D, cfg.eps);
  a.norm_k = rms_norm(w, p + "norm_k", D, cfg.eps);
  if (cross && cfg.has_added_kv()) {
    a.to_added_kv = stacked(w, {p + "add_k_proj", p + "add_v_proj"}, D, *cfg.added_kv_proj_dim);
    a.norm_added_k = rms_norm(w, p + "norm_added_k", D, cfg.eps);
  }
  // Some converted checkpoints carry an unused norm_added_q (the reference's
  // _keys_to_ignore_on_load_unexpected).
  w.model.skip_prefix(p + "norm_added_q.");
  return a;
}

}  // namespace

WanTransformer3DModel::WanTransformer3DModel(const WanTransformerConfig& cfg, io::WeightLoader& weights,
                                             io::WeightLoader& fp32_weights)
    : cfg_(cfg) {
  Loaders w{weights, fp32_weights};
  const std::int64_t D = cfg.inner_dim();
  const auto [pt, ph, pw] = cfg.patch_size;

  // Conv3d weight [D, C, pt, ph, pw] flattened in (C, pt, ph, pw) order, the
  // order forward() unfolds each patch in.
  patch_embedding_.weight =
      w.take("patch_embedding.weight", {D, cfg.in_channels, pt, ph, pw}).reshape({D, cfg.in_channels * pt * ph * pw});
  patch_embedding_.bias = w.take("patch_embedding.bias", {D});

  auto& ce = condition_embedder_;
  ce.freq_dim = cfg.freq_dim;
  ce.time_embedder.linear_1 = linear(w, "condition_embedder.time_embedder.linear_1", D, cfg.freq_dim, true);
  ce.time_embedder.linear_2 = linear(w, "condition_embedder.time_embedder.linear_2", D, D, true);
  ce.time_proj = linear(w, "condition_embedder.time_proj", 6 * D, D);
  ce.text_embedder.linear_1 = linear(w, "condition_embedder.text_embedder.linear_1", D, cfg.text_dim);
  ce.text_embedder.linear_2 = linear(w, "condition_embedder.text_embedder.linear_2", D, D);
  if (cfg.image_dim) {
    const std::string p = "condition_embedder.image_embedder.";
    const std::int64_t I = *cfg.image_dim;
    wan::ImageEmbedding ie;
    ie.norm1 = affine_layer_norm_fp32(w, p + "norm1", I, 1e-5);  // FP32LayerNorm default eps
    ie.ff.net_0_proj = linear(w, p + "ff.net.0.proj", I, I);     // FeedForward(mult=1, "gelu")
    ie.ff.net_2 = linear(w, p + "ff.net.2", D, I);
    ie.ff.tanh_gelu = false;
    ie.norm2 = affine_layer_norm_fp32(w, p + "norm2", D, 1e-5);
    if (cfg.pos_embed_seq_len) ie.pos_embed = w.take(p + "pos_embed", {1, *cfg.pos_embed_seq_len, I});
    ce.image_embedder = std::move(ie);
  }

  blocks_.reserve(std::size_t(cfg.num_layers));
  for (std::int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    wan::TransformerBlock b;
    b.attn1 = attention(w, p + "attn1.", cfg, false);
    b.attn2 = attention(w, p + "attn2.", cfg, true);
    if (cfg.cross_attn_norm) b.norm2 = affine_layer_norm_fp32(w, p + "norm2", D, cfg.eps);
    b.ffn.net_0_proj = linear(w, p + "ffn.net.0.proj", cfg.ffn_dim, D);  // "gelu-approximate"
    b.ffn.net_2 = linear(w, p + "ffn.net.2", D, cfg.ffn_dim);
    b.ffn.tanh_gelu = true;
    b.scale_shift_table = w.take_fp32(p + "scale_shift_table", {1, 6, D});
    blocks_.push_back(std::move(b));
  }

  proj_out_ = linear(w, "proj_out", cfg.out_channels * cfg.patch_volume(), D);
  scale_shift_table_ = w.take_fp32("scale_shift_table", {1, 2, D});
}

WanTransformer3DModel WanTransformer3DModel::load(const std::filesystem::path& folder, const io::LoadOptions& opts) {
  if (opts.dtype != at::kFloat && opts.dtype != at::kBFloat16 && opts.dtype != at::kHalf) {
    throw io::LoadError(io::LoadErrorKind::unsupported,
                        folder.string() + ": WanTransformer3DModel runs in float32, bfloat16 or float16, not " +
                            std::string(io::dtype_name(opts.dtype)));
  }
  const WanTransformerConfig cfg = WanTransformerConfig::load(folder);
  const io::Checkpoint ckpt = io::Checkpoint::open(folder, "diffusion_pytorch_model");
  io::WeightLoader weights(ckpt, opts);
  io::WeightLoader fp32_weights(ckpt, io::LoadOptions{at::kFloat, opts.device});
  WanTransformer3DModel model(cfg, weights, fp32_weights);
  weights.finish();
  return model;
}

}  // namespace mmgen::video
